"""The fake upstream's other wire formats: embeddings, Anthropic Messages, OpenAI Responses.

Written from the public API references, independently of the gateway's translators, so a test
that passes through both checks the gateway against the formats rather than against itself.
Every reply is a deterministic echo of the last user text; offered tools are called once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import struct
import time

DIM = 8


async def _json(send, status: int, obj: dict) -> None:
    data = json.dumps(obj).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _sse(send, events: list[tuple[str | None, dict | str]], state: dict) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for i, (name, data) in enumerate(events):
        if state.get("die_after_chunks") is not None and i >= state["die_after_chunks"]:
            raise ConnectionResetError("injected mid-stream failure")
        body = (f"event: {name}\n" if name else "") + "data: " + (data if isinstance(data, str) else json.dumps(data))
        await send({"type": "http.response.body", "body": body.encode() + b"\n\n", "more_body": True})
        if state.get("chunk_delay"):
            await asyncio.sleep(state["chunk_delay"])
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _pieces(text: str, n: int) -> list[str]:
    words = text.split(" ")
    n = max(1, min(n, len(words)))
    parts = [" ".join(words[i * len(words) // n : (i + 1) * len(words) // n]) for i in range(n)]
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


# ---------------------------------------------------------------- embeddings


def vector(text: str) -> list[float]:
    """A deterministic unit vector for ``text`` (tests recompute it to check the gateway's relay)."""
    h = hashlib.sha256(text.encode()).digest()
    v = [(b - 127.5) / 127.5 for b in h[:DIM]]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


async def embeddings(send, req: dict, state: dict, model: str, headers: dict) -> None:
    inp = req.get("input")
    texts = [inp] if isinstance(inp, str) else [t if isinstance(t, str) else " ".join(map(str, t)) for t in inp or []]
    if not texts:
        return await _json(send, 400, {"error": {"message": "input is empty", "type": "invalid_request_error"}})
    data = []
    for i, t in enumerate(texts):
        v = vector(t)
        emb: list[float] | str = v
        if req.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{DIM}f", *v)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(max(1, len(t.split())) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    await _json(send, 200, {"object": "list", "data": data, "model": model, "usage": usage})


# ---------------------------------------------------------------- Anthropic Messages


def _anthropic_text(req: dict) -> tuple[str, bool]:
    """The last user turn's text, and whether it carried a tool result."""
    for m in reversed(req.get("messages") or []):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c, False
        texts, tool = [], False
        for b in c or []:
            if b.get("type") == "text":
                texts.append(b.get("text", ""))
            elif b.get("type") == "tool_result":
                tool = True
                rc = b.get("content")
                texts.append(
                    "tool said " + (rc if isinstance(rc, str) else " ".join(x.get("text", "") for x in rc or []))
                )
        return " ".join(texts), tool
    return "", False


async def messages(send, req: dict, state: dict, model: str, headers: dict) -> None:
    if not (headers.get(b"x-api-key") or headers.get(b"authorization")) or not headers.get(b"anthropic-version"):
        msg = "x-api-key (or Authorization) and anthropic-version headers are required"
        err = {"type": "error", "error": {"type": "authentication_error", "message": msg}}
        return await _json(send, 401, err)
    for k in ("model", "max_tokens", "messages"):
        if k not in req:
            err = {"type": "error", "error": {"type": "invalid_request_error", "message": f"{k}: Field required"}}
            return await _json(send, 400, err)
    text, after_tool = _anthropic_text(req)
    reply = state.get("reply") or f"Echo: {text}"
    tool = req["tools"][0] if req.get("tools") and not after_tool else None
    mid = f"msg_{random.getrandbits(48):x}"
    in_tok, out_tok = max(1, len(text.split())), len(reply.split(" "))
    stop_seq = next((s for s in req.get("stop_sequences") or [] if s in reply), None)
    if stop_seq:
        reply = reply[: reply.index(stop_seq)]
    stop = "tool_use" if tool else ("stop_sequence" if stop_seq else "end_turn")
    if not req.get("stream"):
        content = (
            [{"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": {"echo": text}}]
            if tool
            else [{"type": "text", "text": reply}]
        )
        msg = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": stop_seq,
            "usage": {"input_tokens": in_tok, "output_tokens": out_tok},
        }
        return await _json(send, 200, msg)
    start = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": in_tok, "output_tokens": 1},
    }
    evs: list[tuple[str | None, dict | str]] = [("message_start", {"type": "message_start", "message": start})]
    if tool:
        block = {"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": {}}
        evs.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
        args = json.dumps({"echo": text})
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": part}
            evs.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    else:
        block = {"type": "text", "text": ""}
        evs.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
        evs.append(("ping", {"type": "ping"}))
        for part in _pieces(reply, state.get("chunks", 4)):
            delta = {"type": "text_delta", "text": part}
            evs.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    evs.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    md = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": stop_seq},
        "usage": {"output_tokens": out_tok},
    }
    evs += [("message_delta", md), ("message_stop", {"type": "message_stop"})]
    await _sse(send, evs, state)


# ---------------------------------------------------------------- OpenAI Responses (native)


def _responses_text(req: dict) -> str:
    inp = req.get("input")
    if isinstance(inp, str):
        return inp
    for item in reversed(inp or []):
        if item.get("role") == "user":
            c = item.get("content")
            return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [])
    return ""


async def responses(send, req: dict, state: dict, model: str, headers: dict) -> None:
    text = _responses_text(req)
    reply = state.get("reply") or f"Echo: {text}"
    rid, mid = f"resp_{random.getrandbits(48):x}", f"msg_{random.getrandbits(48):x}"
    in_tok, out_tok = max(1, len(text.split())), len(reply.split(" "))
    base = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
        "metadata": {},
    }
    part = {"type": "output_text", "text": reply, "annotations": []}
    item = {"type": "message", "id": mid, "status": "completed", "role": "assistant", "content": [part]}
    usage = {
        "input_tokens": in_tok,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out_tok,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": in_tok + out_tok,
    }
    done = {**base, "status": "completed", "output": [item], "usage": usage}
    if not req.get("stream"):
        return await _json(send, 200, done)
    seq = iter(range(1000))

    def ev(type_: str, **kw) -> tuple[str, dict]:
        return type_, {"type": type_, "sequence_number": next(seq), **kw}

    at = {"item_id": mid, "output_index": 0, "content_index": 0}
    evs = [
        ev("response.created", response=base),
        ev("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []}),
        ev("response.content_part.added", **at, part={**part, "text": ""}),
    ]
    evs += [ev("response.output_text.delta", **at, delta=p) for p in _pieces(reply, state.get("chunks", 4))]
    evs += [
        ev("response.output_text.done", **at, text=reply),
        ev("response.content_part.done", **at, part=part),
        ev("response.output_item.done", output_index=0, item=item),
        ev("response.completed", response=done),
    ]
    await _sse(send, evs, state)


PATHS = {"/v1/embeddings": embeddings, "/v1/messages": messages, "/v1/responses": responses}
