"""Anthropic Messages (``POST /v1/messages``) translated to and from OpenAI chat completions.

Both directions: an Anthropic client reaching an OpenAI-compatible upstream (``to_chat``,
``from_chat``, ``AnthropicStream``) and an OpenAI chat client reaching an upstream of
``kind: anthropic`` (``chat_to_messages``, ``to_chat_completion``, ``ChatFromAnthropic``).
docs/clients.md has the field table and what is dropped.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from gateway.errors import APIError
from gateway.protocol import ShunterOptions, _Open
from gateway.translate.responses import new_id

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; a chat request may leave it out

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    501: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}
FINISH_TO_STOP["content_filter"] = "refusal"


class MessagesRequest(_Open):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool | None = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    shunter: ShunterOptions | None = None


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    """Anthropic's error body, for the OpenAPI schema of /v1/messages."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail


def error_body(status: int, message: str) -> dict:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="unsupported_value")


# ---------------------------------------------------------------- Anthropic client -> chat upstream


def _text(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    return "\n".join(b.get("text", "") for b in blocks or [] if isinstance(b, dict) and b.get("type") == "text")


def _image_part(block: dict, where: str) -> dict:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{src.get('media_type')};base64,{src.get('data')}"}}
    if src.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": src.get("url")}}
    raise _bad(f"Image source type '{src.get('type')}' is not supported; use base64 or url.", f"{where}.source")


def _tool_result(block: dict) -> dict:
    content = block.get("content")
    text = _text(content) if content is not None else ""
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _user(blocks: list[dict], where: str) -> list[dict]:
    """One Anthropic user turn: tool results first (chat wants them right after the call), then the rest."""
    tools = [_tool_result(b) for b in blocks if b.get("type") == "tool_result"]
    parts: list[dict] = []
    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": b.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(b, f"{where}[{i}]"))
        elif kind in ("tool_result", "thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"Content block type '{kind}' is not supported on user messages.", f"{where}[{i}].type")
    if not parts:
        return tools
    if all(p["type"] == "text" for p in parts):
        return [*tools, {"role": "user", "content": "\n".join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}]


def _assistant(blocks: list[dict], where: str) -> dict:
    texts: list[str] = []
    calls: list[dict] = []
    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "text":
            texts.append(b.get("text", ""))
        elif kind == "tool_use":
            args = orjson.dumps(b.get("input") or {}).decode()
            calls.append(
                {"id": b.get("id"), "type": "function", "function": {"name": b.get("name"), "arguments": args}}
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"Content block type '{kind}' is not supported on assistant messages.", f"{where}[{i}].type")
    msg: dict = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


def _tool_choice(tc: dict) -> tuple[Any, bool | None]:
    kind = tc.get("type")
    parallel = False if tc.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": tc.get("name")}}, parallel
    raise _bad(f"tool_choice type '{kind}' is not supported.", "tool_choice.type")


def to_chat(req: MessagesRequest) -> dict:
    """The chat-completions body for an Anthropic Messages request."""
    msgs: list[dict] = []
    if req.system:
        msgs.append({"role": "system", "content": _text(req.system)})
    for i, m in enumerate(req.messages):
        role, content = m.get("role"), m.get("content")
        where = f"messages[{i}].content"
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if role == "user":
            msgs += _user(blocks, where)
        elif role == "assistant":
            msgs.append(_assistant(blocks, where))
        else:
            raise APIError(400, f"Unknown message role '{role}'.", param=f"messages[{i}].role", code="invalid_value")
    body: dict = {"model": req.model, "messages": msgs, "max_tokens": req.max_tokens}
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    for k in ("temperature", "top_p"):
        v = getattr(req, k)
        if v is not None:
            body[k] = v
    if req.tools:
        body["tools"] = [_tool(t, i) for i, t in enumerate(req.tools)]
    if req.tool_choice:
        choice, parallel = _tool_choice(req.tool_choice)
        body["tool_choice"] = choice
        if parallel is not None and req.tools:
            body["parallel_tool_calls"] = parallel
    user = (req.metadata or {}).get("user_id")
    if user:
        body["user"] = str(user)
    if req.stream:
        body["stream"] = True
    if req.shunter is not None:
        body["shunter"] = req.shunter.model_dump(exclude_none=True)
    return body


def _tool(t: dict, i: int) -> dict:
    if t.get("type") not in (None, "custom") or "name" not in t:
        raise _bad(
            f"Tool type '{t.get('type')}' is not supported; only client tools with input_schema are.", f"tools[{i}]"
        )
    fn = {"name": t["name"], "parameters": t.get("input_schema") or {"type": "object", "properties": {}}}
    if t.get("description"):
        fn["description"] = t["description"]
    return {"type": "function", "function": fn}


def message_usage(u: dict | None) -> dict:
    u = u or {}
    out = {"input_tokens": int(u.get("prompt_tokens") or 0), "output_tokens": int(u.get("completion_tokens") or 0)}
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached:
        out["cache_read_input_tokens"] = int(cached)
    return out


def _args(raw: str | None) -> dict:
    try:
        v = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": raw}
    return v if isinstance(v, dict) else {"value": v}


def from_chat(payload: dict, model: str, message_id: str | None = None) -> dict:
    """A chat completion as an Anthropic ``message``."""
    choice = (payload.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict] = []
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for c in msg.get("tool_calls") or []:
        fn = c.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": c.get("id") or new_id("toolu"),
                "name": fn.get("name"),
                "input": _args(fn.get("arguments")),
            }
        )
    return {
        "id": message_id or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": message_usage(payload.get("usage")),
    }


class AnthropicStream:
    """Chat-completion chunks in, Anthropic stream events out (dicts; ``sse.typed`` frames them)."""

    def __init__(self, model: str, message_id: str | None = None, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id or new_id("msg")
        self.input_tokens = input_tokens
        self.index = -1
        self.block: str | None = None  # "text" or "tool_use" while a block is open
        self._calls: dict[int, int] = {}  # chat tool-call index -> content block index
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def start(self) -> list[dict]:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close(self) -> list[dict]:
        if self.block is None:
            return []
        self.block = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _open(self, block: dict) -> list[dict]:
        out = self._close()
        self.index += 1
        self.block = block["type"]
        return [*out, {"type": "content_block_start", "index": self.index, "content_block": block}]

    def feed(self, chunk: dict) -> list[dict]:
        out: list[dict] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for ch in chunk.get("choices") or []:
            if ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block != "text":
                    out += self._open({"type": "text", "text": ""})
                out.append(
                    {"type": "content_block_delta", "index": self.index, "delta": {"type": "text_delta", "text": text}}
                )
            for tc in delta.get("tool_calls") or []:
                out += self._tool_delta(tc)
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return out

    def _tool_delta(self, tc: dict) -> list[dict]:
        out: list[dict] = []
        n = int(tc.get("index") or 0)
        fn = tc.get("function") or {}
        if n not in self._calls:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": tc.get("id") or new_id("toolu"),
                "name": fn.get("name") or "",
                "input": {},
            }
            out += self._open(block)
            self._calls[n] = self.index
        args = fn.get("arguments")
        if args:
            delta = {"type": "input_json_delta", "partial_json": args}
            out.append({"type": "content_block_delta", "index": self._calls[n], "delta": delta})
        return out

    def finish(self, usage: dict | None = None) -> list[dict]:
        out = self._close()
        if self.index < 0:  # an empty answer still has one (empty) text block
            out += self._open({"type": "text", "text": ""}) + self._close()
        u = message_usage(usage or self.usage)
        stop = FINISH_TO_STOP.get(self.finish_reason or "stop", "end_turn")
        out.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {**u}})
        out.append({"type": "message_stop"})
        return out

    @staticmethod
    def error(status: int, message: str) -> dict:
        return error_body(status, message)


# ---------------------------------------------------------------- chat client -> Anthropic upstream


def _anthropic_image(part: dict) -> dict:
    url = (part.get("image_url") or {}).get("url") or ""
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for p in content:
        if p.get("type") == "text":
            out.append({"type": "text", "text": p.get("text") or ""})
        elif p.get("type") in ("image_url", "input_image"):
            out.append(_anthropic_image(p))
    return out


def _append(msgs: list[dict], role: str, blocks: list[dict]) -> None:
    """Anthropic wants alternating turns: consecutive same-role messages are merged."""
    if not blocks:
        return
    if msgs and msgs[-1]["role"] == role:
        msgs[-1]["content"] += blocks
    else:
        msgs.append({"role": role, "content": blocks})


def _from_chat_tool_choice(tc: Any) -> dict | None:
    if tc in (None, "auto"):
        return {"type": "auto"} if tc else None
    if tc == "required":
        return {"type": "any"}
    if tc == "none":
        return {"type": "none"}
    if isinstance(tc, dict):
        return {"type": "tool", "name": (tc.get("function") or {}).get("name")}
    return None


def chat_to_messages(body: dict, model_id: str) -> dict:
    """An OpenAI chat body as an Anthropic Messages request for an upstream of ``kind: anthropic``."""
    system: list[str] = []
    msgs: list[dict] = []
    for m in body.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text(m.get("content")) if not isinstance(m.get("content"), str) else m["content"])
        elif role == "user":
            _append(msgs, "user", _blocks(m.get("content")))
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                blocks.append(
                    {"type": "tool_use", "id": c.get("id"), "name": fn.get("name"), "input": _args(fn.get("arguments"))}
                )
            _append(msgs, "assistant", blocks)
        elif role in ("tool", "function"):
            content = m.get("content")
            text = content if isinstance(content, str) else _text(content)
            _append(msgs, "user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"), "content": text}])
    out: dict = {
        "model": model_id,
        "messages": msgs,
        "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(system)
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            out[k] = min(1.0, body[k]) if k == "temperature" else body[k]
    if body.get("tools"):
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name"),
                "description": (t.get("function") or {}).get("description") or "",
                "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object", "properties": {}},
            }
            for t in body["tools"]
            if t.get("type") == "function"
        ]
    tc = _from_chat_tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and body.get("tools"):
        tc = {**(tc or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tc:
        out["tool_choice"] = tc
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def chat_usage(u: dict | None) -> dict | None:
    if not u:
        return None
    p = int(u.get("input_tokens") or 0) + int(u.get("cache_read_input_tokens") or 0)
    p += int(u.get("cache_creation_input_tokens") or 0)
    c = int(u.get("output_tokens") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def to_chat_completion(msg: dict, served: str) -> dict:
    """An Anthropic ``message`` as a chat completion."""
    text = "".join(b.get("text", "") for b in msg.get("content") or [] if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in msg.get("content") or []
        if b.get("type") == "tool_use"
    ]
    message: dict = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + str(msg.get("id") or new_id("msg")).removeprefix("msg_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": STOP_TO_FINISH.get(msg.get("stop_reason") or "end_turn", "stop"),
            }
        ],
        "usage": chat_usage(msg.get("usage")),
    }


class ChatFromAnthropic:
    """Anthropic stream events in (parsed JSON), chat-completion chunks out."""

    def __init__(self, served: str) -> None:
        self.served = served
        self.id = "chatcmpl-" + new_id("x")[2:]
        self.created = int(time.time())
        self.usage: dict = {}
        self._tools: dict[int, int] = {}  # content block index -> chat tool-call index
        self.finish_reason: str | None = None
        self.error: dict | None = None

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.served,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def feed(self, ev: dict) -> list[dict]:
        kind = ev.get("type")
        if kind == "message_start":
            self.usage.update((ev.get("message") or {}).get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                n = self._tools[ev.get("index", 0)] = len(self._tools)
                call = {
                    "index": n,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            d = ev.get("delta") or {}
            if d.get("type") == "text_delta":
                return [self._chunk({"content": d.get("text", "")})]
            if d.get("type") == "input_json_delta" and ev.get("index", 0) in self._tools:
                call = {"index": self._tools[ev["index"]], "function": {"arguments": d.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
            stop = (ev.get("delta") or {}).get("stop_reason")
            self.finish_reason = STOP_TO_FINISH.get(stop or "end_turn", "stop")
            return [self._chunk({}, self.finish_reason)]
        if kind == "message_stop":
            return [{**self._chunk({}), "choices": [], "usage": chat_usage(self.usage)}]
        if kind == "error":
            self.error = ev.get("error") or {"message": "upstream error"}
            err = self.error
            return [{"error": {"message": err.get("message"), "type": err.get("type"), "param": None, "code": None}}]
        return []  # ping, thinking deltas, anything new
