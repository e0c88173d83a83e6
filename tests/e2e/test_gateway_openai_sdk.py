"""The real openai SDK against a running ``shunter serve`` with fake upstream processes."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.support.procs import upstream_entry


@pytest.fixture
def two_fakes(fake_upstream):
    return fake_upstream("cheap-v1"), fake_upstream("strong-v1")


@pytest.fixture
def gw(gateway, two_fakes):
    cheap, strong = two_fakes
    cfg = {
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10.0),
        },
        "policies": {
            "chat": {"aliases": ["auto"], "candidates": ["cheap", "strong"], "objective": {"threshold": 0.5}},
        },
    }
    return gateway(cfg)


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def test_plain_chat_reports_served_model_and_usage(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "hello there"}]
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "Echo: hello there"
    assert resp.model == "cheap"
    assert resp.usage.prompt_tokens == 2 and resp.usage.completion_tokens == 3
    h = raw.headers
    assert h["x-shunter-model"] == "cheap"
    assert h["x-shunter-policy"] == "chat"
    assert h["x-shunter-request-id"].startswith("req_")
    assert "x-shunter-router" in h


def test_streaming_chat_with_usage(gw):
    stream = client(gw).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "one two three four five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four five"
    assert {c.model for c in chunks} == {"cheap"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_streaming_without_include_usage_hides_usage_chunk(gw):
    chunks = list(
        client(gw).chat.completions.create(
            model="router-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_async_client_plain_and_stream(gw):
    async def run():
        c = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        r = await c.chat.completions.create(model="router-chat", messages=[{"role": "user", "content": "async hi"}])
        s = await c.chat.completions.create(
            model="router-chat", messages=[{"role": "user", "content": "async stream"}], stream=True
        )
        parts = [ch.choices[0].delta.content or "" async for ch in s if ch.choices]
        await c.close()
        return r, "".join(parts)

    r, streamed = asyncio.run(run())
    assert r.choices[0].message.content == "Echo: async hi"
    assert streamed == "Echo: async stream"


def test_tool_calls_pass_through_both_ways(gw, two_fakes):
    cheap, _ = two_fakes
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    r = client(gw).chat.completions.create(
        model="router-chat",
        messages=[{"role": "user", "content": "weather in Paris"}],
        tools=tools,
        tool_choice="auto",
        seed=7,
        extra_body={"vendor_extra": {"x": 1}},
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    sent = cheap.last()
    assert sent["tools"] == tools and sent["tool_choice"] == "auto" and sent["seed"] == 7
    assert sent["vendor_extra"] == {"x": 1}
    assert sent["model"] == "cheap-v1"
    # and back: the assistant's tool call plus the tool result go upstream untouched
    msgs = [
        {"role": "user", "content": "weather in Paris"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    client(gw).chat.completions.create(model="router-chat", messages=msgs, tools=tools)
    sent = cheap.last()
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


def test_streaming_tool_call(gw):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(
        client(gw).chat.completions.create(
            model="router-chat", messages=[{"role": "user", "content": "x"}], tools=tools, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "lookup"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_text_completions_and_passthrough(gw):
    c = client(gw)
    r = c.completions.create(model="router-chat", prompt="complete me")
    assert r.choices[0].text == "Echo: complete me" and r.model == "cheap"
    r = c.chat.completions.create(model="strong", messages=[{"role": "user", "content": "direct"}])
    assert r.model == "strong"
    s = list(c.completions.create(model="router-chat", prompt="stream me", stream=True))
    assert "".join(ch.choices[0].text for ch in s if ch.choices) == "Echo: stream me"


def test_models_lists_policies_and_upstreams(gw):
    ids = [m.id for m in client(gw).models.list()]
    assert ids[:1] == ["router-chat"]
    assert {"auto", "cheap", "strong"} <= set(ids)


@pytest.mark.parametrize(
    "kwargs,status,param",
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, None),
        ({"json": {"model": "router-chat"}}, 400, "messages"),
        ({"json": {"model": "nope", "messages": [{"role": "user", "content": "x"}]}}, 404, "model"),
        (
            {
                "content": b'{"model":"router-chat","messages":[{"role":"user","content":"'
                + b"x" * 2_000_000
                + b'"}]}',
                "headers": {"content-type": "application/json"},
            },
            413,
            None,
        ),
        (
            {"content": b"model=router-chat", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            None,
        ),
        ({"json": {"model": "router-chat", "messages": [{"role": "wizard", "content": "x"}]}}, 400, "messages[0].role"),
        (
            {
                "json": {
                    "model": "router-chat",
                    "messages": [],
                }
            },
            400,
            "messages",
        ),
        (
            {"json": {"model": "router-chat", "messages": [{"role": "user", "content": "x"}], "temperature": 9}},
            400,
            "temperature",
        ),
    ],
)
def test_bad_input_gets_openai_error(gw, kwargs, status, param):
    r = httpx.post(f"{gw.base_url}/chat/completions", timeout=10, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param:
        assert err["param"] == param
    assert httpx.get(f"{gw.url}/healthz").status_code == 200


def test_sdk_raises_typed_errors(gw):
    with pytest.raises(openai.NotFoundError):
        client(gw).chat.completions.create(model="gpt-5-ultra", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client(gw).chat.completions.create(model="router-chat", messages=[])
