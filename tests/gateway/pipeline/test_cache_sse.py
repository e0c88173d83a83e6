"""The response cache (exact and semantic) and the one "answer as SSE" writer, in process."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import orjson

from gateway import cache
from gateway.pipeline.sse import answer_events
from gateway.policy.schema import ResponseCache
from gateway.state import InProcessState

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
TEXT = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "text": "hello", "finish_reason": "stop"}],
}


def parsed(events: list[bytes]) -> list:
    return [e[6:-2].decode() if e.startswith(b"data: [") else orjson.loads(e[6:-2]) for e in events]


def test_chat_answer_as_sse_keeps_tool_call_order_with_the_index_first():
    evs = parsed(answer_events(CHAT, include_usage=True))
    assert evs[-1] == "[DONE]"
    first, last, usage = evs[0], evs[1], evs[2]
    assert first["object"] == "chat.completion.chunk"
    calls = first["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["id"]) for c in calls] == [(0, "c1"), (1, "c2")]
    assert next(iter(calls[0])) == "index"
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 5


def test_text_completion_as_sse_is_text_then_finish():
    evs = parsed(answer_events(TEXT, include_usage=True))
    assert [e["choices"][0] for e in evs[:2]] == [
        {"index": 0, "text": "hello", "finish_reason": None},
        {"index": 0, "text": "", "finish_reason": "stop"},
    ]
    assert {e["object"] for e in evs[:2]} == {"text_completion"}
    assert evs[2] == "[DONE]"  # no usage in the payload: no usage chunk


def _rt(semantic: bool) -> SimpleNamespace:
    cfg = ResponseCache(ttl=60, semantic=semantic, similarity=0.9)
    return SimpleNamespace(policies={"p": SimpleNamespace(cfg=SimpleNamespace(cache=cfg))}, embedder=None)


def test_exact_hit_after_store_and_fields_that_do_not_change_the_answer_are_ignored():
    shared, rt = InProcessState(), _rt(False)
    d = SimpleNamespace(policy="p", embedding=None)
    body = {"model": "router-p", "messages": [{"role": "user", "content": "hi"}]}

    async def go():
        miss = await cache.lookup(shared, rt, d, body, "hi")
        await miss.store(dict(CHAT))
        hit = await cache.lookup(shared, rt, d, {**body, "stream": True, "user": "u"}, "hi")
        other = await cache.lookup(shared, rt, d, {**body, "temperature": 0.1}, "hi")
        return miss, hit, other

    miss, hit, other = asyncio.run(go())
    assert not miss.hit and miss.headers() == {"x-shunter-cache": "miss"}
    assert hit.hit and hit.payload == CHAT and hit.model == "m"
    assert not other.hit


def test_semantic_hit_needs_the_similarity_and_the_same_parameters():
    shared, rt = InProcessState(), _rt(True)
    v = np.ones(8, np.float32)
    near, far = v + 0.01, np.array([1, -1] * 4, np.float32)
    body = {"model": "router-p", "messages": [{"role": "user", "content": "a"}]}

    async def go():
        first = await cache.lookup(shared, rt, SimpleNamespace(policy="p", embedding=v), body, "a")
        await first.store(dict(CHAT))
        q = {**body, "messages": [{"role": "user", "content": "b"}]}
        close = await cache.lookup(shared, rt, SimpleNamespace(policy="p", embedding=near), q, "b")
        distant = await cache.lookup(shared, rt, SimpleNamespace(policy="p", embedding=far), q, "b")
        other_params = await cache.lookup(
            shared, rt, SimpleNamespace(policy="p", embedding=near), {**q, "temperature": 1.0}, "b"
        )
        return close, distant, other_params

    close, distant, other_params = asyncio.run(go())
    assert close.hit and close.similarity is not None and close.similarity > 0.99
    assert not distant.hit and not other_params.hit


def test_a_disabled_cache_stores_nothing():
    rt = SimpleNamespace(policies={"p": SimpleNamespace(cfg=SimpleNamespace(cache=None))})

    async def go():
        lk = await cache.lookup(InProcessState(), rt, SimpleNamespace(policy="p", embedding=None), {}, "")
        await lk.store(dict(CHAT))
        return lk

    lk = asyncio.run(go())
    assert not lk.enabled and lk.headers() == {}
