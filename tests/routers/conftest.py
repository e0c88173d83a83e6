"""Shared fixtures for the routers tests: real data from ../shared/data, no mocks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from routers.data import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if not d.exists():
        pytest.skip(f"shared data not found at {d}")
    return d


@pytest.fixture(scope="session")
def encoder():
    from routers.encoder import Encoder

    return Encoder.default()
