"""The OpenAI wire format, written once as pydantic models.

Request models validate what the gateway needs and keep every other field (``tools``,
``tool_choice``, ``response_format``, ``seed``, vendor extras) so it passes through to the
upstream untouched. Responses from upstreams are passed through as JSON; the models below
document them for the OpenAPI schema and are used when the gateway writes a body itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter, ValidationError, field_validator
from typing_extensions import Required, TypedDict

from gateway.errors import APIError

# orjson parses 1,024 levels of nested arrays/objects but writes only 254, so a deeper body would
# fail when the gateway forwards it. Bodies are refused well before that: no real request comes
# near 128 levels, and the margin leaves room for any structure a body is wrapped in.
MAX_JSON_DEPTH = 128

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Open):
    type: str
    text: str | None = None


class ChatMessage(_Open):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's plain text: the string content or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text or "" for p in self.content if p.type == "text")

    def has_image(self) -> bool:
        return isinstance(self.content, list) and any(p.type in ("image_url", "input_image") for p in self.content)


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ShunterOptions(BaseModel):
    """Per-request routing control, sent as ``extra_body={"shunter": {...}}``."""

    model_config = ConfigDict(extra="forbid")
    policy: str | None = None
    threshold: float | None = None
    cost_weight: float | None = None
    max_cost_per_request: float | None = None
    candidates: list[str] | None = None
    session: str | None = None


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = False  # JSON true/false only: "yes" or 1 is a 400, not a stream
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    shunter: ShunterOptions | None = None

    def wants_tools(self) -> bool:
        return bool(self.tools) or any(m.tool_calls for m in self.messages)

    def has_image(self) -> bool:
        return any(m.has_image() for m in self.messages)

    def wants_json(self) -> bool:
        rf = self.response_format
        return bool(rf) and rf is not None and rf.get("type") in ("json_object", "json_schema")


class CompletionRequest(_Open):
    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    user: str | None = None
    metadata: dict[str, Any] | None = None
    shunter: ShunterOptions | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or any(isinstance(p, list) and not p for p in v)):
            raise ValueError("prompt must not be empty (nor hold an empty token list)")
        return v

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(p for p in self.prompt if isinstance(p, str))


class Usage(_Open):
    prompt_tokens: StrictInt = 0
    completion_tokens: StrictInt = 0
    total_tokens: StrictInt = 0


class ChatChoice(_Open):
    index: int
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


# What an upstream's 200 must hold for the gateway to relay and account it: the fields the
# gateway reads, with the types of the models above (role, content, tool calls, integer usage).
# TypedDicts, checked through one TypeAdapter each: about a third of the CPU of building the
# models for every answer; every other field passes through unchecked.
class _UsageShape(TypedDict, total=False):
    prompt_tokens: StrictInt
    completion_tokens: StrictInt
    total_tokens: StrictInt


class _MessageShape(TypedDict, total=False):
    role: Required[Role]
    content: str | list[ContentPart] | None
    tool_calls: list[dict[str, Any]] | None


class _ChatChoiceShape(TypedDict, total=False):
    index: int
    message: Required[_MessageShape]
    finish_reason: str | None


class _TextChoiceShape(TypedDict, total=False):
    index: int
    text: str | None
    finish_reason: str | None


class _ChatShape(TypedDict, total=False):
    choices: Required[list[_ChatChoiceShape]]
    usage: _UsageShape | None


class _TextShape(TypedDict, total=False):
    choices: Required[list[_TextChoiceShape]]
    usage: _UsageShape | None


class _ChunkChoiceShape(TypedDict, total=False):
    index: int
    delta: dict[str, Any] | None
    text: str | None
    finish_reason: str | None


class _ChunkShape(TypedDict, total=False):
    choices: list[_ChunkChoiceShape]
    usage: _UsageShape | None


_CHAT_CHECK = TypeAdapter(_ChatShape)
_TEXT_CHECK = TypeAdapter(_TextShape)
_CHUNK_CHECK = TypeAdapter(_ChunkShape)


def upstream_problem(payload: Any, chat: bool) -> str | None:
    """Why an upstream 200 body is not an OpenAI completion (None when it is)."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    try:
        (_CHAT_CHECK if chat else _TEXT_CHECK).validate_python(payload)
    except ValidationError as exc:
        return _first_error(exc)
    return None


def chunk_problem(obj: Any) -> str | None:
    """Why a streamed event is not an OpenAI completion chunk (None when it is)."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    try:
        _CHUNK_CHECK.validate_python(obj)
    except ValidationError as exc:
        return _first_error(exc)
    return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg')}"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "shunter"
    kind: Literal["policy", "model"] = "model"
    description: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1)
    score: float | None = Field(default=None, ge=0, le=1)
    thumbs: Literal["up", "down"] | None = None
    label: str | None = None
    comment: str | None = Field(default=None, max_length=4000)
    source: str = Field(default="user", min_length=1, max_length=64)


def check_content_type(ctype: str) -> None:
    """JSON endpoints take ``application/json`` (or another ``+json``/``json`` type) only: else 415."""
    media = ctype.split(";")[0].strip().lower()
    if not media or "json" not in media:
        got = f"got '{ctype}'" if ctype else "none was sent"
        raise APIError(
            415, f"Content-Type must be application/json ({got}).", code="unsupported_media_type", param="Content-Type"
        )


def check_depth(raw: bytes, data: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a body nested deeper than ``limit`` arrays/objects with a 400 (see ``MAX_JSON_DEPTH``)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # C-speed count: most bodies stop here
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > limit:
            raise APIError(
                400,
                f"The request body is nested more than {limit} levels deep.",
                code="invalid_json",
            )
        children = obj.values() if isinstance(obj, dict) else obj
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
