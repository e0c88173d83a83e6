"""Judged shadow sampling: after a sampled request is answered, ask the models that did not serve
and an LLM judge, in the background, and store the judge's preference as feedback.

One entry point, :meth:`ShadowService.submit`, called once per finished request by the
request pipeline's finish stage (``finish_hook``, registered by ``gateway.services``). It decides eligibility synchronously (no I/O) and, for an
eligible request, starts a background task; it never awaits anything, so the client's answer and
latency cannot depend on it. The task then:

1. counts the request against the policy's sampling rate (a shared counter: request ``c`` is
   sampled when ``floor(c * rate)`` grows, so exactly ``floor(n * rate)`` of ``n`` eligible
   requests are sampled, across replicas when Redis is configured);
2. for each model of ``compare`` other than the served one: reserves the call's worst-case cost
   (prompt bytes / 2 + 64 tokens in, ``max_tokens`` out, at the upstream's prices) against the
   policy's daily budget *before* calling (``check_and_incr`` on a per-UTC-day key; refused
   once the budget would be exceeded), calls it without streaming (``upstream.forward.call_once``:
   sent as a request's call is, without retries; skipped as ``busy`` when every concurrency slot
   of the upstream is serving clients), and settles the reservation to the real usage cost;
3. asks the judge twice (both orders, :mod:`gateway.learning.judge`), each call reserved the same way;
4. stores feedback items on the request: source ``judge`` (the served model's score, its mean
   preference over the others) and ``judge@<model>`` (each other model's score), label
   ``agree``/``disagree`` (the two orders), a comment with the verdicts. No prompt and no answer
   is ever written: both live in memory only while the task runs.

Eligible requests (everything else is skipped and counted by reason):
chat completions, Anthropic Messages or Responses requests (the latter two as the chat request the
gateway made of them) that succeeded with a non-empty answer from one of ``compare``; no ``tools``,
``functions``, ``tool_choice`` or tool messages (a tool call may have side effects, and replaying
it is never safe); no ``web_search_options`` or audio output (external effects); ``n`` of 1;
not a response-cache hit; not opted out (``store: false`` in a chat or Responses request, or header
``x-shunter-shadow: off``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway import metrics
from gateway.learning import judge as J
from gateway.outcomes.record import Feedback, Outcome, Spend
from gateway.policy.engine import reference_of
from gateway.state import StateUnavailable
from gateway.upstream.forward import CallFailed, call_once

log = logging.getLogger("shunter")

OPT_OUT_HEADER = "x-shunter-shadow"
# the endpoints whose requests are chat inside the gateway (Messages and Responses are translated)
SHADOWED_ENDPOINTS = ("chat", "messages", "responses")
_SIDE_EFFECT_KEYS = ("tools", "functions", "tool_choice", "function_call", "web_search_options")


def ineligible(
    outcome: Outcome, body: dict[str, Any], answer: str | None, headers: dict[str, str], compare: list[str]
) -> str | None:
    """Why this request may not be shadowed (a short reason), or None when it may."""
    if outcome.endpoint not in SHADOWED_ENDPOINTS:
        return "endpoint"
    if outcome.status != 200 or not outcome.served or outcome.error_type:
        return "failed"
    if outcome.reason == "cache":
        return "cache"
    if body.get("store") is False or headers.get(OPT_OUT_HEADER, "").lower() in ("off", "0", "false", "no"):
        return "opt_out"
    if any(body.get(k) for k in _SIDE_EFFECT_KEYS):
        return "tools"
    msgs = body.get("messages") or []
    if any(m.get("role") in ("tool", "function") or m.get("tool_calls") for m in msgs if isinstance(m, dict)):
        return "tools"
    if body.get("audio") or "audio" in (body.get("modalities") or []):
        return "side_effects"
    if (body.get("n") or 1) != 1:
        return "n"
    if not answer:
        return "no_answer"
    if outcome.served not in compare:
        return "served_not_compared"
    return None


def question_text(body: dict[str, Any]) -> str:
    """The conversation as the judge sees it: every message's text, ``role: content``."""
    parts = []
    for m in body.get("messages") or []:
        c = m.get("content")
        if isinstance(c, list):
            c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        parts.append(f"{m.get('role', 'user')}: {c or ''}")
    return parts[-1].split(": ", 1)[1] if len(parts) == 1 else "\n".join(parts)


def answer_of(payload: Any) -> str | None:
    try:
        return payload["choices"][0]["message"]["content"] or None
    except (KeyError, IndexError, TypeError):
        return None


@dataclass
class ShadowService:
    """Background shadow calls and judging for every policy with ``learning.shadow``."""

    store: Any  # gateway.outcomes.stores.Store
    shared: Any  # gateway.state.SharedState
    max_inflight: int = 4  # sampled requests shadowed at once; the rest wait their turn
    max_waiting: int = 256  # sampled requests waiting; more are dropped ("busy")
    tasks: set[asyncio.Task] = field(default_factory=set)
    active: int = 0
    _slots: asyncio.Semaphore | None = None

    # ----------------------------------------------------------------- the entry point
    def submit(
        self, rt: Any, outcome: Outcome, body: dict[str, Any], answer: str | None, headers: dict[str, str]
    ) -> str:
        """Consider one finished request; returns ``started`` or why it was skipped. Never blocks."""
        pr = rt.policies.get(outcome.policy or "")
        cfg = getattr(getattr(pr, "cfg", None), "learning", None)
        shadow = getattr(cfg, "shadow", None)
        if shadow is None:
            return "off"
        compare = list(shadow.compare or pr.cfg.candidates)
        why = ineligible(outcome, body, answer, headers, compare)
        if why is not None:
            metrics.SHADOW_SKIPPED.labels(outcome.policy or "", why).inc()
            return why
        task = asyncio.get_running_loop().create_task(self._run(rt, outcome, body, answer or "", shadow, compare))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return "started"

    def finish_hook(self, svc: Any, outcome: Outcome, ctx: Any) -> None:
        """The request pipeline's post-answer hook (``Services.finish_hooks``). A Messages or
        Responses request is shadowed as the chat request the gateway made of it."""
        chat = getattr(ctx, "chat", None)
        if chat is None or outcome.policy is None:
            return
        body = chat.body
        if ctx.ingress.store_opt_out(chat) and body.get("store") is not False:
            body = {**body, "store": False}
        self.submit(ctx.rt, outcome, body, ctx.answer, ctx.headers)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Let running tasks finish for up to ``timeout`` seconds, then cancel the rest."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
            for t in pending:
                t.cancel()

    # ----------------------------------------------------------------- the background task
    async def _run(self, rt: Any, outcome: Outcome, body: dict, answer: str, shadow: Any, compare: list[str]) -> None:
        policy = outcome.policy or ""
        try:
            if not await self._sampled(policy, shadow.rate):
                metrics.SHADOW_SKIPPED.labels(policy, "not_sampled").inc()
                return
            if self.active >= self.max_inflight + self.max_waiting:
                metrics.SHADOW_SKIPPED.labels(policy, "busy").inc()
                return
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.max_inflight)
            self.active += 1
            try:
                async with self._slots:
                    await self._shadow(rt, outcome, body, answer, shadow, compare)
            finally:
                self.active -= 1
        except asyncio.CancelledError:
            raise
        except StateUnavailable:  # the sampling count or the budget cannot be read: no call is made
            metrics.SHADOW_SKIPPED.labels(policy, "state_unavailable").inc()
        except Exception:
            log.exception("shadow sampling of %s failed", outcome.request_id)
        finally:
            await self._export_budget(policy, shadow)

    async def _shadow(
        self, rt: Any, outcome: Outcome, body: dict, answer: str, shadow: Any, compare: list[str]
    ) -> None:
        policy = outcome.policy or ""
        served = outcome.served or ""
        question = question_text(body)
        prefs: list[J.Preference] = []
        for other in [m for m in compare if m != served]:
            alt = await self._shadow_call(rt, outcome.request_id, policy, other, body, shadow)
            if alt is None:
                continue
            pref = await self._judge_pair(rt, outcome.request_id, policy, shadow, question, served, answer, other, alt)
            if pref is not None:
                prefs.append(pref)
        if prefs:
            await self._store(outcome.request_id, served, prefs, shadow.judge)
            ref = reference_of(rt, policy)
            for p in prefs:
                if p.second == ref:  # the served answer against the reference's (report's quality)
                    result = "tie" if p.score == 0.5 else ("better" if p.score > 0.5 else "worse")
                    metrics.JUDGED_VS_REFERENCE.labels(policy, result).inc()

    @property
    def _counters(self) -> Any:
        """The shared state without its outage fallback: while Redis is away, a ``FailSoft`` state
        answers every count as new and every check as passed, which would let each replica sample
        and spend as if the budget were untouched; the strict state raises instead, and the request
        is skipped (``state_unavailable``)."""
        return getattr(self.shared, "strict", self.shared)

    async def _sampled(self, policy: str, rate: float) -> bool:
        c = int(await self._counters.incr(f"shadow:{policy}:eligible", 1.0))
        return int(c * rate + 1e-9) > int((c - 1) * rate + 1e-9)

    # budget: reserve the worst case before each call, settle to the real cost after it
    def _day_key(self, policy: str) -> str:
        return f"shadow:{policy}:spent:{time.strftime('%Y%m%d', time.gmtime())}"

    async def _reserve(self, policy: str, shadow: Any, client: Any, body: dict, max_tokens: int) -> float | None:
        cfg = client.cfg
        prompt_tokens = len(orjson.dumps(body.get("messages") or [])) / 2 + 64
        worst = (prompt_tokens * (cfg.input_price or 0.0) + max_tokens * (cfg.output_price or 0.0)) / 1e6
        ok, _, _ = await self._counters.check_and_incr(
            self._day_key(policy), worst, shadow.budget_usd_per_day, 2 * 86400
        )
        return worst if ok else None

    @staticmethod
    def _cost_of(client: Any, reserved: float, payload: dict | None, result: str) -> float:
        """The call's real cost: its usage at the upstream's prices; nothing when the upstream
        refused it with an error status (no tokens were generated); the reserved worst case when
        the cost is unknown (a transport error or timeout mid-call, or a reply without ``usage``)."""
        usage = (payload or {}).get("usage")
        if usage:
            return _cost(client, usage)
        return 0.0 if result.startswith("status_") else reserved

    async def _settle(
        self,
        request_id: str,
        policy: str,
        model: str,
        client: Any,
        reserved: float,
        call: tuple[dict | None, str],
        kind: str,
    ) -> None:
        """Count the call's real cost: the day's budget, the metrics and a ``Spend`` row (``shunter report``)."""
        cost = self._cost_of(client, reserved, *call)
        try:
            await self._counters.incr(self._day_key(policy), cost - reserved)
        except StateUnavailable:  # Redis went away after the reservation: the worst case stays counted
            log.warning("shadow budget of %s: settling %s's call failed; its worst case stays counted", policy, kind)
        metrics.LEARNING_COST.labels(policy, kind).inc(cost)
        metrics.NET_SAVINGS.labels(policy).dec(cost)
        item = Spend(request_id=request_id, policy=policy, kind=kind, model=model, cost_usd=cost, ts=time.time())
        try:
            await asyncio.to_thread(self.store.add_spend, item)
        except Exception:
            log.exception("recording the %s spend of %s failed", kind, request_id)

    async def _export_budget(self, policy: str, shadow: Any) -> None:
        try:
            spent = float(await self._counters.get(self._day_key(policy)) or 0.0)
        except Exception:
            return
        metrics.SHADOW_BUDGET_REMAINING.labels(policy).set(max(0.0, shadow.budget_usd_per_day - spent))

    async def _call(self, client: Any, body: dict) -> tuple[dict | None, str]:
        """One plain call outside the request path (no retries, no fallback), sent as the request
        path sends (an Anthropic upstream gets Messages; the answer is checked as a completion)."""
        try:
            payload = await call_once(client, "/chat/completions", body, client.cfg.timeouts.total)
        except CallFailed as exc:
            return None, exc.kind
        return payload, "ok"

    async def _shadow_call(
        self, rt: Any, request_id: str, policy: str, model: str, body: dict, shadow: Any
    ) -> str | None:
        client = rt.clients[model]
        max_tokens = min(
            int(body.get("max_tokens") or body.get("max_completion_tokens") or shadow.max_tokens), shadow.max_tokens
        )
        call = {
            k: v for k, v in body.items() if k not in ("shunter", "stream", "stream_options", "max_completion_tokens")
        }
        call.update(model=client.model_id, stream=False, max_tokens=max_tokens)
        if client.slots.locked():  # every slot serves clients now: a shadow call would queue ahead of them
            metrics.SHADOW_CALLS.labels(policy, model, "busy").inc()
            return None
        reserved = await self._reserve(policy, shadow, client, call, max_tokens)
        if reserved is None:
            metrics.SHADOW_CALLS.labels(policy, model, "budget").inc()
            return None
        payload, result = await self._call(client, call)
        metrics.SHADOW_CALLS.labels(policy, model, result).inc()
        await self._settle(request_id, policy, model, client, reserved, (payload, result), "shadow")
        return answer_of(payload)

    async def _ask_judge(self, rt: Any, request_id: str, policy: str, shadow: Any, msgs: list[dict]) -> str | None:
        client = rt.clients[shadow.judge]
        call = {"model": client.model_id, "messages": msgs, "temperature": 0, "max_tokens": shadow.judge_max_tokens}
        if client.slots.locked():  # as for shadow calls: never queue ahead of clients
            metrics.JUDGE_CALLS.labels(policy, shadow.judge, "busy").inc()
            return None
        reserved = await self._reserve(policy, shadow, client, call, shadow.judge_max_tokens)
        if reserved is None:
            metrics.JUDGE_CALLS.labels(policy, shadow.judge, "budget").inc()
            return None
        payload, result = await self._call(client, call)
        await self._settle(request_id, policy, shadow.judge, client, reserved, (payload, result), "judge")
        verdict = J.parse_verdict(answer_of(payload)) if payload is not None else None
        metrics.JUDGE_CALLS.labels(
            policy, shadow.judge, result if payload is None else ("ok" if verdict else "unparsed")
        ).inc()
        return verdict

    async def _judge_pair(
        self,
        rt: Any,
        request_id: str,
        policy: str,
        shadow: Any,
        question: str,
        served: str,
        answer: str,
        other: str,
        alt: str,
    ) -> J.Preference | None:
        v1 = await self._ask_judge(rt, request_id, policy, shadow, J.messages(question, answer, alt))
        if v1 is None:
            return None
        v2 = await self._ask_judge(rt, request_id, policy, shadow, J.messages(question, alt, answer))
        if v2 is None:
            return None
        pref = J.Preference(served, other, v1, v2)
        metrics.JUDGE_AGREEMENT.labels(policy, "true" if pref.agreed else "false").inc()
        a, b = sorted((served, other))
        metrics.JUDGE_PREFERENCES.labels(
            policy, a, b, "tie" if pref.winner == "tie" else ("a" if pref.winner == a else "b")
        ).inc()
        return pref

    async def _store(self, request_id: str, served: str, prefs: list[J.Preference], judge_name: str) -> None:
        now = time.time()
        agreed = all(p.agreed for p in prefs)
        verdicts = {p.second: [p.verdict_first_as_a, p.verdict_first_as_b] for p in prefs}
        comment = json.dumps({"judge": judge_name, "served": served, "verdicts": verdicts})
        items = [
            Feedback(
                request_id=request_id,
                source="judge",
                score=sum(p.score for p in prefs) / len(prefs),
                label="agree" if agreed else "disagree",
                comment=comment,
                ts=now,
            )
        ]
        items += [
            Feedback(
                request_id=request_id,
                source=f"judge@{p.second}",
                score=1.0 - p.score,
                label="agree" if p.agreed else "disagree",
                comment=comment,
                ts=now,
            )
            for p in prefs
        ]
        for fb in items:
            await asyncio.to_thread(self.store.add_feedback, fb)
        metrics.FEEDBACK.labels("judge").inc(len(items))


def _cost(client: Any, usage: dict) -> float:
    """USD of one call at the upstream's prices (0 for an unpriced upstream, e.g. a local model)."""
    cfg = client.cfg
    return (
        (usage.get("prompt_tokens") or 0) * (cfg.input_price or 0.0)
        + (usage.get("completion_tokens") or 0) * (cfg.output_price or 0.0)
    ) / 1e6
