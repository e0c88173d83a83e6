"""FrugalGPT's runtime cascade: answer with the cheapest model, check the answer, escalate.

Each stage is a complete (non-streamed) upstream call. A learned answer checker
(``routers.cascade.AnswerChecker``, trained on RouterBench responses and their correctness)
scores P(answer is correct) from the prompt and answer embeddings; below the threshold the
next model answers instead. The client sees only the final answer; for ``stream: true`` it is
sent as SSE chunks once chosen. Every stage is paid for, so the cost counts all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway import metrics
from gateway.errors import APIError
from gateway.upstream.forward import open_stream
from gateway.upstream.sse import DONE, event

if TYPE_CHECKING:
    from gateway.policy.engine import Decision
    from gateway.runtime import PolicyRuntime, Runtime


@dataclass
class Stage:
    model: str
    p_correct: float | None = None
    error: str | None = None
    usage: dict | None = None


@dataclass
class CascadeResult:
    payload: dict
    served: str
    stages: list[Stage] = field(default_factory=list)

    @property
    def escalations(self) -> int:
        return max(0, len(self.stages) - 1)

    def usage_total(self) -> list[tuple[str, dict]]:
        return [(s.model, s.usage) for s in self.stages if s.usage]

    def header(self) -> str:
        return "->".join(
            f"{s.model}({f'p={s.p_correct:.3f}' if s.p_correct is not None else s.error or 'final'})"
            for s in self.stages
        )


def _answer(payload: dict) -> str:
    choices = payload.get("choices") or [{}]
    ch = choices[0]
    msg = ch.get("message") or {}
    return (msg.get("content") if isinstance(msg, dict) else None) or ch.get("text") or ""


async def run(rt: Runtime, pr: PolicyRuntime, d: Decision, path: str, data: dict, text: str) -> CascadeResult:
    cfg = pr.cfg.cascade
    assert cfg is not None and pr.checker is not None
    live = [m for m in d.ranking if m in pr.cfg.candidates]
    if cfg.order:
        order = [m for m in cfg.order if m in live]
    else:
        order = sorted(live, key=lambda m: rt.expected_cost(m, d.prompt_tokens))
    order += [m for m in d.ranking if m not in order]  # fallbacks last
    threshold = cfg.threshold if cfg.threshold is not None else pr.checker.threshold
    prompt_emb = d.embedding if d.embedding is not None else await rt.embed(text)
    stages: list[Stage] = []
    last_error: APIError | None = None
    for i, model in enumerate(order):
        client = rt.clients[model]
        body = {k: v for k, v in data.items() if k not in ("shunter", "stream", "stream_options")}
        body["model"] = client.model_id
        try:
            opened = await open_stream([client], path, lambda c, b=body: b, False)
            raw = await opened.response.aread()
            await opened.aclose()
            payload = orjson.loads(raw)
        except APIError as exc:
            stages.append(Stage(model, error=exc.code or "failed"))
            last_error = exc
            continue
        payload["model"] = model
        stage = Stage(model, usage=payload.get("usage"))
        stages.append(stage)
        if i == len(order) - 1:
            return CascadeResult(payload, model, stages)
        answer = _answer(payload)
        answer_emb = await rt.embed(answer) if answer else None
        p = float(pr.checker.check(prompt_emb[None, :], answer_emb[None, :])[0]) if answer_emb is not None else 0.0
        stage.p_correct = p
        if p >= threshold:
            return CascadeResult(payload, model, stages)
        metrics.ESCALATIONS.labels(pr.name, model, order[i + 1]).inc()
    if last_error is not None:
        raise last_error
    raise APIError(503, f"No candidate of policy '{pr.name}' answered.", code="no_candidate_available")


def as_sse(payload: dict, wants_usage: bool) -> list[bytes]:
    """The chosen answer as OpenAI chat (or text) completion chunks."""
    created = payload.get("created") or int(time.time())
    base = {"id": payload.get("id"), "created": created, "model": payload.get("model")}
    chat = payload.get("object", "").startswith("chat")
    out: list[bytes] = []
    for ch in payload.get("choices") or []:
        idx = ch.get("index", 0)
        if chat:
            msg: dict[str, Any] = dict(ch.get("message") or {})
            delta = {"role": msg.get("role", "assistant"), "content": msg.get("content")}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{"index": j, **tc} for j, tc in enumerate(msg["tool_calls"])]
            out.append(
                event(
                    {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": idx, "delta": delta, "finish_reason": None}],
                    }
                )
            )
            out.append(
                event(
                    {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": idx, "delta": {}, "finish_reason": ch.get("finish_reason")}],
                    }
                )
            )
        else:
            out.append(
                event(
                    {
                        **base,
                        "object": "text_completion",
                        "choices": [
                            {"index": idx, "text": ch.get("text", ""), "finish_reason": ch.get("finish_reason")}
                        ],
                    }
                )
            )
    if wants_usage and payload.get("usage"):
        out.append(
            event(
                {
                    **base,
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "choices": [],
                    "usage": payload["usage"],
                }
            )
        )
    out.append(DONE)
    return out


def dumps(payload: dict) -> bytes:
    return orjson.dumps(payload)
