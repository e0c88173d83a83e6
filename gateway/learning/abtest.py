"""Counterfactual shadow A/B of a candidate router against the deployed one, on judged requests.

A judged request (shadow sampling, :mod:`gateway.learning.shadow`, or a judge JSONL) carries the
judge's score for the served model (source ``judge``) and for each model that did not serve
(``judge@<model>``). For every such request of the held-back slice, each router scores the
recorded prompt embedding and ``routers.decision.choose`` picks a model at the policy's
objective, exactly as the gateway would (``gateway.policy.tiers.router_scores`` for the pair
rule, ``expected_cost`` for the decision costs). The choice is made among the models the judge
scored on that request (the counterfactual is only observable there). Each pick then gets:

- **quality**: the judge's score of that model on that request;
- **cost**: the recorded prompt and completion tokens at that model's upstream prices (the
  served answer's length stands in for the other models' answers; ``typical_output_tokens``
  when no completion was recorded).

**The bound: a one-sided 95% paired percentile bootstrap** (``B`` resamples of requests, seeded)
of the mean per-request quality difference (candidate minus deployed). Why this one: judge
scores are discrete (0, 0.5, 1) and the two routers agree on most requests, so the differences
are mostly exact zeros with a few ±0.5/±1: far from normal, which a paired t interval assumes
for small samples; a sign test drops the sizes of the differences. The bootstrap keeps the
pairing and the sizes and assumes no shape. It is anti-conservative for very small samples, so
the comparison needs ``min_requests`` judged requests before it can pass.

**Publish only when** the lower bound is above zero (better beyond the bound) **and** the
candidate's mean cost is equal or lower (point estimate: costs are prices times recorded
tokens, not a noisy judgement; the bootstrap upper bound of the cost difference is reported
next to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.outcomes.record import Feedback, Outcome

JUDGE = "judge"
CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_REQUESTS = 20


@dataclass
class JudgedRequest:
    request_id: str
    emb: np.ndarray  # (dim,) float32, L2-normalised
    scores: dict[str, float]  # policy candidate name -> the judge's score
    prompt_tokens: int
    completion_tokens: int | None


def judge_scores(items: list[Feedback], served: str) -> dict[str, float]:
    """Per-model judge scores of one request (empty unless at least two models were scored)."""
    by_model: dict[str, list[float]] = {}
    for f in items:
        if f.source == JUDGE:
            by_model.setdefault(served, []).append(f.score)
        elif f.source.startswith(JUDGE + "@"):
            by_model.setdefault(f.source.split("@", 1)[1], []).append(f.score)
    out = {m: float(np.mean(v)) for m, v in by_model.items()}
    return out if len(out) >= 2 else {}


def judged_requests(outcomes: list[Outcome], items: dict[str, list[Feedback]]) -> list[JudgedRequest]:
    """The outcomes with a recorded embedding and judge scores for two or more models."""
    out = []
    for o in outcomes:
        scores = judge_scores(items.get(o.request_id) or [], o.served or "")
        if not scores or not o.embedding:
            continue
        e = np.frombuffer(o.embedding, np.float16).astype(np.float32)
        e /= max(float(np.linalg.norm(e)), 1e-9)
        out.append(JudgedRequest(o.request_id, e, scores, int(o.prompt_tokens or 0), o.completion_tokens))
    return out


def policy_view(name: str, pol: Any, router: Any) -> Any:
    """A ``PolicyRuntime`` for ``router`` with the objective resolved as the gateway resolves it
    (``target_strong_share`` becomes this router's own calibrated threshold)."""
    from gateway.runtime import PolicyRuntime, threshold_for_share
    from routers.decision import Objective

    pr = PolicyRuntime(name, pol, router=router)
    pr.model_map = {c: pol.router.model_map.get(c, c) for c in pol.candidates}
    inverse = {v: k for k, v in pr.model_map.items()}
    meta = getattr(router, "meta", {}) or {}
    pr.strong = pol.router.strong or inverse.get(meta.get("strong") or "")
    pr.weak = pol.router.weak or inverse.get(meta.get("weak") or "")
    obj = pol.objective
    if obj.kind == "target_strong_share":
        s, w = pr.model_map.get(pr.strong or ""), pr.model_map.get(pr.weak or "")
        pr.objective = Objective("threshold", threshold_for_share(meta, obj.value, s, w))
    else:
        pr.objective = Objective(obj.kind, obj.value)
    return pr


def picks(pr: Any, reqs: list[JudgedRequest], decision_cost: Any) -> list[str]:
    """The model ``pr``'s router picks for each request, among the models the judge scored."""
    from gateway.policy.tiers import router_scores
    from routers.decision import choose

    out = []
    for r in reqs:
        cands = [c for c in pr.cfg.candidates if c in r.scores]
        scores, strong_win = router_scores(pr, pr.router, r.emb, cands)
        if not scores:  # the router knows none of them: the policy order, as the gateway does
            out.append(cands[0])
            continue
        costs = {c: decision_cost(c, r.prompt_tokens) for c in scores}
        strong = pr.strong if pr.strong in scores else None
        weak = pr.weak if pr.weak in scores else None
        out.append(choose(scores, costs, pr.objective, strong=strong, weak=weak, strong_win=strong_win).model)
    return out


def paired_bootstrap(diff: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of ``resamples`` paired resamples (with replacement) of the per-request differences."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    return diff[idx].mean(axis=1)


def compare(
    reqs: list[JudgedRequest],
    current: list[str],
    candidate: list[str],
    realised_cost: Any,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    min_requests: int = MIN_REQUESTS,
    seed: int = 0,
) -> dict[str, Any]:
    """The A/B table and verdict from both routers' picks; ``realised_cost(model, request)`` in USD."""
    n = len(reqs)
    out: dict[str, Any] = {
        "requests": n,
        "bound": f"one-sided {confidence:.0%} paired percentile bootstrap, {resamples} resamples",
        "min_requests": min_requests,
    }
    if n == 0:
        return {**out, "passed": False, "reason": "no judged requests in the held-back slice"}
    q = np.array([[r.scores[a], r.scores[b]] for r, a, b in zip(reqs, current, candidate, strict=True)])
    c = np.array([[realised_cost(a, r), realised_cost(b, r)] for r, a, b in zip(reqs, current, candidate, strict=True)])
    dq, dc = q[:, 1] - q[:, 0], c[:, 1] - c[:, 0]
    bq = paired_bootstrap(dq, resamples, seed)
    bc = paired_bootstrap(dc, resamples, seed)  # same seed: the same resampled requests
    alpha = 1.0 - confidence
    lower = float(np.quantile(bq, alpha))
    cost_upper = float(np.quantile(bc, confidence))
    models = sorted({*current, *candidate})
    out.update(
        {
            "routers": {
                name: {
                    "quality": float(q[:, k].mean()),
                    "cost_usd": float(c[:, k].mean()),
                    "total_cost_usd": float(c[:, k].sum()),
                    "picks": {m: sum(p == m for p in col) for m in models},
                }
                for k, (name, col) in enumerate((("current", current), ("candidate", candidate)))
            },
            "changed": int(sum(a != b for a, b in zip(current, candidate, strict=True))),
            "quality_diff": {"mean": float(dq.mean()), "lower": lower, "upper": float(np.quantile(bq, confidence))},
            "cost_diff_usd": {"mean": float(dc.mean()), "upper": cost_upper},
        }
    )
    passed, reason = verdict(n, float(dq.mean()), lower, float(dc.mean()), min_requests, confidence)
    return {**out, "passed": passed, "reason": reason}


def verdict(n: int, dq: float, lower: float, dc: float, min_requests: int, confidence: float) -> tuple[bool, str]:
    if n < min_requests:
        return False, f"only {n} judged requests (the A/B needs {min_requests})"
    head = f"quality {dq:+.4f} ({confidence:.0%} lower bound {lower:+.4f}), cost {dc:+.3g} USD/request"
    if lower <= 0:
        return False, head + ": not better beyond the bound"
    if dc > 1e-12:
        return False, head + ": costs more"
    return True, head + ": better at equal or lower cost"


def run(
    name: str,
    cfg: Any,
    current: Any,
    candidate: Any,
    outcomes: list[Outcome],
    items: dict[str, list[Feedback]],
    seed: int = 0,
    min_requests: int = MIN_REQUESTS,
) -> dict[str, Any]:
    """Both routers on the judged ``outcomes`` at policy ``name``'s objective (``cfg``: the Config)."""
    from routers.decision import expected_cost

    pol = cfg.policies[name]
    reqs = [r for r in judged_requests(outcomes, items) if sum(c in r.scores for c in pol.candidates) >= 2]
    ups = cfg.upstreams

    def decision_cost(m: str, prompt_tokens: int) -> float:
        u = ups[m]
        return expected_cost(prompt_tokens, u.input_price or 0.0, u.output_price or 0.0, u.typical_output_tokens)

    def realised_cost(m: str, r: JudgedRequest) -> float:
        u = ups[m]
        out_tokens = r.completion_tokens if r.completion_tokens is not None else u.typical_output_tokens
        return expected_cost(r.prompt_tokens, u.input_price or 0.0, u.output_price or 0.0, out_tokens)

    cur = picks(policy_view(name, pol, current), reqs, decision_cost)
    new = picks(policy_view(name, pol, candidate), reqs, decision_cost)
    out = compare(reqs, cur, new, realised_cost, seed=seed, min_requests=min_requests)
    out["objective"] = pol.objective.model_dump(exclude_none=True)
    return out


def table_rows(ab: dict[str, Any]) -> list[list[str]]:
    """``[router, mean judged quality, mean cost USD/request, picks]`` rows, then the difference row."""
    routers = ab.get("routers") or {}
    out = []
    for name in ("current", "candidate"):
        r = routers.get(name)
        if r:
            picks_ = ", ".join(f"{m} {k}" for m, k in r["picks"].items() if k)
            out.append([name, f"{r['quality']:.4f}", f"{r['cost_usd']:.3g}", picks_])
    if "quality_diff" in ab:
        qd, cd = ab["quality_diff"], ab["cost_diff_usd"]
        out.append(
            [
                "candidate - current",
                f"{qd['mean']:+.4f} [{qd['lower']:+.4f}, {qd['upper']:+.4f}]",
                f"{cd['mean']:+.3g} (upper {cd['upper']:+.3g})",
                f"{ab['changed']} of {ab['requests']} picks changed",
            ]
        )
    return out


def plot(ab: dict[str, Any], path: Any) -> bool:
    """Mean judged quality against mean cost per router, and the quality difference with its
    bootstrap interval. False when matplotlib is missing or there is nothing to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    routers = ab.get("routers")
    if not routers:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, marker in (("current", "o"), ("candidate", "s")):
        r = routers[name]
        a1.scatter([r["cost_usd"]], [r["quality"]], marker=marker, s=60, label=name)
    a1.set_xlabel("mean cost, USD per request")
    a1.set_ylabel(f"mean judged quality ({ab['requests']} requests)")
    a1.legend(fontsize=8)
    qd = ab["quality_diff"]
    a2.errorbar([0], [qd["mean"]], yerr=[[qd["mean"] - qd["lower"]], [qd["upper"] - qd["mean"]]], fmt="o", capsize=6)
    a2.axhline(0, ls=":", c="grey")
    a2.set_xticks([0], ["candidate - current"])
    a2.set_ylabel("quality difference (bootstrap interval)")
    a2.set_title("passed" if ab.get("passed") else "refused", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
