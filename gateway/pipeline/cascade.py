"""FrugalGPT's runtime cascade: answer with the cheapest candidate, check the answer, escalate.

Each stage is a complete (non-streamed) upstream call through the shared ``forward.open_stream``,
with the same upstream body as any other call (reasoning effort included). A learned answer
checker (``routers.cascade.AnswerChecker``, trained on RouterBench responses and their
correctness) scores P(answer is correct) from the prompt and answer embeddings; below the
threshold the next candidate answers instead, up to the last candidate, whose answer is final.

Escalation stays within the policy's candidates. A stage that fails (an upstream error, a reset
or malformed body) is skipped; when a later stage fails the best answer so far is served. The
policy's ``fallbacks`` are tried only when every candidate failed: they are for failures, never
for escalation. Every stage was paid for, so the cost counts all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import metrics
from gateway.errors import APIError
from gateway.pipeline.body import BodyFor
from gateway.upstream.forward import open_stream

if TYPE_CHECKING:
    from gateway.ingress.base import ChatRequest
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

    def earlier_usage(self) -> list[tuple[str, dict]]:
        """The usage of every paid stage but the one served."""
        served = next((s for s in reversed(self.stages) if s.model == self.served and s.usage is not None), None)
        return [(s.model, s.usage) for s in self.stages if s.usage and s is not served]

    def header(self) -> str:
        return "->".join(
            f"{s.model}({f'p={s.p_correct:.3f}' if s.p_correct is not None else s.error or 'final'})"
            for s in self.stages
        )


def answer_text(payload: dict) -> str:
    choices = payload.get("choices") or [{}]
    ch = choices[0]
    msg = ch.get("message") or {}
    return (msg.get("content") if isinstance(msg, dict) else None) or ch.get("text") or ""


def stage_order(rt: Runtime, pr: PolicyRuntime, d: Decision) -> tuple[list[str], list[str]]:
    """(the candidates, cheapest first or in ``cascade.order``; the fallbacks, in decision order)."""
    cfg = pr.cfg.cascade
    assert cfg is not None
    live = [m for m in d.ranking if m in pr.cfg.candidates]
    if cfg.order:
        order = [m for m in cfg.order if m in live]
        order += [m for m in live if m not in order]
    else:
        order = sorted(live, key=lambda m: rt.expected_cost(m, d.prompt_tokens))
    return order, [m for m in d.ranking if m not in order]


async def run(rt: Runtime, pr: PolicyRuntime, d: Decision, chat: ChatRequest, text: str) -> CascadeResult:
    assert pr.cfg.cascade is not None and pr.checker is not None
    order, fallbacks = stage_order(rt, pr, d)
    threshold = pr.cfg.cascade.threshold if pr.cfg.cascade.threshold is not None else pr.checker.threshold
    body = BodyFor(chat.body, False, d.reasoning_effort)
    stages: list[Stage] = []
    best: tuple[dict[str, Any], str] | None = None
    last_error: APIError | None = None
    prompt_emb = None
    for i, model in enumerate(order):
        try:
            opened = await open_stream([rt.clients[model]], chat.upstream_path, body, False, d.policy)
        except APIError as exc:
            stages.append(Stage(model, error=exc.code or "failed"))
            last_error = exc
            continue
        payload = opened.payload or {}
        payload["model"] = model
        stage = Stage(model, usage=payload.get("usage"))
        stages.append(stage)
        best = (payload, model)
        if i == len(order) - 1:
            break
        if prompt_emb is None:
            prompt_emb = d.embedding if d.embedding is not None else await rt.embed(text)
        answer = answer_text(payload)
        answer_emb = await rt.embed(answer) if answer else None
        p = float(pr.checker.check(prompt_emb[None, :], answer_emb[None, :])[0]) if answer_emb is not None else 0.0
        stage.p_correct = p
        if p >= threshold:
            break
        metrics.ESCALATIONS.labels(pr.name, model, order[i + 1]).inc()
    if best is not None:
        return CascadeResult(best[0], best[1], stages)
    if fallbacks:  # every candidate failed: the fallbacks answer, unchecked
        opened = await open_stream([rt.clients[m] for m in fallbacks], chat.upstream_path, body, False, d.policy)
        payload = opened.payload or {}
        payload["model"] = opened.client.name
        stages.append(Stage(opened.client.name, usage=payload.get("usage")))
        return CascadeResult(payload, opened.client.name, stages)
    if last_error is not None:
        raise last_error
    raise APIError(503, f"No candidate of policy '{pr.name}' answered.", code="no_candidate_available")
