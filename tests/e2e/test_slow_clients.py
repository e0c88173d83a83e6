"""Slow and idle clients against a running gateway: header-read timeout, keep-alive timeout and
the connection cap (``gateway/serving.py``; SHUNTER_HEADER_TIMEOUT, SHUNTER_KEEP_ALIVE_TIMEOUT,
SHUNTER_MAX_CONNECTIONS)."""

from __future__ import annotations

import socket
import time

import httpx

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

ENV = {"SHUNTER_HEADER_TIMEOUT": "1", "SHUNTER_KEEP_ALIVE_TIMEOUT": "1", "SHUNTER_MAX_CONNECTIONS": "30"}


def _gw(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    cfg = {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    return gateway(cfg, env=ENV)


def _closed_within(s: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """Read (sending ``trickle`` one byte at a time meanwhile) until the server closes; (seconds, bytes)."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(0.2)
    i = 0
    while time.monotonic() - t0 < seconds:
        if i < len(trickle):
            try:
                s.sendall(trickle[i : i + 1])
            except OSError:
                return time.monotonic() - t0, got
            i += 1
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0, got
        if not chunk:
            return time.monotonic() - t0, got
        got += chunk
    raise AssertionError(f"connection still open after {seconds}s (received {got[:80]!r})")


def test_headers_sent_one_byte_at_a_time_are_cut_off(gateway, fake_upstream):
    gw = _gw(gateway, fake_upstream)
    s = socket.create_connection(("127.0.0.1", gw.port))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 200
    )
    took, got = _closed_within(s, 10, trickle=head)
    assert took < 4, took
    assert got.startswith(b"HTTP/1.1 408")
    s.close()


def test_idle_connection_without_a_request_is_closed(gateway, fake_upstream):
    gw = _gw(gateway, fake_upstream)
    s = socket.create_connection(("127.0.0.1", gw.port))
    took, _ = _closed_within(s, 10)
    assert took < 4, took
    s.close()


def test_kept_alive_connection_is_closed_when_idle(gateway, fake_upstream):
    gw = _gw(gateway, fake_upstream)
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    took, _ = _closed_within(s, 10)
    assert took < 4, took
    s.close()


def test_connections_over_the_cap_are_refused_at_once_and_service_goes_on(gateway, fake_upstream):
    gw = _gw(gateway, fake_upstream)
    idle = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(30)]
    try:
        extra = socket.create_connection(("127.0.0.1", gw.port))
        took, got = _closed_within(extra, 5)
        assert took < 1, took
        assert got.startswith(b"HTTP/1.1 503"), got
        extra.close()
    finally:
        for s in idle:
            s.close()

    def served() -> bool:  # the closed sockets leave the server's set as it notices them
        try:
            body = {"model": "router-p", "messages": [{"role": "user", "content": "hi"}]}
            return httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(served, 10, what="the gateway serves again after the idle connections closed")
