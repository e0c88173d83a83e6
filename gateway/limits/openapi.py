"""Complete the OpenAPI document with what every route can really answer.

FastAPI documents only the success response (and a 422 the gateway never sends: validation
errors are 400s here). Every route can also answer an OpenAI-style error (auth, limits, bad
input, upstream trouble); the completion routes stream ``text/event-stream``; ``/metrics`` is the
Prometheus text format. Found by the schemathesis fuzz test (tests/e2e/test_fuzz_openapi.py).
"""

from __future__ import annotations

from typing import Any

from gateway.protocol import ErrorResponse

_ERROR_CODES = ("400", "401", "402", "403", "404", "405", "409", "413", "415", "422", "429", "500", "502", "503", "504")
_STREAMING = ("/v1/chat/completions", "/v1/completions")
# One server-sent event (how schemathesis reads a stream, event by event): ``data`` is a JSON
# chunk (``chat.completion.chunk`` or ``text_completion``), an error object, or ``[DONE]``.
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    js = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    comps.update(js.pop("$defs", {}))
    comps.setdefault("ErrorResponse", js)
    err = {
        "description": "OpenAI-style error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            resp = op["responses"]
            for code in _ERROR_CODES:
                resp[code] = err
            ok = next((resp[c] for c in ("200", "201") if c in resp), None)
            if ok is None:
                continue
            if path in _STREAMING:
                ok.setdefault("content", {})["text/event-stream"] = {"schema": _SSE_EVENT}
            if path == "/metrics":
                ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return schema
