"""Anthropic Messages <-> chat translation, checked against the anthropic SDK's own type definitions."""

from __future__ import annotations

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from gateway.errors import APIError
from gateway.translate import anthropic as an

EVENTS = TypeAdapter(RawMessageStreamEvent)
TOOL = {
    "name": "weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def req(**kw) -> an.MessagesRequest:
    base = {"model": "router-chat", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    return an.MessagesRequest.model_validate({**base, **kw})


def test_system_blocks_stop_sequences_and_sampling():
    body = an.to_chat(
        req(
            system=[
                {"type": "text", "text": "Be terse."},
                {"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral"}},
            ],
            stop_sequences=["END"],
            temperature=0.2,
            top_k=5,
            metadata={"user_id": "u1"},
        )
    )
    assert body["messages"][0] == {"role": "system", "content": "Be terse.\nUse French."}
    assert body["messages"][1] == {"role": "user", "content": "hi"}
    assert body["stop"] == ["END"] and body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert body["user"] == "u1" and "top_k" not in body


def test_images_tool_use_and_tool_results_in_order():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True}],
        },
    ]
    msgs = an.to_chat(req(messages=messages))["messages"]
    assert msgs[0]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert msgs[0]["content"][2] == {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    assert msgs[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
        ],
    }
    assert msgs[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert msgs[3] == {"role": "user", "content": "and tomorrow?"}
    assert msgs[4] == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"}


@pytest.mark.parametrize(
    ("choice", "expect", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "weather"}, {"type": "function", "function": {"name": "weather"}}, None),
        ({"type": "none"}, "none", None),
    ],
)
def test_tools_and_tool_choice(choice, expect, parallel):
    body = an.to_chat(req(tools=[TOOL], tool_choice=choice))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": TOOL["input_schema"], "description": TOOL["description"]},
        }
    ]
    assert body["tool_choice"] == expect
    assert body.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0].type",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages[0].content[0].source",
        ),
    ],
)
def test_unsupported_blocks_are_400(kw, param):
    with pytest.raises(APIError) as e:
        an.to_chat(req(**kw))
    assert e.value.status == 400 and e.value.param == param


def test_from_chat_validates_as_sdk_message():
    payload = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
    msg = Message.model_validate(an.from_chat(payload, "cheap"))
    assert msg.stop_reason == "tool_use" and msg.model == "cheap"
    assert msg.content[0].text == "Let me check."
    assert (
        msg.content[1].type == "tool_use"
        and msg.content[1].input == {"city": "Paris"}
        and msg.content[1].id == "call_1"
    )
    assert msg.usage.input_tokens == 9 and msg.usage.output_tokens == 4


@pytest.mark.parametrize(
    ("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_stop_reasons(finish, stop):
    payload = {"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]}
    assert Message.model_validate(an.from_chat(payload, "m")).stop_reason == stop


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    c = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
    if delta is not None or finish:
        c["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage:
        c["usage"] = usage
    return c


def test_stream_text_then_tools_validates_and_accumulates():
    s = an.AnthropicStream("cheap", "msg_1", input_tokens=3)
    events = s.start()
    for c in [
        chunk({"role": "assistant", "content": "Hi"}),
        chunk({"content": " there"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"ci'},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Rome"}'}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}),
    ]:
        events += s.feed(c)
    events += s.finish()
    types = [e["type"] for e in events]
    assert types == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = [e for e in events if e["type"] != "ping"]  # the SDK skips pings before parsing
    for e in events:
        EVENTS.validate_python(e)
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"]["output_tokens"] == 7
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}
    args = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
    assert args == '{"city":"Rome"}'


def test_empty_stream_has_one_empty_text_block():
    s = an.AnthropicStream("m")
    events = s.start() + s.feed(chunk({}, "length")) + s.finish()
    assert [e["type"] for e in events][2:] == [
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


def test_error_shape():
    assert an.error_body(429, "slow down") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert an.error_body(503, "x")["error"]["type"] == "overloaded_error"


# ---------------------------------------------------------------- the reverse: chat client -> anthropic upstream


def test_chat_to_messages():
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "sys1"},
            {"role": "developer", "content": [{"type": "text", "text": "sys2"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "q"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QQ=="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            {"role": "user", "content": "next"},
        ],
        "stop": "END",
        "temperature": 1.5,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u",
        "stream": True,
    }
    out = an.chat_to_messages(body, "claude-x")
    assert out["model"] == "claude-x" and out["system"] == "sys1\n\nsys2" and out["max_tokens"] == an.DEFAULT_MAX_TOKENS
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QQ=="},
    }
    assert out["messages"][1]["content"][0] == {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
        {"type": "text", "text": "next"},
    ]
    assert out["stop_sequences"] == ["END"] and out["temperature"] == 1.0
    assert out["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["metadata"] == {"user_id": "u"} and out["stream"] is True


def test_message_to_chat_completion():
    msg = {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 2}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4, "output_tokens": 6, "cache_read_input_tokens": 2},
    }
    out = an.to_chat_completion(msg, "claude")
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x":2}'}
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12}
    assert out["model"] == "claude" and out["id"] == "chatcmpl-abc"


def test_anthropic_stream_to_chat_chunks_roundtrip():
    """Chat chunks -> Anthropic events -> chat chunks gives the same text, tool call and usage."""
    s = an.AnthropicStream("m", input_tokens=5)
    events = s.start()
    events += s.feed(chunk({"content": "Hello"}))
    events += s.feed(
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"k":'}}]})
    )
    events += s.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "3}"}}]}))
    events += s.feed(chunk({}, "tool_calls"))
    events += s.finish({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    back = an.ChatFromAnthropic("served")
    chunks = [c for e in events for c in back.feed(e)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    args = "".join(
        tc["function"].get("arguments") or ""
        for c in chunks
        if c.get("choices")
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert text == "Hello" and args == '{"k":3}'
    assert back.finish_reason == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert {c["model"] for c in chunks} == {"served"}
