"""``POST /v1/responses``: the OpenAI Responses API, routed like chat.

``parse`` validates the request and translates it to chat (``translate.responses``);
``prepare`` puts the stored conversation of ``previous_response_id`` before it (400 when
unknown). An upstream that declares ``responses`` gets the request natively, with the whole
conversation as ``input``. Every answered response is stored (unless ``store: false``) before
the client sees its end, so a follow-up can name it at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response

from gateway.errors import APIError
from gateway.ingress.base import ChatRequest, Ingress, Native, translated
from gateway.ingress.body import validate
from gateway.protocol import ChatCompletionRequest
from gateway.translate import responses as rs
from gateway.translate.store import ResponseStore
from gateway.translate.streams import ResponsesPassthrough, from_chat

_GATEWAY_FIELDS = ("shunter", "previous_response_id")


@dataclass
class _State:
    req: rs.ResponsesRequest
    data: dict[str, Any]
    response_id: str = field(default_factory=lambda: rs.new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    items: list[dict] = field(default_factory=list)  # the conversation so far: history and this input
    key_id: str | None = None
    store: ResponseStore | None = None

    async def save(self, output: list[dict]) -> None:
        if self.store is not None and self.req.store is not False:
            await self.store.put(self.response_id, self.key_id, [*self.items, *output])


class _SaveThenSend(Response):
    """A JSON answer that is stored (``previous_response_id``) before its first byte leaves."""

    def __init__(self, save: Callable[[], Awaitable[None]], body: dict, headers: dict[str, str]) -> None:
        super().__init__(orjson.dumps(body), media_type="application/json", headers=headers)
        self._save = save

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._save()
        await super().__call__(scope, receive, send)


def _chat(st: _State, history: list[dict], server: Any) -> ChatRequest:
    body = translated(rs.to_chat, st.req, history)
    if st.req.stream:
        body["stream_options"] = {"include_usage": True}  # the final event carries the usage
    req = validate(ChatCompletionRequest, body)
    if len(req.messages) > server.max_messages:
        raise APIError(
            400,
            f"Too many messages: {len(req.messages)} (limit {server.max_messages}).",
            code="too_many_messages",
            param="input",
        )
    native = {k: v for k, v in st.data.items() if k not in _GATEWAY_FIELDS}
    native.update(input=st.items, store=False)  # the gateway keeps the conversation, not the upstream
    return ChatRequest(req, body, "/chat/completions", Native("responses", "/responses", native), st)


class ResponsesIngress(Ingress):
    name = "responses"
    path = "/v1/responses"
    upstream_path = "/chat/completions"
    request_model = rs.ResponsesRequest

    def parse(self, data: dict[str, Any], server: Any) -> ChatRequest:
        st = _State(validate(rs.ResponsesRequest, data), data)
        st.items = translated(rs.input_items, st.req)
        return _chat(st, [], server)

    def store_opt_out(self, chat: ChatRequest) -> bool:
        return chat.state.req.store is False  # the chat body never carries it: the gateway stores the conversation

    async def prepare(self, ctx: Any) -> None:
        chat = ctx.chat
        st: _State = chat.state
        server = ctx.rt.cfg.server
        st.key_id = ctx.outcome.key_id
        st.store = ResponseStore(ctx.services.shared, server.responses_store_size, server.responses_store_ttl)
        prev = st.req.previous_response_id
        if not prev:
            return
        history = await st.store.get(prev, st.key_id)
        if history is None:
            raise APIError(
                400,
                f"Previous response with id '{prev}' not found: unknown, expired "
                f"(kept {server.responses_store_ttl:g}s, at most {server.responses_store_size}) or made with another key.",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        st.items = history + rs.input_items(st.req)
        ctx.chat = _chat(st, history, server)

    def answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        st: _State = chat.state
        resp = rs.from_chat(payload, st.req, st.response_id, chat.served, st.created_at)
        return _SaveThenSend(lambda: st.save(resp["output"]), resp, headers)

    def stream(self, chat: ChatRequest, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        st: _State = chat.state
        tr = rs.ResponsesStream(st.req, st.response_id, chat.served, st.created_at)

        async def save() -> None:
            await st.save(tr.items)

        return from_chat(events, tr, save)

    def native_usage(self, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        status = payload.get("status")
        return rs.chat_usage(payload.get("usage")), "length" if status == "incomplete" else "stop"

    def native_answer(self, chat: ChatRequest, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        st: _State = chat.state
        payload.update(id=st.response_id, model=chat.served, previous_response_id=st.req.previous_response_id)
        payload["store"] = st.req.store is not False
        return _SaveThenSend(lambda: st.save(payload.get("output") or []), payload, headers)

    def passthrough(self, chat: ChatRequest) -> ResponsesPassthrough:
        return ResponsesPassthrough(chat.state.response_id, chat.served)

    async def native_stream(
        self, chat: ChatRequest, events: AsyncIterator[bytes], reader: ResponsesPassthrough
    ) -> AsyncIterator[bytes]:
        st: _State = chat.state
        saved = False
        async for piece in events:
            if reader.final is not None and not saved and not reader.error:
                saved = True
                await st.save(reader.final.get("output") or [])
            yield piece
