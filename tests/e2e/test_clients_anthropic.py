"""The real anthropic SDK against a running gateway: translated to OpenAI upstreams, native to Anthropic ones.

Also the reverse: the openai SDK's chat completions reaching an upstream of ``kind: anthropic``.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.support.clients import Setup, start
from tests.support.policies import outcome

ADMIN = "sk-admin-clients-test"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def env(gateway, fake_upstream) -> Setup:
    return start(gateway, fake_upstream)


def client(s: Setup, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=s.gw.url, api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def test_routed_message_translated_to_an_openai_upstream(env):
    raw = client(env).messages.with_raw_response.create(
        model="router-chat",
        max_tokens=64,
        system="You are terse.",
        stop_sequences=["END"],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}],
    )
    m = raw.parse()
    assert m.content[0].type == "text" and m.content[0].text == "Echo: hello claude"
    assert m.model == "cheap" and m.stop_reason == "end_turn" and m.role == "assistant"
    assert m.usage.input_tokens == 2 and m.usage.output_tokens == 3
    h = raw.headers
    assert h["x-shunter-model"] == "cheap" and h["x-shunter-policy"] == "chat"
    sent = env.cheap.last()
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello claude"},
    ]
    assert sent["max_tokens"] == 64 and sent["stop"] == ["END"]
    row = outcome(env.gw.db, h["x-shunter-request-id"])
    assert row["endpoint"] == "messages" and row["served"] == "cheap" and row["completion_tokens"] == 3


def test_stream_translated(env):
    with client(env).messages.stream(
        model="router-chat", max_tokens=64, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: one two three" == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4 and final.model == "cheap"
    events = list(
        client(env).messages.create(
            model="router-chat", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= {
        e.type for e in events
    }


def test_tools_both_ways_translated_plain_and_streaming(env):
    c = client(env)
    m = c.messages.create(
        model="router-chat",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "weather in Rome?"}],
    )
    (use,) = m.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"echo": "weather in Rome?"}
    assert m.stop_reason == "tool_use"
    sent = env.cheap.last()
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "required"
    back = c.messages.create(
        model="router-chat",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Rome?"},
            {"role": "assistant", "content": [u.model_dump(exclude_none=True) for u in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert back.content[0].text == "Echo: tool said sunny"
    msgs = env.cheap.last()["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == use.id
    assert msgs[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
    with c.messages.stream(
        model="router-chat", max_tokens=64, tools=[WEATHER], messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"echo": "stream it"}


def test_native_to_an_anthropic_upstream(env):
    c = client(env)
    raw = c.messages.with_raw_response.create(
        model="claude",
        max_tokens=32,
        extra_body={"top_k": 5},
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "native hello"}],
    )
    m = raw.parse()
    assert m.content[0].text == "Echo: native hello" and m.model == "claude"
    assert raw.headers["x-shunter-model"] == "claude"
    sent = env.claude.last()
    assert sent["top_k"] == 5 and sent["system"][0]["cache_control"] == {"type": "ephemeral"}  # untouched
    assert sent["model"] == "claude-x"
    assert env.claude.stats()["by_path"].get("/v1/messages") == 1
    with c.messages.stream(model="claude", max_tokens=32, messages=[{"role": "user", "content": "a b c"}]) as s:
        assert "".join(s.text_stream) == "Echo: a b c"
        final = s.get_final_message()
    assert final.model == "claude" and final.usage.input_tokens == 3 and final.usage.output_tokens == 4
    with c.messages.stream(
        model="claude", max_tokens=32, tools=[WEATHER], messages=[{"role": "user", "content": "native tool"}]
    ) as s:
        final = s.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"echo": "native tool"}


def test_chat_clients_reach_an_anthropic_upstream_through_translation(env):
    oa = openai.OpenAI(base_url=env.gw.base_url, api_key="unused", max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(
        model="router-claude-first",
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "from openai"}],
        max_tokens=20,
        stop=["END"],
    )
    r = raw.parse()
    assert r.choices[0].message.content == "Echo: from openai" and r.model == "claude"
    assert r.usage.prompt_tokens == 2 and r.usage.completion_tokens == 3
    sent = env.claude.last()
    assert sent["system"] == "sys" and sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 20
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "from openai"}]}]
    chunks = list(
        oa.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "stream from openai"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream from openai"
    assert chunks[-1].usage.completion_tokens == 4
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}]
    r = oa.chat.completions.create(model="claude", messages=[{"role": "user", "content": "t"}], tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    r = oa.chat.completions.create(
        model="claude",
        tools=tools,
        messages=[
            {"role": "user", "content": "t"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "rainy"},
        ],
    )
    assert r.choices[0].message.content == "Echo: tool said rainy"
    chunks = list(
        oa.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "t"}], tools=tools, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"echo": "t"}'


def test_fallback_from_a_native_upstream_gets_the_translation(env):
    env.claude.control(fail_next=10, fail_status=503)
    raw = client(env).messages.with_raw_response.create(
        model="router-claude-first", max_tokens=16, messages=[{"role": "user", "content": "fall back"}]
    )
    assert raw.parse().content[0].text == "Echo: fall back" and raw.parse().model == "cheap"
    assert raw.headers["x-shunter-reason"] == "fallback"
    assert env.cheap.last()["messages"] == [{"role": "user", "content": "fall back"}]


def test_midstream_failure_ends_with_an_error_event(env):
    env.cheap.control(die_after_chunks=2)
    with pytest.raises(anthropic.APIStatusError) as e:  # the SDK raises on Anthropic's error event
        with client(env).messages.stream(
            model="router-chat", max_tokens=16, messages=[{"role": "user", "content": "a b c d e f"}]
        ) as s:
            list(s.text_stream)
    assert "incomplete" in str(e.value)


def test_errors_in_anthropic_shape(env):
    c = client(env)
    with pytest.raises(anthropic.NotFoundError) as e:
        c.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(f"{env.gw.base_url}/messages", json={"model": "router-chat", "messages": []}, timeout=5)
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.count_tokens(model="router-chat", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 501 and e.value.body["type"] == "error"
    assert "POST /v1/messages" in e.value.body["error"]["message"]


def test_virtual_keys_by_x_api_key_or_authorization(gateway, fake_upstream):
    s = start(gateway, fake_upstream, env={"SHUNTER_ADMIN_KEY": ADMIN}, auth=True)
    made = httpx.post(
        f"{s.gw.url}/admin/keys", json={"policies": ["chat"]}, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    msg = [{"role": "user", "content": "auth"}]
    assert client(s, api_key=key).messages.create(model="router-chat", max_tokens=5, messages=msg).content
    r = httpx.post(
        f"{s.gw.base_url}/messages",
        json={"model": "router-chat", "max_tokens": 5, "messages": msg},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(s, api_key="sk-wrong").messages.create(model="router-chat", max_tokens=5, messages=msg)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "authentication_error"
