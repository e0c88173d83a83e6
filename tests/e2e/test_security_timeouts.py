"""Slow and stuck clients cannot hold upstream connections: request deadline, disconnects."""

from __future__ import annotations

import re
import socket
import time

import httpx
import orjson

from tests.support.procs import upstream_entry
from tests.support.wait import holds_for, wait_until


def _gw(gateway, a, b, request_timeout: float = 2.0):
    return gateway(
        {
            "server": {"request_timeout": request_timeout},
            "upstreams": {
                "a": upstream_entry(a, timeouts={"connect": 1, "first_byte": 30, "total": 300, "idle": 30}),
                "b": upstream_entry(b),
            },
            "policies": {"chat": {"candidates": ["a", "b"]}},
        }
    )


def _inflight(gw, upstream: str = "a") -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    m = re.search(rf'shunter_upstream_inflight_requests\{{upstream="{upstream}"\}} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def _wait_inflight_zero(gw, within: float) -> float:
    t0 = time.monotonic()
    wait_until(lambda: _inflight(gw) == 0, within, 0.1, "the upstream connection is released")
    return time.monotonic() - t0


def _body(stream: bool) -> dict:
    return {"model": "a", "messages": [{"role": "user", "content": "x"}], "stream": stream}


def test_request_timeout_before_first_byte_is_a_504(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = _gw(gateway, a, b)
    a.control(delay=20)
    t0 = time.monotonic()
    r = httpx.post(f"{gw.base_url}/chat/completions", json=_body(False), timeout=30)
    took = time.monotonic() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "request_timeout"
    assert 1.9 < took < 5
    _wait_inflight_zero(gw, 2)


def test_request_timeout_mid_stream_ends_with_an_error_event(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = _gw(gateway, a, b)
    a.control(reply=" ".join(f"w{i}" for i in range(40)), chunks=40, chunk_delay=0.2)
    events = []
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=_body(True), timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert len(events) > 3  # it streamed for a while ...
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == "request_timeout"  # ... then ended cleanly
    _wait_inflight_zero(gw, 2)


def test_client_disconnect_closes_the_upstream_stream(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = _gw(gateway, a, b, request_timeout=120)
    a.control(reply=" ".join(f"w{i}" for i in range(60)), chunks=60, chunk_delay=0.5)  # 30 s of stream
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=_body(True), timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert _inflight(gw) == 1  # the upstream call is open while the client reads
                break  # leaving the loop closes the connection
    # the client went away after one event: the upstream call is closed within a chunk or two
    assert _wait_inflight_zero(gw, 3) < 3


def test_stuck_client_that_stops_reading_is_cut_off(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = _gw(gateway, a, b, request_timeout=3)
    a.control(reply=" ".join(f"word{i}" for i in range(300_000)), chunks=3000)  # ~5 MB of events
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", gw.port))
    body = orjson.dumps(_body(True))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        s.recv(1024)  # the stream started ...
        holds_for(lambda: _inflight(gw) == 1, 1.0, 0.1, "stuck behind a client that reads nothing more")
        assert _wait_inflight_zero(gw, 5) < 5  # the request deadline freed the upstream
    finally:
        s.close()
    r = httpx.post(f"{gw.base_url}/chat/completions", json=_body(False), timeout=10)  # still serving
    assert r.status_code == 200


def test_slow_body_upload_hits_the_request_deadline(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = _gw(gateway, a, b, request_timeout=2)
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.settimeout(10)
    t0 = time.monotonic()
    try:  # announce 1000 bytes, send 10, then trickle nothing
        s.sendall(
            b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": '
        )
        head = b""
        while b"request_timeout" not in head:
            more = s.recv(4096)
            if not more:
                break
            head += more
    finally:
        s.close()
    assert head.startswith(b"HTTP/1.1 504") and b"request_timeout" in head
    assert 1.9 < time.monotonic() - t0 < 5
