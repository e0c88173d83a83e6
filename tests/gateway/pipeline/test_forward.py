"""``upstream.forward`` in process: checked bodies, retries and fallback, and every exit frees the slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway import metrics
from gateway.errors import APIError
from gateway.upstream.client import UpstreamClient
from gateway.upstream.config import Upstream
from gateway.upstream.forward import open_stream

CHAT = "/chat/completions"
BODY = {"model": "x", "messages": [{"role": "user", "content": "hello"}]}


def client(fake: Any, name: str, **cfg: Any) -> UpstreamClient:
    base = {
        "base_url": fake.base_url,
        "retry": {"attempts": 1, "backoff": 0.01},
        "breaker": {"consecutive_failures": 100},
        "timeouts": {"connect": 1, "first_byte": 5, "total": 30, "idle": 1},
        "max_concurrency": 2,
    }
    return UpstreamClient(name, Upstream.model_validate({**base, **cfg}))


def body_for(_: UpstreamClient) -> dict:
    return dict(BODY)


def free(c: UpstreamClient) -> bool:
    """Every slot of the upstream is free and its in-flight gauge is 0."""
    return c.slots._value == c.cfg.max_concurrency and metrics.INFLIGHT.labels(c.name)._value.get() == 0


def test_plain_call_is_read_checked_and_releases_its_slot(ab):
    a, _ = ab
    c = client(a, "fa-plain")

    async def go():
        try:
            opened = await open_stream([c], CHAT, body_for, False, "p")
            return opened, free(c)
        finally:
            await c.aclose()

    opened, released = asyncio.run(go())
    assert opened.payload["choices"][0]["message"]["content"] == "Echo: hello"
    assert opened.closed and released


@pytest.mark.parametrize("kind", ["non_json", "json_list", "wrong_choices", "string_usage", "reset_mid_body"])
def test_malformed_or_cut_body_falls_back(ab, kind):
    a, b = ab
    a.control(body_fault=kind)
    ca, cb = client(a, f"fa-{kind}"), client(b, f"fb-{kind}")

    async def go():
        try:
            opened = await open_stream([ca, cb], CHAT, body_for, False, "p")
            return opened, free(ca) and free(cb)
        finally:
            await ca.aclose()
            await cb.aclose()

    opened, released = asyncio.run(go())
    assert opened.client is cb and opened.payload["model"] == "b-v1"
    assert [(x.upstream, x.error) for x in opened.attempts] == [
        (ca.name, "body_reset" if kind == "reset_mid_body" else "bad_response")
    ]
    assert released


def test_stalled_body_is_an_idle_timeout(ab):
    a, _ = ab
    a.control(body_fault="stall_mid_body")
    c = client(a, "fa-stall")

    async def go():
        try:
            with pytest.raises(APIError) as ei:
                await open_stream([c], CHAT, body_for, False, "p")
            return ei.value, free(c)
        finally:
            await c.aclose()

    err, released = asyncio.run(go())
    assert (err.status, err.code) == (504, "upstream_idle_timeout") and "1s (the idle timeout)" in err.message
    assert released


def test_an_unexpected_error_inside_an_attempt_still_frees_the_slot(ab):
    a, _ = ab
    c = client(a, "fa-unexpected")

    def unserialisable(_: UpstreamClient) -> dict:
        return {**BODY, "bad": object()}  # orjson raises TypeError after the slot was taken

    async def go():
        try:
            with pytest.raises(TypeError):
                await open_stream([c], CHAT, unserialisable, False, "p")
            return free(c)
        finally:
            await c.aclose()

    assert asyncio.run(go())


def test_a_stream_keeps_its_slot_until_closed_and_close_is_idempotent(ab):
    a, _ = ab
    c = client(a, "fa-stream")

    async def go():
        try:
            opened = await open_stream([c], CHAT, lambda _c: {**BODY, "stream": True}, True, "p")
            held = c.slots._value == c.cfg.max_concurrency - 1
            await opened.aclose()
            await opened.aclose()
            return opened, held, free(c)
        finally:
            await c.aclose()

    opened, held, released = asyncio.run(go())
    assert opened.first_chunk and opened.first_chunk.startswith(b"data: ")
    assert held and released
