"""A fake OpenAI-compatible upstream, run as its own process on a loopback port.

It stands in for paid APIs in tests and benchmarks. It answers ``/v1/chat/completions`` and
``/v1/completions`` (plain and SSE) with a deterministic echo, returns a tool call when the
request offers tools (and text again once the last message is a tool result), and injects
faults on demand. Three more endpoints stand in for other APIs (see ``tests/fakes/wire.py``):
``/v1/embeddings`` (deterministic vectors, float or base64), ``/v1/messages`` (Anthropic's
native Messages API, plain and SSE, with ``tool_use``) and ``/v1/responses`` (OpenAI's native
Responses API, plain and SSE). Faults:

- ``POST /_control`` with JSON sets the behaviour: ``fail_next`` (count), ``fail_status``
  (500, 429...), ``retry_after``, ``die_after_chunks`` (abort the connection mid-stream),
  ``delay`` (seconds before headers), ``chunk_delay``, ``echo_auth``, ``chaos`` (probabilities per fault:
  ``{"500": .1, "429": .1, "timeout": .05, "reset": .05, "midstream": .05}``), ``reply``,
  ``judge_prefers`` (a fake pairwise judge: for an MT-Bench judge prompt it answers ``[[A]]`` when
  assistant A's answer contains this text, ``[[B]]`` when B's does, else ``[[C]]``).
- ``body_fault`` breaks a 200 answer after its headers, for the next ``body_fault_count``
  requests (all of them while the count is null): ``reset_mid_body`` (half the body, then the
  connection is reset), ``stall_mid_body`` (half the body, then silence), ``non_json``,
  ``json_list``, ``wrong_choices`` (``choices`` a string), ``string_usage`` (token counts as
  strings); for streams also ``bad_chunk`` (an event with ``choices`` a string),
  ``non_json_chunk`` and ``error_event`` (both carry the request's ``Authorization`` header,
  as a leaking upstream would). Stream faults come after the first event.
- ``body_chaos`` (probabilities per body fault, as ``chaos``) draws a body fault at random for
  requests it fits: ``non_json``, ``json_list``, ``wrong_choices``, ``string_usage`` for plain
  answers, ``bad_chunk``, ``non_json_chunk``, ``error_event`` for streams, ``reset_mid_body`` and
  ``stall_mid_body`` for both. ``/_stats`` counts them in ``body_faults`` (and the streamed ones
  again in ``body_faults_streamed``).
- ``GET /_stats`` returns request counts; ``GET /_last`` the last request body.

Usage: ``python tests/fakes/fake_upstream.py --port 9000 [--name fake] [--model-id fake-model]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import uvicorn

try:
    from tests.fakes import wire
except ImportError:  # run as a script: tests/fakes is on sys.path
    import wire  # type: ignore[no-redef]

STATE: dict = {
    "fail_next": 0,
    "fail_status": 500,
    "retry_after": None,
    "die_after_chunks": None,
    "delay": 0.0,
    "chunk_delay": 0.0,
    "chaos": {},
    "reply": None,
    "echo_auth": False,  # put the Authorization header into injected error messages (leak tests)
    "chunks": 4,
    "body_fault": None,
    "body_fault_count": None,
    "body_chaos": {},
    "judge_prefers": None,
}
STATS = {"requests": 0, "failed": 0, "ok": 0, "by_path": {}, "faults": {}, "body_faults": {}, "body_faults_streamed": 0}
PLAIN_BODY_FAULTS = {"non_json", "json_list", "wrong_choices", "string_usage", "reset_mid_body", "stall_mid_body"}
STREAM_BODY_FAULTS = {"bad_chunk", "non_json_chunk", "error_event", "reset_mid_body", "stall_mid_body"}
LAST: dict = {}
MODEL_ID = "fake-model"


async def _read(receive) -> bytes:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


async def _send_json(send, status: int, obj: dict, headers: list | None = None) -> None:
    data = json.dumps(obj).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": data})


def _text_of(req: dict) -> str:
    if "messages" in req:
        for m in reversed(req["messages"]):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):
                    return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
                return c or ""
        return ""
    p = req.get("prompt", "")
    return p if isinstance(p, str) else " ".join(map(str, p))


def _judge(text: str) -> str | None:
    """A consistent fake judge (``judge_prefers``) for MT-Bench pairwise prompts."""
    want = STATE["judge_prefers"]
    if not want or "[The Start of Assistant A's Answer]" not in text:
        return None
    a = text.split("[The Start of Assistant A's Answer]", 1)[1].split("[The End of Assistant A's Answer]", 1)[0]
    b = text.split("[The Start of Assistant B's Answer]", 1)[1].split("[The End of Assistant B's Answer]", 1)[0]
    verdict = "A" if want in a else "B" if want in b else "C"
    return f"Both answers address the question. My final verdict: [[{verdict}]]"


def _fault() -> str | None:
    if STATE["fail_next"] > 0:
        STATE["fail_next"] -= 1
        return str(STATE["fail_status"])
    for kind, p in (STATE.get("chaos") or {}).items():
        if random.random() < float(p):
            return kind
    return None


def _body_fault(stream: bool) -> str | None:
    kind = STATE.get("body_fault") or _body_chaos(stream)
    if not kind:
        return None
    left = STATE.get("body_fault_count")
    if left is not None:
        if left <= 0:
            return None
        STATE["body_fault_count"] = left - 1
    STATS["body_faults"][kind] = STATS["body_faults"].get(kind, 0) + 1
    STATS["body_faults_streamed"] += stream
    return kind


def _body_chaos(stream: bool) -> str | None:
    fits = STREAM_BODY_FAULTS if stream else PLAIN_BODY_FAULTS
    for kind, p in (STATE.get("body_chaos") or {}).items():
        if kind in fits and random.random() < float(p):
            return kind
    return None


async def _send_broken(send, obj: dict, kind: str, auth: str) -> None:
    """A 200 whose body is not a usable completion (see ``body_fault``)."""
    if kind in ("reset_mid_body", "stall_mid_body"):
        data = json.dumps(obj).encode()
        start = {"type": "http.response.start", "status": 200}
        start["headers"] = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True})
        if kind == "stall_mid_body":
            await asyncio.sleep(3600)
        raise ConnectionResetError("injected reset mid-body")
    if kind == "non_json":
        data = f"<html>upstream proxy error for {auth}</html>".encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": data})
        return
    bad: object = obj
    if kind == "json_list":
        bad = [obj]
    elif kind == "wrong_choices":
        bad = {**obj, "choices": "none today"}
    elif kind == "string_usage":
        bad = {**obj, "usage": {"prompt_tokens": "many", "completion_tokens": "few", "total_tokens": "all"}}
    await _send_json(send, 200, bad)  # type: ignore[arg-type]


def _broken_event(kind: str, first: dict, auth: str) -> bytes | None:
    """The stream fault's event after the first one (None: stall or reset instead)."""
    if kind == "bad_chunk":
        return b"data: " + json.dumps({**first, "choices": "oops"}).encode() + b"\n\n"
    if kind == "non_json_chunk":
        return f"data: upstream exploded for {auth}\n\n".encode()
    if kind == "error_event":
        err = {"error": {"message": f"overloaded, credentials {auth}", "type": "server_error"}}
        return b"data: " + json.dumps(err).encode() + b"\n\n"
    return None


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    body = await _read(receive)
    STATS["by_path"][path] = STATS["by_path"].get(path, 0) + 1
    if path == "/_control":
        STATE.update(json.loads(body or b"{}"))
        return await _send_json(send, 200, STATE)
    if path == "/_stats":
        return await _send_json(send, 200, STATS)
    if path == "/_last":
        return await _send_json(send, 200, LAST)
    if path in ("/v1/models", "/models"):
        return await _send_json(send, 200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
    if path not in ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions", *wire.PATHS):
        return await _send_json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
    STATS["requests"] += 1
    req = json.loads(body or b"{}")
    LAST.clear()
    LAST.update(req)
    if STATE["delay"]:
        await asyncio.sleep(STATE["delay"])
    fault = _fault()
    if fault:
        STATS["faults"][fault] = STATS["faults"].get(fault, 0) + 1
    if fault and fault.isdigit():
        STATS["failed"] += 1
        hdrs = [(b"retry-after", str(STATE["retry_after"]).encode())] if STATE.get("retry_after") is not None else []
        msg = f"injected {fault}"
        if STATE["echo_auth"]:
            msg += " for credentials " + dict(scope["headers"]).get(b"authorization", b"").decode()
        return await _send_json(send, int(fault), {"error": {"message": msg, "type": "server_error"}}, hdrs)
    if fault == "timeout":
        STATS["failed"] += 1
        await asyncio.sleep(3600)
    if fault == "reset":
        STATS["failed"] += 1
        raise ConnectionResetError("injected reset before the first byte")
    if path in wire.PATHS:
        STATS["ok"] += 1
        return await wire.PATHS[path](send, req, STATE, MODEL_ID, dict(scope["headers"]))
    chat = "messages" in req
    text = _text_of(req)
    if chat and req["messages"][-1].get("role") == "tool":
        text = "tool said " + str(req["messages"][-1].get("content"))
    reply = _judge(text) or STATE["reply"] or f"Echo: {text}"
    words = reply.split(" ")
    usage = {
        "prompt_tokens": max(1, len(text.split())),
        "completion_tokens": len(words),
        "total_tokens": max(1, len(text.split())) + len(words),
    }
    created = int(time.time())
    cid = f"chatcmpl-{random.getrandbits(48):x}"
    tool_call = None
    if chat and req.get("tools") and req["messages"][-1].get("role") != "tool":
        first = req["tools"][0]
        fn = (first.get("function") or {}).get("name") if isinstance(first, dict) else None
        if not isinstance(fn, str):  # as OpenAI does: the request is wrong, not the server
            err = {
                "message": "Invalid 'tools[0]': a function with a name is required.",
                "type": "invalid_request_error",
            }
            return await _send_json(send, 400, {"error": err})
        tool_call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": fn, "arguments": json.dumps({"echo": text})},
        }
    die_after = STATE["die_after_chunks"] if fault != "midstream" else 1
    body_fault = _body_fault(bool(req.get("stream")))
    auth = dict(scope["headers"]).get(b"authorization", b"").decode()
    if not req.get("stream"):
        STATS["ok"] += 1
        if chat:
            msg = {"role": "assistant", "content": None if tool_call else reply}
            if tool_call:
                msg["tool_calls"] = [tool_call]
            choice = {"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_call else "stop"}
            obj = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [choice],
                "usage": usage,
            }
        else:
            obj = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "text": reply, "finish_reason": "stop"}],
                "usage": usage,
            }
        if body_fault:
            STATS["failed"] += 1
            return await _send_broken(send, obj, body_fault, auth)
        return await _send_json(send, 200, obj)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    n = max(1, min(STATE["chunks"], len(words)))
    parts = [" ".join(words[i * len(words) // n : (i + 1) * len(words) // n]) for i in range(n)]
    events = []
    for i, part in enumerate(parts):
        piece = part if i == 0 else " " + part
        if chat:
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            if tool_call and i == 0:
                delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **tool_call}]}
            elif tool_call:
                continue
            events.append(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
            )
        else:
            events.append(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": MODEL_ID,
                    "choices": [{"index": 0, "text": piece, "finish_reason": None}],
                }
            )
    last = (
        {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_call else "stop"}
        if chat
        else {"index": 0, "text": "", "finish_reason": "stop"}
    )
    events.append(
        {
            "id": cid,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": MODEL_ID,
            "choices": [last],
        }
    )
    if (req.get("stream_options") or {}).get("include_usage"):
        events.append(
            {
                "id": cid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [],
                "usage": usage,
            }
        )
    for i, ev in enumerate(events):
        if die_after is not None and i >= die_after:
            STATS["failed"] += 1
            raise ConnectionResetError("injected mid-stream failure")
        if body_fault and i == 1:
            STATS["failed"] += 1
            broken = _broken_event(body_fault, events[0], auth)
            if broken is not None:
                await send({"type": "http.response.body", "body": broken, "more_body": True})
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
                return
            if body_fault == "stall_mid_body":
                await asyncio.sleep(3600)
            raise ConnectionResetError("injected reset mid-body")
        await send(
            {"type": "http.response.body", "body": b"data: " + json.dumps(ev).encode() + b"\n\n", "more_body": True}
        )
        if STATE["chunk_delay"]:
            await asyncio.sleep(STATE["chunk_delay"])
    STATS["ok"] += 1
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def main() -> None:
    global MODEL_ID
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--model-id", default="fake-model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    MODEL_ID = args.model_id
    random.seed(args.seed)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
