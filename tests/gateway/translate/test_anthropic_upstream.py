"""``upstream.anthropic.AsChat``: an Anthropic answer read as OpenAI chat, whole or split anywhere."""

from __future__ import annotations

import orjson
import pytest

from gateway.translate.sse import Parser
from gateway.upstream.anthropic import AsChat, prepare
from gateway.upstream.client import UpstreamClient
from gateway.upstream.config import Upstream

EVENTS = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "c",
                "usage": {"input_tokens": 7, "output_tokens": 1},
            },
        },
    ),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
RAW = b"".join(f"event: {n}\r\ndata: {orjson.dumps(d).decode()}\r\n\r\n".encode() for n, d in EVENTS)


class Pieces:
    """Just the part of ``UpstreamResponse`` that AsChat reads."""

    def __init__(self, pieces: list[bytes], status: int = 200) -> None:
        self.pieces, self.status_code, self.headers = list(pieces), status, {}

    async def next_chunk(self, wait=None) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    async def aread(self) -> bytes:
        return b"".join(self.pieces)

    async def aclose(self) -> None:
        return None


async def drain(resp: AsChat) -> list[dict | str]:
    out, p = [], Parser()
    while piece := await resp.next_chunk():
        out += [e.data if e.data == "[DONE]" else orjson.loads(e.data) for e in p.feed(piece)]
    return out


@pytest.mark.parametrize("size", [1, 7, 64, len(RAW)])
async def test_stream_reads_as_chat_chunks_however_split(size):
    pieces = [RAW[i : i + size] for i in range(0, len(RAW), size)]
    chunks = await drain(AsChat(Pieces(pieces), "claude"))  # type: ignore[arg-type]
    assert chunks[-1] == "[DONE]"
    body = [c for c in chunks if isinstance(c, dict)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in body if c["choices"])
    calls = [tc for c in body if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert text == "Hello world"
    assert calls[0]["id"] == "toolu_1" and calls[0]["function"]["name"] == "f"
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"a": 1}'
    assert [c["choices"][0]["finish_reason"] for c in body if c["choices"]][-1] == "tool_calls"
    assert body[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert {c["model"] for c in body} == {"claude"}


async def test_plain_and_error_bodies():
    msg = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    out = orjson.loads(await AsChat(Pieces([orjson.dumps(msg)]), "claude").aread())  # type: ignore[arg-type]
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "hi"},
        "finish_reason": "length",
    }
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    out = orjson.loads(await AsChat(Pieces([orjson.dumps(err)], 529), "claude").aread())  # type: ignore[arg-type]
    assert out["error"]["message"] == "busy" and out["error"]["type"] == "overloaded_error"


def test_client_routes_chat_calls_to_messages_with_anthropic_headers(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    cfg = Upstream(
        kind="anthropic",
        base_url="https://api.anthropic.com/v1",
        api_key="os.environ/ANTHROPIC_API_KEY",
        model="claude-x",
    )
    c = UpstreamClient("claude", cfg)
    h = c.headers()
    assert h["x-api-key"] == "sk-ant-test" and h["anthropic-version"] and "Authorization" not in h
    path, body = prepare(
        c, "/chat/completions", {"model": "claude", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9}
    )
    assert path == "/messages" and body == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        "max_tokens": 9,
    }
    assert c.speaks("anthropic") and not c.speaks("chat")
    oa = UpstreamClient("gpt", Upstream(base_url="http://x/v1", capabilities=["responses"]))
    assert oa.speaks("chat") and oa.speaks("responses") and not oa.speaks("anthropic")
    assert prepare(oa, "/chat/completions", {"a": 1}) == ("/chat/completions", {"a": 1})
