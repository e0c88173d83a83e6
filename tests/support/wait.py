"""Wait for a condition by polling it until a deadline; never sleep a guessed time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call ``check`` until it returns something truthy, and return that; ``TimeoutError`` at the deadline.

    An ``AssertionError`` raised by ``check`` counts as "not yet"; the last one is chained to the
    timeout, so a failing wait reports what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true after {timeout}s: {what or getattr(check, '__name__', check)}") from last
        time.sleep(interval)


async def await_until(
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """``wait_until`` for a coroutine check, inside an event loop."""
    import asyncio

    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true after {timeout}s: {what or getattr(check, '__name__', check)}") from last
        await asyncio.sleep(interval)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None, ok=(200,)) -> None:
    """Until ``url`` answers with a status in ``ok``; fails at once, with its output, if ``proc`` exits."""
    last: object = None

    def answered() -> bool:
        nonlocal last
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if not out and isinstance(proc.args, list):
                out = f"(command: {' '.join(map(str, proc.args))})"
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{out[-4000:]}")
        try:
            r = httpx.get(url, timeout=1.0)
        except httpx.TransportError as exc:
            last = exc
            return False
        last = r.status_code
        return r.status_code in ok

    try:
        wait_until(answered, timeout, 0.1, what=url)
    except TimeoutError:
        raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})") from None


def holds_for(check: Callable[[], object], seconds: float, interval: float = 0.05, what: str = "") -> None:
    """Assert that ``check`` stays truthy for ``seconds``, polled: an invariant over a window.

    For "nothing happens" checks (no reload without a watcher, a stuck stream stays held), where
    there is no event to wait for; fails at the first falsy poll.
    """
    end = time.monotonic() + seconds
    while True:
        assert check(), f"stopped holding: {what or getattr(check, '__name__', check)}"
        if time.monotonic() >= end:
            return
        time.sleep(interval)
