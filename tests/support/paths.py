"""Where things are."""

from __future__ import annotations

from pathlib import Path

from routers.settings import RouterSettings

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "fake_upstream.py"
DATA = RouterSettings().data_root()  # SHUNTER_DATA_DIR, else ../shared/data
