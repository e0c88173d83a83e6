"""``translate.streams``: chat SSE translated for Responses/Anthropic clients, native streams passed through."""

from __future__ import annotations

import orjson
from anthropic.types import RawMessageStreamEvent
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.translate import anthropic as an
from gateway.translate import responses as rs
from gateway.translate.sse import Parser
from gateway.translate.streams import AnthropicPassthrough, ResponsesPassthrough, from_chat


def sse(*objs) -> list[bytes]:
    return [b"data: " + (o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n\n" for o in objs]


def chunk(delta=None, finish=None, usage=None) -> dict:
    c = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "cheap", "choices": []}
    if delta is not None or finish:
        c["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage:
        c["usage"] = usage
    return c


async def collect(gen) -> list[tuple[str | None, dict]]:
    p, out = Parser(), []
    async for piece in gen:
        out += [(e.event, orjson.loads(e.data)) for e in p.feed(piece)]
    return out


async def agen(items):
    for i in items:
        yield i


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_responses_from_chat_runs_the_hook_before_completed():
    order: list[str] = []
    tr = rs.ResponsesStream(rs.ResponsesRequest(model="m", input="x", stream=True), "resp_1", "cheap")

    async def hook():
        order.append("stored")

    raw = b"".join(sse(chunk({"content": "Hi"}), chunk({}, "stop"), chunk(usage=USAGE), b"[DONE]"))
    events = await collect(from_chat(agen([raw[:10], raw[10:]]), tr, hook))
    assert events[-1][0] == "response.completed" and order == ["stored"]
    assert events[-1][1]["response"]["usage"]["total_tokens"] == 5
    for name, data in events:
        assert name == data["type"]
        TypeAdapter(ResponseStreamEvent).validate_python(data)


async def test_midstream_error_becomes_failed_or_anthropic_error():
    err = {"error": {"message": "The upstream stream failed", "type": "upstream_error", "code": "upstream_timeout"}}
    tr = rs.ResponsesStream(rs.ResponsesRequest(model="m", input="x"), "resp_1", "cheap")
    events = await collect(from_chat(agen(sse(chunk({"content": "Hi"}), err)), tr))
    assert events[-1][0] == "response.failed"
    events = await collect(from_chat(agen(sse(chunk({"content": "Hi"}), err)), an.AnthropicStream("cheap")))
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "timeout_error", "message": "The upstream stream failed"}},
    )


async def test_anthropic_from_chat_validates():
    raw = sse(chunk({"content": "Hi"}), chunk({}, "stop"), chunk(usage=USAGE), b"[DONE]")
    events = await collect(from_chat(agen(raw), an.AnthropicStream("cheap", input_tokens=3)))
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    for _, data in events:
        if data["type"] != "ping":
            TypeAdapter(RawMessageStreamEvent).validate_python(data)


def test_anthropic_passthrough_rewrites_model_and_reads_usage():
    p = AnthropicPassthrough("claude")
    raw = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-x","usage":{"input_tokens":4,"output_tokens":1}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"yo"}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":6}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    out = p.feed(raw[:50]) + p.feed(raw[50:])
    events = Parser().feed(out)
    assert orjson.loads(events[0].data)["message"]["model"] == "claude"
    assert [e.event for e in events] == ["message_start", "content_block_delta", "message_delta", "message_stop"]
    assert (
        p.done
        and p.finish_reason == "length"
        and p.chat_usage() == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    )


def test_responses_passthrough_rewrites_id_and_keeps_final():
    p = ResponsesPassthrough("resp_gw", "gpt")
    created = {
        "type": "response.created",
        "sequence_number": 0,
        "response": {"id": "resp_up", "model": "gpt-x", "status": "in_progress"},
    }
    done = {
        "type": "response.completed",
        "sequence_number": 1,
        "response": {
            "id": "resp_up",
            "model": "gpt-x",
            "status": "completed",
            "output": [rs.message_item("hi")],
            "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3},
        },
    }
    out = p.feed(
        b"".join(f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n".encode() for e in (created, done))
    )
    events = [orjson.loads(e.data) for e in Parser().feed(out)]
    assert {e["response"]["id"] for e in events} == {"resp_gw"} and {e["response"]["model"] for e in events} == {"gpt"}
    assert p.done and p.final["output"][0]["content"][0]["text"] == "hi"
    assert p.chat_usage() == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
