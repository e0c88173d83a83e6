"""``upstream.relay`` in process: events pass through; a broken one ends the stream with our error, secrets redacted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from gateway import secrets
from gateway.upstream.client import UpstreamClient
from gateway.upstream.config import Upstream
from gateway.upstream.forward import open_stream
from gateway.upstream.relay import StreamResult, relay

SECRET = "sk-relay-test-secret-9876543210"
ENV = "SHUNTER_RELAY_TEST_KEY"


def events(raw: bytes) -> list[dict | str]:
    out: list[dict | str] = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def relayed(fake, monkeypatch, wants_usage: bool = True, **control) -> tuple[bytes, StreamResult, bool]:
    monkeypatch.setenv(ENV, SECRET)
    cfg = Upstream.model_validate(
        {
            "base_url": fake.base_url,
            "api_key": f"os.environ/{ENV}",
            "retry": {"attempts": 1},
            "timeouts": {"connect": 1, "first_byte": 5, "total": 30, "idle": 1},
        }
    )
    secrets.register(SimpleNamespace(upstreams={"r": cfg}, server=SimpleNamespace(admin_key=None, redis_url=None)))
    fake.control(reply="one two three four five six", **control)
    c = UpstreamClient("relay-" + "-".join(map(str, control.values())), cfg)
    body = {
        "model": "x",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},  # as the executor asks on the client's behalf
    }

    async def go():
        try:
            opened = await open_stream([c], "/chat/completions", lambda _c: body, True, "p")
            result = StreamResult()
            pieces = [p async for p in relay(opened, "served", wants_usage, 30.0, result)]
            return b"".join(pieces), result, c.slots._value == c.cfg.max_concurrency
        finally:
            await c.aclose()

    return asyncio.run(go())


def test_a_whole_stream_is_relayed_with_the_served_model_and_usage(ab, monkeypatch):
    raw, result, released = relayed(ab[0], monkeypatch)
    evs = events(raw)
    assert evs[-1] == "[DONE]" and result.error is None and released
    chunks = [e for e in evs if isinstance(e, dict)]
    assert {e["model"] for e in chunks} == {"served"}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in chunks if e["choices"]) == (
        "one two three four five six"
    )
    assert chunks[-1]["usage"] == result.usage and result.finish_reason == "stop"


def test_the_usage_chunk_asked_for_on_the_clients_behalf_is_dropped(ab, monkeypatch):
    raw, result, _ = relayed(ab[0], monkeypatch, wants_usage=False)
    assert result.usage is not None and b'"usage"' not in raw


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("bad_chunk", "midstream_bad_chunk", "upstream_bad_response"),
        ("non_json_chunk", "midstream_bad_chunk", "upstream_bad_response"),
        ("error_event", "midstream_upstream_error", "upstream_error"),
        ("reset_mid_body", "midstream_disconnected", "upstream_disconnected"),
        ("stall_mid_body", "midstream_idle_timeout", "upstream_idle_timeout"),
    ],
)
def test_a_broken_stream_ends_with_our_error_event(ab, monkeypatch, kind, error, code):
    raw, result, released = relayed(ab[0], monkeypatch, body_fault=kind)
    assert SECRET.encode() not in raw
    evs = events(raw)
    assert isinstance(evs[0], dict) and evs[0]["choices"][0]["delta"]["content"] == "one"  # relayed before the fault
    last = evs[-1]
    assert isinstance(last, dict) and last["error"]["code"] == code
    assert result.error == error and released
    if kind == "error_event":
        assert "[REDACTED]" in last["error"]["message"] and "overloaded" in last["error"]["message"]
    if kind == "stall_mid_body":
        assert "1s (the idle timeout)" in last["error"]["message"]
