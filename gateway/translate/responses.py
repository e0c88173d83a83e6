"""The OpenAI Responses API (``POST /v1/responses``) translated to and from chat completions.

A Responses request becomes one chat-completions body: ``instructions`` is the first system
message, the stored conversation of ``previous_response_id`` (kept as Responses items, see
``gateway.translate.store``) comes next, then this request's ``input`` items. The chat answer
becomes a ``response`` object whose ``output`` holds a ``message`` item and/or ``function_call``
items; streams are rebuilt event by event by ``ResponsesStream``. docs/clients.md has the table.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from pydantic import Field, field_validator

from gateway.errors import APIError
from gateway.protocol import ShunterOptions, _Open

DROPPED = ("include", "truncation", "prompt_cache_key", "safety_identifier", "service_tier", "background")


class ResponsesRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    previous_response_id: str | None = None
    stream: bool | None = False
    store: bool | None = True
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    shunter: ShunterOptions | None = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("input must not be empty")
        return v


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---------------------------------------------------------------- request: Responses -> chat


def input_items(req: ResponsesRequest) -> list[dict]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(req.input, str):
        return [{"type": "message", "role": "user", "content": req.input}]
    out = []
    for item in req.input:
        if "type" not in item and "role" in item:
            item = {"type": "message", **item}
        out.append(item)
    return out


def _bad(message: str, param: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def _part(p: Any, role: str, where: str) -> dict | None:
    if isinstance(p, str):
        return {"type": "text", "text": p}
    kind = p.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": p.get("text") or ""}
    if kind == "refusal":
        return {"type": "text", "text": p.get("refusal") or ""}
    if kind == "input_image":
        url = p.get("image_url")
        if not url:
            raise _bad("input_image needs 'image_url' (file_id images are not supported).", where, "unsupported_value")
        img: dict = {"url": url}
        if p.get("detail"):
            img["detail"] = p["detail"]
        return {"type": "image_url", "image_url": img}
    raise _bad(f"Content part type '{kind}' is not supported on {role} messages.", where, "unsupported_value")


def _content(content: Any, role: str, where: str) -> str | list[dict]:
    if content is None or isinstance(content, str):
        return content or ""
    parts = [x for i, p in enumerate(content) if (x := _part(p, role, f"{where}[{i}]")) is not None]
    if role != "user" or all(p["type"] == "text" for p in parts):
        return "\n".join(p.get("text", "") for p in parts if p["type"] == "text")
    return parts


def items_to_messages(items: list[dict]) -> list[dict]:
    """Responses input items as chat messages; consecutive function calls join one assistant turn."""
    msgs: list[dict] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _bad(f"Unknown message role '{role}'.", f"{where}.role")
            role = "system" if role == "developer" else role
            msgs.append({"role": role, "content": _content(item.get("content"), role, f"{where}.content")})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = msgs[-1] if msgs else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out = item.get("output")
            if not isinstance(out, str):
                out = (
                    "\n".join(p.get("text", "") for p in out or [] if isinstance(p, dict)) or orjson.dumps(out).decode()
                )
            msgs.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": out})
        elif kind == "reasoning":
            continue  # a model's own reasoning summary: chat has nowhere to put it
        else:
            raise _bad(
                f"Input item type '{kind}' is not supported; use message, function_call or function_call_output.",
                f"{where}.type",
                "unsupported_value",
            )
    return msgs


def _tools(tools: list[dict]) -> list[dict]:
    out = []
    for i, t in enumerate(tools):
        if t.get("type") != "function":
            raise _bad(
                f"Tool type '{t.get('type')}' is not supported; only function tools are.",
                f"tools[{i}].type",
                "unsupported_value",
            )
        fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(tc: Any) -> Any:
    if isinstance(tc, dict) and tc.get("type") == "function":
        return {"type": "function", "function": {"name": tc.get("name")}}
    if isinstance(tc, dict):
        raise _bad(f"tool_choice type '{tc.get('type')}' is not supported.", "tool_choice", "unsupported_value")
    return tc


def _response_format(text: dict | None) -> dict | None:
    fmt = (text or {}).get("format") or {}
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        js = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": js}
    return None


def to_chat(req: ResponsesRequest, history: list[dict]) -> dict:
    """The chat-completions body for ``req``, after the stored items of its previous responses."""
    msgs: list[dict] = [{"role": "system", "content": req.instructions}] if req.instructions else []
    msgs += items_to_messages(history + input_items(req))
    body: dict = {"model": req.model, "messages": msgs}
    if req.tools:
        body["tools"] = _tools(req.tools)
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    for src, dst in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        v = getattr(req, src)
        if v is not None:
            body[dst] = v
    if req.user:
        body["user"] = req.user
    rf = _response_format(req.text)
    if rf:
        body["response_format"] = rf
    effort = (req.reasoning or {}).get("effort")
    if effort:
        body["reasoning_effort"] = effort
    if req.stream:
        body["stream"] = True
    if req.shunter is not None:
        body["shunter"] = req.shunter.model_dump(exclude_none=True)
    return body


# ---------------------------------------------------------------- answer: chat -> Responses


def usage(u: dict | None) -> dict | None:
    if not u:
        return None
    p, c = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    out = {
        "input_tokens": p,
        "input_tokens_details": {
            "cached_tokens": int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": c,
        "output_tokens_details": {
            "reasoning_tokens": int((u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
        },
        "total_tokens": int(u.get("total_tokens") or p + c),
    }
    if u.get("estimated"):
        out["estimated"] = True
    return out


def chat_usage(u: dict | None) -> dict | None:
    """A Responses usage object as chat usage (for accounting a native answer)."""
    if not u:
        return None
    p, c = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": int(u.get("total_tokens") or p + c)}


def _status(finish_reason: str | None) -> tuple[str, dict | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def skeleton(req: ResponsesRequest, response_id: str, model: str, created_at: int, status: str) -> dict:
    """A ``response`` object with no output yet: every field the SDKs read."""
    tools = [t for t in req.tools or []]
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": (req.reasoning or {}).get("effort"), "summary": None},
        "store": req.store is not False,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": req.text or {"format": {"type": "text"}},
        "tool_choice": "auto" if req.tool_choice is None else req.tool_choice,
        "tools": tools,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": req.user,
        "metadata": req.metadata or {},
    }


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def call_item(call: dict, item_id: str | None = None, status: str = "completed") -> dict:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id or new_id("fc"),
        "call_id": call.get("id") or new_id("call"),
        "name": fn.get("name") or "",
        "arguments": fn.get("arguments") or "",
        "status": status,
    }


def from_chat(payload: dict, req: ResponsesRequest, response_id: str, model: str, created_at: int) -> dict:
    """A chat completion as a ``response`` object."""
    choice = (payload.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    output: list[dict] = []
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content:
        output.append(message_item(content))
    output += [call_item(c) for c in msg.get("tool_calls") or []]
    if not output:
        output.append(message_item(""))
    status, incomplete = _status(choice.get("finish_reason"))
    resp = skeleton(req, response_id, model, created_at, status)
    resp.update(output=output, incomplete_details=incomplete, usage=usage(payload.get("usage")))
    return resp


def output_text(resp: dict) -> str:
    return "".join(
        c.get("text", "")
        for item in resp.get("output") or []
        if item.get("type") == "message"
        for c in item.get("content") or []
        if c.get("type") == "output_text"
    )


class ResponsesStream:
    """Chat-completion chunks in, Responses stream events out (dicts; ``sse.typed`` frames them).

    Events: ``response.created``, ``response.in_progress``, then per output item
    ``response.output_item.added``, text (``content_part.added``, ``output_text.delta``...,
    ``output_text.done``, ``content_part.done``) or function-call arguments
    (``function_call_arguments.delta``..., ``.done``), ``response.output_item.done``, and
    finally ``response.completed`` (or ``response.incomplete``) with the usage.
    """

    def __init__(self, req: ResponsesRequest, response_id: str, model: str, created_at: int | None = None) -> None:
        self.req = req
        self.response = skeleton(req, response_id, model, created_at or int(time.time()), "in_progress")
        self.seq = 0
        self.items: list[dict] = []  # output items in output_index order
        self._text: dict | None = None  # the message item being streamed
        self._calls: dict[int, dict] = {}  # chat tool-call index -> function_call item
        self._open_call: dict | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def _ev(self, type_: str, **fields: Any) -> dict:
        ev = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def start(self) -> list[dict]:
        snap = dict(self.response)
        return [self._ev("response.created", response=snap), self._ev("response.in_progress", response=snap)]

    def _open_text(self) -> list[dict]:
        item = message_item("", status="in_progress")
        item["content"] = []
        self._text = item
        self.items.append(item)
        idx = len(self.items) - 1
        return [
            self._ev("response.output_item.added", output_index=idx, item=dict(item, content=[])),
            self._ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=idx,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]

    def _close_text(self) -> list[dict]:
        item, self._text = self._text, None
        if item is None:
            return []
        idx = self.items.index(item)
        text = item.pop("_buf", "")
        part = {"type": "output_text", "text": text, "annotations": []}
        item.update(status="completed", content=[part])
        base = {"item_id": item["id"], "output_index": idx, "content_index": 0}
        return [
            self._ev("response.output_text.done", **base, text=text, logprobs=[]),
            self._ev("response.content_part.done", **base, part=part),
            self._ev("response.output_item.done", output_index=idx, item=item),
        ]

    def _close_call(self) -> list[dict]:
        item, self._open_call = self._open_call, None
        if item is None:
            return []
        idx = self.items.index(item)
        item["status"] = "completed"
        return [
            self._ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=idx,
                name=item["name"],
                arguments=item["arguments"],
            ),
            self._ev("response.output_item.done", output_index=idx, item=item),
        ]

    def _text_delta(self, text: str) -> list[dict]:
        out = self._close_call()
        if self._text is None:
            out += self._open_text()
        item = self._text
        assert item is not None
        item["_buf"] = item.get("_buf", "") + text
        out.append(
            self._ev(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=self.items.index(item),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _call_delta(self, tc: dict) -> list[dict]:
        out: list[dict] = []
        n = int(tc.get("index") or 0)
        fn = tc.get("function") or {}
        item = self._calls.get(n)
        if item is None:
            out += self._close_text() + self._close_call()
            item = call_item({"id": tc.get("id"), "function": {"name": fn.get("name")}}, status="in_progress")
            self._calls[n] = self._open_call = item
            self.items.append(item)
            out.append(self._ev("response.output_item.added", output_index=len(self.items) - 1, item=dict(item)))
        elif fn.get("name"):
            item["name"] = fn["name"]
        args = fn.get("arguments")
        if args:
            item["arguments"] += args
            out.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self.items.index(item),
                    delta=args,
                )
            )
        return out

    def feed(self, chunk: dict) -> list[dict]:
        """Events for one chat-completion chunk."""
        out: list[dict] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for ch in chunk.get("choices") or []:
            if ch.get("index", 0) != 0:
                continue  # n > 1 is not a Responses concept: the first choice is the answer
            delta = ch.get("delta") or {}
            text = delta.get("content")
            if text:
                out += self._text_delta(text)
            for tc in delta.get("tool_calls") or []:
                out += self._call_delta(tc)
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return out

    def finish(self, usage_: dict | None = None) -> list[dict]:
        """Close the open items and send the final ``response`` (usage: chat-shaped)."""
        out = self._close_text() + self._close_call()
        if not self.items:
            out += self._open_text() + self._close_text()
        status, incomplete = _status(self.finish_reason)
        self.response.update(
            status=status, incomplete_details=incomplete, output=self.items, usage=usage(usage_ or self.usage)
        )
        out.append(
            self._ev("response.completed" if status == "completed" else "response.incomplete", response=self.response)
        )
        return out

    def fail(self, message: str, code: str | None) -> list[dict]:
        """The stream broke after it started: a ``response.failed`` event with the error."""
        out = self._close_text() + self._close_call()
        err = {
            "code": "server_error",
            "message": f"{message} ({code})" if code else message,
        }  # the SDK's closed code set
        self.response.update(status="failed", output=self.items, error=err)
        out.append(self._ev("response.failed", response=self.response))
        return out
