"""``shunter report``: cost saved against the reference model, net of what routing and learning cost,
next to the judged quality against the reference model.

Read from the SQLite outcome store (``server.outcomes_path``, or a trainer's file filled by
``shunter outcomes pull``). Per policy, over outcomes since a time:

- ``reference_usd``: what every priced request would have cost on the policy's reference model;
- ``served_usd``: what it cost (the served call plus any earlier cascade stages);
- ``cascade_usd``: the cascade stages' part of ``served_usd`` (shown, already subtracted);
- ``shadow_usd`` and ``judge_usd``: the learning calls made for those requests (the ``spend`` table);
- ``routing_cpu_s`` and ``routing_cpu_usd``: the decide stage's CPU at ``usd_per_cpu_hour``;
- ``net_saved_usd = reference_usd - served_usd - shadow_usd - judge_usd - routing_cpu_usd``.

Only requests with both a cost and a reference cost count as saved (an unpriced model saves
nothing measurable); the learning and CPU costs count for every request, priced or not.

**Quality** compares the served answer with the reference model's answer on the judged (shadow
sampled) requests where the reference model did not serve: the ``judge@<reference>`` item's
score is the reference's preference, so the served model's is one minus it (win 1, tie 0.5,
loss 0, averaged over both orders). Reported: the mean with a 95% percentile bootstrap interval
(2,000 resamples, seeded), and the share not worse than the reference (score >= 0.5) with a 95%
Wilson interval. Requests the reference model served are counted (``judged_reference_served``)
but not scored: they tie with themselves by construction.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gateway.outcomes.record import Feedback, Outcome, Spend

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time ``text`` ago (``7d``, ``12h``, ``30m``, ``2w``, ``90s``); ``0``/``all``: the beginning."""
    if text in ("0", "all"):
        return 0.0
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"--since: expected a span like 7d, 12h, 30m or 0, got {text!r}")
    return (time.time() if now is None else now) - float(m.group(1)) * _UNIT[m.group(2)]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (None when ``n`` is 0)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean (None when there are no values)."""
    if not values:
        return None
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


@dataclass
class PolicyReport:
    policy: str
    reference_model: str | None = None
    requests: int = 0
    priced: int = 0
    reference_usd: float = 0.0
    served_usd: float = 0.0
    cascade_usd: float = 0.0
    gross_saved_usd: float = 0.0
    shadow_usd: float = 0.0
    judge_usd: float = 0.0
    shadow_calls: int = 0
    judge_calls: int = 0
    routing_cpu_s: float = 0.0
    routing_cpu_usd: float = 0.0
    net_saved_usd: float = 0.0
    net_saved_share: float | None = None
    judged: int = 0
    judged_reference_served: int = 0
    quality_n: int = 0
    quality_vs_reference: float | None = None
    quality_ci95: tuple[float, float] | None = None
    not_worse_share: float | None = None
    not_worse_ci95: tuple[float, float] | None = None
    _scores: list[float] = field(default_factory=list, repr=False)


def build(
    outcomes: list[Outcome],
    spend: list[Spend],
    feedback: list[Feedback],
    usd_per_cpu_hour: float,
    reference_models: dict[str, str | None] | None = None,
    seed: int = 0,
) -> list[PolicyReport]:
    """One report per policy from the store's rows (see the module docstring for every figure)."""
    refs = reference_models or {}
    reps: dict[str, PolicyReport] = {}
    by_id: dict[str, Outcome] = {}
    for o in outcomes:
        if not o.policy:
            continue
        by_id[o.request_id] = o
        r = reps.setdefault(o.policy, PolicyReport(o.policy, refs.get(o.policy)))
        r.requests += 1
        r.routing_cpu_s += o.route_cpu_s or 0.0
        if o.cost_usd is not None and o.reference_cost_usd is not None:
            r.priced += 1
            r.reference_usd += o.reference_cost_usd
            r.served_usd += o.cost_usd
            r.cascade_usd += o.extra_cost_usd or 0.0
    for s in spend:
        found = reps.get(s.policy)
        if found is None or s.request_id not in by_id:
            continue
        r = found
        if s.kind == "judge":
            r.judge_usd += s.cost_usd
            r.judge_calls += 1
        else:
            r.shadow_usd += s.cost_usd
            r.shadow_calls += 1
    _judged_quality(reps, by_id, feedback)
    for r in reps.values():
        r.gross_saved_usd = r.reference_usd - r.served_usd
        r.routing_cpu_usd = r.routing_cpu_s * usd_per_cpu_hour / 3600.0
        r.net_saved_usd = r.gross_saved_usd - r.shadow_usd - r.judge_usd - r.routing_cpu_usd
        r.net_saved_share = r.net_saved_usd / r.reference_usd if r.reference_usd > 0 else None
        if r._scores:
            r.quality_n = len(r._scores)
            r.quality_vs_reference = float(np.mean(r._scores))
            r.quality_ci95 = bootstrap_mean(r._scores, seed=seed)
            ok = sum(1 for v in r._scores if v >= 0.5)
            r.not_worse_share = ok / len(r._scores)
            r.not_worse_ci95 = wilson(ok, len(r._scores))
    return sorted(reps.values(), key=lambda r: r.policy)


def _judged_quality(reps: dict[str, PolicyReport], by_id: dict[str, Outcome], feedback: list[Feedback]) -> None:
    """The served model's judged score against the reference model, per judged request."""
    judged = {f.request_id for f in feedback if f.source == "judge"}
    items = {(f.request_id, f.source): f for f in feedback}
    for rid in judged:
        o = by_id.get(rid)
        if o is None or o.policy is None:
            continue
        r = reps[o.policy]
        r.judged += 1
        if r.reference_model is None:
            continue
        if o.served == r.reference_model:
            r.judged_reference_served += 1
            continue
        ref_item = items.get((rid, f"judge@{r.reference_model}"))
        if ref_item is not None:
            r._scores.append(1.0 - ref_item.score)


def to_json(reports: list[PolicyReport], since: float, usd_per_cpu_hour: float) -> dict[str, Any]:
    rows = []
    for r in reports:
        d = asdict(r)
        d.pop("_scores")
        rows.append(d)
    return {"since": since, "usd_per_cpu_hour": usd_per_cpu_hour, "policies": rows}


def reference_models(config: Any) -> dict[str, str | None]:
    """Each policy's reference model from the policy file: its ``reference_model``, else its priciest
    priced candidate (as the gateway prices ``reference_cost_usd``)."""
    out: dict[str, str | None] = {}
    for name, pol in config.policies.items():
        if pol.reference_model:
            out[name] = pol.reference_model
            continue
        priced = [c for c in pol.candidates if c in config.upstreams and config.upstreams[c].output_price is not None]
        out[name] = (
            max(priced, key=lambda c: (config.upstreams[c].output_price or 0, config.upstreams[c].input_price or 0))
            if priced
            else None
        )
    return out


def _usd(v: float) -> str:
    return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.2f}"


def _ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def print_table(reports: list[PolicyReport], since: str, usd_per_cpu_hour: float) -> None:
    """The rich table: one column per policy, one row per figure."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Savings since {since} (routing CPU at ${usd_per_cpu_hour}/CPU-hour)")
    table.add_column("")
    for r in reports:
        table.add_column(r.policy, justify="right")

    def row(label: str, fn: Any) -> None:
        table.add_row(label, *[fn(r) for r in reports])

    row("reference model", lambda r: r.reference_model or "-")
    row("requests (priced)", lambda r: f"{r.requests} ({r.priced})")
    row("reference cost USD", lambda r: _usd(r.reference_usd))
    row("served cost USD", lambda r: _usd(r.served_usd))
    row("  of which cascade stages", lambda r: _usd(r.cascade_usd))
    row("gross saved USD", lambda r: _usd(r.gross_saved_usd))
    row("- shadow calls USD", lambda r: f"{_usd(r.shadow_usd)} ({r.shadow_calls})")
    row("- judge calls USD", lambda r: f"{_usd(r.judge_usd)} ({r.judge_calls})")
    row("- routing CPU USD", lambda r: f"{_usd(r.routing_cpu_usd)} ({r.routing_cpu_s:.2f} s)")
    row("net saved USD", lambda r: _usd(r.net_saved_usd))
    row("net saved share", lambda r: "-" if r.net_saved_share is None else f"{r.net_saved_share:.1%}")
    row("judged requests (ref. served)", lambda r: f"{r.judged} ({r.judged_reference_served})")
    row(
        "quality vs reference (95% CI)",
        lambda r: (
            "-"
            if r.quality_vs_reference is None
            else f"{r.quality_vs_reference:.2f}{_ci(r.quality_ci95)} n={r.quality_n}"
        ),
    )
    row(
        "not worse than reference",
        lambda r: "-" if r.not_worse_share is None else f"{r.not_worse_share:.0%}{_ci(r.not_worse_ci95)}",
    )
    Console().print(table if reports else "no outcomes with a policy in this window")
