"""LangChain's ChatOpenAI (Responses API) and ChatAnthropic against a running gateway and fake upstreams."""

from __future__ import annotations

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.support.clients import Setup, start


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


@pytest.fixture
def env(gateway, fake_upstream) -> Setup:
    return start(gateway, fake_upstream)


def openai_llm(s: Setup, model: str = "router-chat") -> ChatOpenAI:
    return ChatOpenAI(base_url=s.gw.base_url, api_key="unused", model=model, use_responses_api=True, max_retries=0)


def anthropic_llm(s: Setup, model: str = "router-chat") -> ChatAnthropic:
    return ChatAnthropic(base_url=s.gw.url, api_key="unused", model=model, max_tokens=64, max_retries=0)


@pytest.mark.parametrize("make", [openai_llm, anthropic_llm], ids=["ChatOpenAI-responses", "ChatAnthropic"])
def test_invoke_and_stream(env, make):
    llm = make(env)
    msg = llm.invoke("hello langchain")
    assert msg.text == "Echo: hello langchain"
    assert msg.usage_metadata["input_tokens"] == 2 and msg.usage_metadata["output_tokens"] == 3
    chunks = list(llm.stream("stream langchain please"))
    assert "".join(c.text for c in chunks) == "Echo: stream langchain please"
    assert env.cheap.stats()["by_path"].get("/v1/chat/completions", 0) >= 2


@pytest.mark.parametrize("make", [openai_llm, anthropic_llm], ids=["ChatOpenAI-responses", "ChatAnthropic"])
def test_tool_calls_both_ways(env, make):
    llm = make(env).bind_tools([get_weather])
    question = HumanMessage("weather in Oslo?")
    ai = llm.invoke([question])
    (call,) = ai.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"echo": "weather in Oslo?"}
    answer = llm.invoke([question, ai, ToolMessage("sunny", tool_call_id=call["id"])])
    assert answer.text == "Echo: tool said sunny"
    streamed = None
    for c in llm.stream([question]):
        streamed = c if streamed is None else streamed + c
    assert streamed.tool_calls[0]["name"] == "get_weather"
    assert streamed.tool_calls[0]["args"] == {"echo": "weather in Oslo?"}


def test_chat_anthropic_native_upstream(env):
    msg = anthropic_llm(env, model="claude").invoke("native via langchain")
    assert msg.text == "Echo: native via langchain"
    assert env.claude.stats()["by_path"].get("/v1/messages") == 1
