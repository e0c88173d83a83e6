"""Fixtures for the in-process pipeline tests: fake upstream processes, shared by a module."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.support.procs import FakeUpstream, start_fake_upstream, stop

NORMAL = {
    "fail_next": 0,
    "fail_status": 500,
    "retry_after": None,
    "die_after_chunks": None,
    "delay": 0.0,
    "chunk_delay": 0.0,
    "reply": None,
    "body_fault": None,
    "body_fault_count": None,
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    """Two fake upstreams, reset to normal behaviour before each test that uses them."""
    a, b = start_fake_upstream("a-v1", quiet=True), start_fake_upstream("b-v1", quiet=True)
    yield a, b
    for f in (a, b):
        stop(f.proc, signal.SIGKILL)


@pytest.fixture
def ab(fakes: tuple[FakeUpstream, FakeUpstream]) -> tuple[FakeUpstream, FakeUpstream]:
    for f in fakes:
        f.control(**NORMAL)
    return fakes
