"""The real openai SDK's Responses API and embeddings against a running gateway and fake upstreams."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fakes.wire import vector
from tests.support.clients import Setup, start
from tests.support.policies import outcome

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def env(gateway, fake_upstream) -> Setup:
    return start(gateway, fake_upstream)


def client(s: Setup) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.gw.base_url, api_key="unused", max_retries=0)


def test_plain_response_routed_with_instructions_headers_usage_and_outcome(env):
    raw = client(env).responses.with_raw_response.create(
        model="router-chat", input="hello there", instructions="Be brief.", max_output_tokens=50
    )
    r = raw.parse()
    assert r.output_text == "Echo: hello there"
    assert r.model == "cheap" and r.status == "completed" and r.id.startswith("resp_")
    assert r.usage.input_tokens == 2 and r.usage.output_tokens == 3 and r.usage.total_tokens == 5
    h = raw.headers
    assert h["x-shunter-model"] == "cheap" and h["x-shunter-policy"] == "chat"
    assert h["x-shunter-request-id"].startswith("req_") and h["x-shunter-router"]
    sent = env.cheap.last()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert sent["max_tokens"] == 50 and sent["model"] == "cheap-v1"
    row = outcome(env.gw.db, h["x-shunter-request-id"])
    assert row["endpoint"] == "responses" and row["served"] == "cheap"
    assert row["prompt_tokens"] == 2 and row["completion_tokens"] == 3 and row["cost_usd"] > 0


def test_streaming_events_and_stream_helper(env):
    c = client(env)
    events = list(c.responses.create(model="router-chat", input="one two three four", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert "response.output_item.added" in types and "response.output_text.done" in types
    assert types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: one two three four"
    done = events[-1].response
    assert done.output_text == text and done.usage.output_tokens == 5 and done.model == "cheap"
    with c.responses.stream(model="router-chat", input="helper works") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Echo: helper works"


def test_previous_response_id_continues_the_conversation(env):
    c = client(env)
    first = c.responses.create(model="router-chat", input="my name is Ada", instructions="first rules")
    second = c.responses.create(model="router-chat", input="what is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "Echo: what is my name?"
    assert env.cheap.last()["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Echo: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]  # the first request's instructions are not carried over, as in OpenAI's API
    third = c.responses.create(model="router-chat", input="and again?", previous_response_id=second.id, stream=True)
    assert list(third)[-1].type == "response.completed"
    assert [m["content"] for m in env.cheap.last()["messages"]][-2:] == ["Echo: what is my name?", "and again?"]
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="router-chat", input="x", previous_response_id="resp_unknown")
    assert e.value.body["param"] == "previous_response_id"
    assert "resp_unknown" in e.value.body["message"]


def test_function_tools_both_ways_plain_and_streaming(env):
    c = client(env)
    r = c.responses.create(model="router-chat", input="weather in Paris?", tools=[WEATHER], tool_choice="auto")
    (call,) = r.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"echo": "weather in Paris?"}'
    sent = env.cheap.last()
    assert sent["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]
    assert sent["tool_choice"] == "auto"
    back = c.responses.create(
        model="router-chat",
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert back.output_text == "Echo: tool said sunny"
    msgs = env.cheap.last()["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == call.call_id
    assert msgs[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
    events = list(c.responses.create(model="router-chat", input="stream a call", tools=[WEATHER], stream=True))
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types and "response.function_call_arguments.done" in types
    item = events[-1].response.output[0]
    assert item.type == "function_call" and item.arguments == '{"echo": "stream a call"}'


def test_midstream_failure_ends_with_response_failed(env):
    env.cheap.control(die_after_chunks=2)
    events = list(client(env).responses.create(model="router-chat", input="a b c d e f", stream=True))
    assert events[-1].type == "response.failed"
    assert "incomplete" in events[-1].response.error.message
    assert events[-1].response.output[0].content[0].text.startswith("Echo:")


def test_native_passthrough_when_the_upstream_declares_responses(env):
    c = client(env)
    raw = c.responses.with_raw_response.create(model="native", input="native please")
    r = raw.parse()
    assert r.output_text == "Echo: native please" and r.model == "native"
    assert r.id.startswith("resp_") and raw.headers["x-shunter-model"] == "native"
    assert env.native.stats()["by_path"].get("/v1/responses") == 1
    assert env.native.last()["model"] == "native-v1" and "shunter" not in env.native.last()
    nxt = c.responses.create(model="native", input="second", previous_response_id=r.id)
    sent = env.native.last()
    assert "previous_response_id" not in sent  # the gateway expands its own stored conversation
    assert [i.get("role") for i in sent["input"]] == ["user", "assistant", "user"]
    assert nxt.output_text == "Echo: second"
    events = list(c.responses.create(model="native", input="native stream", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.model == "native"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Echo: native stream"
    assert "/v1/chat/completions" not in env.native.stats()["by_path"]


def test_embeddings_pass_through_counted_and_priced(env):
    c = client(env)
    raw = c.embeddings.with_raw_response.create(model="embedder", input=["alpha beta", "gamma"])
    r = raw.parse()
    assert r.data[0].embedding == pytest.approx(vector("alpha beta"), abs=1e-6)
    assert r.data[1].embedding == pytest.approx(vector("gamma"), abs=1e-6)
    assert r.usage.prompt_tokens == 3 and r.model == "embedder"
    assert raw.headers["x-shunter-model"] == "embedder"
    floats = c.embeddings.create(model="embedder", input="x y", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vector("x y"), abs=1e-6)
    row = outcome(env.gw.db, raw.headers["x-shunter-request-id"])
    assert row["endpoint"] == "embeddings" and row["served"] == "embedder" and row["prompt_tokens"] == 3
    assert row["cost_usd"] == pytest.approx(3 * 0.02 / 1e6)
    metrics = httpx.get(f"{env.gw.url}/metrics", timeout=5).text
    assert 'shunter_tokens_total{kind="prompt",model="embedder"}' in metrics or "embedder" in metrics
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model="cheap", input="x")
    assert "embedder" in e.value.body["message"] and e.value.body["param"] == "model"


def test_unsupported_endpoints_say_which_are_served(env):
    c = client(env)
    with pytest.raises(openai.APIStatusError) as e:
        c.images.generate(model="dall-e-3", prompt="a cat")
    assert e.value.status_code == 501
    assert "POST /v1/responses" in e.value.body["message"] and "POST /v1/messages" in e.value.body["message"]
    r = httpx.post(f"{env.gw.base_url}/no/such/thing", json={}, timeout=5)
    assert r.status_code == 404 and "POST /v1/embeddings" in r.json()["error"]["message"]
    r = httpx.get(f"{env.gw.base_url}/responses", timeout=5)
    assert r.status_code == 405 and "POST /v1/responses" in r.json()["error"]["message"]
