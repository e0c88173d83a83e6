"""Responses API <-> chat translation, checked against the openai SDK's own type definitions."""

from __future__ import annotations

import pytest
from openai.types.responses import Response, ResponseFailedEvent, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.errors import APIError
from gateway.translate import responses as rs
from gateway.translate.sse import Parser, typed

EVENTS = TypeAdapter(ResponseStreamEvent)


def req(**kw) -> rs.ResponsesRequest:
    return rs.ResponsesRequest.model_validate({"model": "router-chat", "input": "hi", **kw})


def test_string_input_and_instructions():
    body = rs.to_chat(req(input="What is 2+2?", instructions="Be terse.", max_output_tokens=20), [])
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert body["max_tokens"] == 20 and body["model"] == "router-chat"


def test_message_items_parts_images_and_roles():
    items = [
        {"role": "developer", "content": "rules"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "see"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
    ]
    msgs = rs.to_chat(req(input=items), [])["messages"]
    assert msgs[0] == {"role": "system", "content": "rules"}
    assert msgs[1] == {"role": "user", "content": "a\nb"}
    assert msgs[2] == {"role": "assistant", "content": "ok"}
    assert msgs[3]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }


def test_function_calls_join_one_assistant_turn_and_outputs_become_tool_messages():
    items = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    msgs = rs.to_chat(req(input=items), [])["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in msgs[1]["tool_calls"]] == ["c1", "c2"] and msgs[1]["content"] is None
    assert msgs[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert msgs[3]["content"] == "rain"


def test_history_comes_before_input_and_instructions_first():
    history = [{"type": "message", "role": "user", "content": "x"}, rs.message_item("y")]
    msgs = rs.to_chat(req(input="z", instructions="sys"), history)["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("system", "sys"),
        ("user", "x"),
        ("assistant", "y"),
        ("user", "z"),
    ]


def test_tools_tool_choice_text_format_reasoning():
    tool = {"type": "function", "name": "get", "description": "d", "parameters": {"type": "object"}, "strict": True}
    body = rs.to_chat(
        req(
            tools=[tool],
            tool_choice={"type": "function", "name": "get"},
            parallel_tool_calls=False,
            text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
            reasoning={"effort": "low"},
            stream=True,
        ),
        [],
    )
    assert body["tools"] == [{"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert body["reasoning_effort"] == "low" and body["stream"] is True


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0]"),
    ],
)
def test_unsupported_inputs_are_400_naming_the_param(kw, param):
    with pytest.raises(APIError) as e:
        rs.to_chat(req(**kw), [])
    assert e.value.status == 400 and e.value.param == param


def test_from_chat_text_and_usage_validates_as_sdk_response():
    r = req(instructions="sys", metadata={"a": "b"})
    payload = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 3},
        },
    }
    out = rs.from_chat(payload, r, "resp_1", "cheap", 1700000000)
    sdk = Response.model_validate(out)
    assert sdk.output_text == "hello" and sdk.status == "completed" and sdk.model == "cheap"
    assert (
        sdk.usage.input_tokens == 5
        and sdk.usage.output_tokens == 2
        and sdk.usage.input_tokens_details.cached_tokens == 3
    )
    assert sdk.instructions == "sys" and sdk.metadata == {"a": "b"}


def test_from_chat_tool_calls_and_length():
    payload = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
                    ],
                },
                "finish_reason": "length",
            }
        ]
    }
    sdk = Response.model_validate(rs.from_chat(payload, req(), "resp_1", "m", 1))
    (call,) = sdk.output
    assert call.type == "function_call" and call.call_id == "call_9" and call.arguments == '{"x":1}'
    assert sdk.status == "incomplete" and sdk.incomplete_details.reason == "max_output_tokens"


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    c = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
    if delta is not None or finish:
        c["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage:
        c["usage"] = usage
    return c


def run_stream(chunks: list[dict]) -> list[dict]:
    s = rs.ResponsesStream(req(stream=True), "resp_1", "cheap", 1)
    events = s.start()
    for c in chunks:
        events += s.feed(c)
    events += s.finish()
    return events


def test_text_stream_event_sequence_validates_and_parses_back():
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    events = run_stream(
        [
            chunk({"role": "assistant", "content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(usage=usage),
        ]
    )
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    parsed = [EVENTS.validate_python(e) for e in events]
    assert parsed[6].text == "Hello"
    done = parsed[-1].response
    assert done.output_text == "Hello" and done.usage.total_tokens == 5 and done.status == "completed"
    # framing: each event is named after its type and parses back
    p = Parser()
    back = p.feed(b"".join(typed(e) for e in events))
    assert [b.event for b in back] == types


def test_tool_call_stream_after_text():
    events = run_stream(
        [
            chunk({"content": "Let me look."}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ]
    )
    for e in events:
        EVENTS.validate_python(e)
    done = events[-1]["response"]
    assert [i["type"] for i in done["output"]] == ["message", "function_call", "function_call"]
    assert done["output"][1]["arguments"] == '{"a":1}' and done["output"][1]["call_id"] == "call_1"
    assert done["output"][2]["name"] == "g"
    arg_done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in arg_done] == ['{"a":1}', "{}"]
    # output indexes are the items' positions
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert added == [0, 1, 2]


def test_empty_stream_still_has_a_message_and_length_is_incomplete():
    events = run_stream([chunk({}, "length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["output"][0]["type"] == "message"
    EVENTS.validate_python(events[-1])


def test_failed_stream():
    s = rs.ResponsesStream(req(stream=True), "resp_1", "cheap", 1)
    s.start()
    s.feed(chunk({"content": "par"}))
    ev = s.fail("upstream went away", "upstream_disconnected")[-1]
    sdk = ResponseFailedEvent.model_validate(ev)
    assert sdk.response.error.code == "server_error" and "upstream_disconnected" in sdk.response.error.message
    assert sdk.response.output[0].content[0].text == "par"
