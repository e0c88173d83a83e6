"""Generate Shunter's Grafana dashboards (JSON) from one compact description.

Run ``python deploy/grafana/build_dashboards.py`` after editing; the JSON files under
``deploy/grafana/dashboards/`` are what Grafana provisions (and what the tests read).
Every panel query only uses metrics that ``gateway.metrics`` exports
(``tests/deploy/test_dashboards_static.py`` checks that).
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "shunter-prometheus"}
P = 'policy=~"$policy"'
U = 'upstream=~"$upstream"'
RI = "$__rate_interval"


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend}


def quantiles(metric: str, sel: str, by: str = "", qs=(0.5, 0.95, 0.99)) -> list[dict]:
    by_ = f"le{', ' + by if by else ''}"
    out = []
    for x in qs:
        legend = f"p{int(x * 100)}" + (" {{" + by + "}}" if by else "")
        out.append(q(f"histogram_quantile({x}, sum by ({by_}) (rate({metric}_bucket{{{sel}}}[{RI}])))", legend))
    return out


def panel(
    title: str,
    targets: list[dict],
    unit: str = "short",
    kind: str = "timeseries",
    w: int = 12,
    h: int = 8,
    desc: str = "",
    stack: bool = False,
) -> dict:
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{**t, "refId": chr(ord("A") + i), "datasource": DS} for i, t in enumerate(targets)],
        "_w": w,
        "_h": h,
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 20 if stack else 0,
            "stacking": {"mode": "percent" if stack else "none"},
        }
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "none"}
    if kind == "state-timeline":
        p["fieldConfig"]["defaults"]["mappings"] = [
            {
                "type": "value",
                "options": {
                    "0": {"text": "closed", "color": "green"},
                    "1": {"text": "half-open", "color": "yellow"},
                    "2": {"text": "open", "color": "red"},
                },
            }
        ]
    return p


def var(name: str, metric: str, label: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": f"label_values({metric}, {label})", "refId": "StandardVariableQuery"},
        "definition": f"label_values({metric}, {label})",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    x = y = row_h = 0
    laid = []
    for i, p in enumerate(panels):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        laid.append({"id": i + 1, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **p})
        x += w
        row_h = max(row_h, h)
    return {
        "uid": uid,
        "title": title,
        "tags": ["shunter"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["shunter"], "asDropdown": True, "title": "Shunter"}],
        "panels": laid,
    }


def overview() -> dict:
    total = f"sum(rate(shunter_requests_total{{{P}}}[{RI}]))"
    errors = f'sum(rate(shunter_requests_total{{{P}, status=~"4xx|5xx|error"}}[{RI}]))'
    panels = [
        panel(
            "Requests per second",
            [
                q(f"sum(rate(shunter_requests_total{{{P}}}[{RI}]))", "total"),
                q(f"sum by (policy) (rate(shunter_requests_total{{{P}}}[{RI}]))", "{{policy}}"),
            ],
            "reqps",
            w=8,
        ),
        panel(
            "Error rate",
            [q(f"({errors} or vector(0)) / clamp_min({total}, 1e-9)", "errors / requests")],
            "percentunit",
            w=8,
            desc="4xx, 5xx and streams that broke after the first byte.",
        ),
        panel(
            "Requests by status",
            [q(f"sum by (status) (rate(shunter_requests_total{{{P}}}[{RI}]))", "{{status}}")],
            "reqps",
            w=8,
        ),
        panel("Request duration", quantiles("shunter_request_duration_seconds", P), "s"),
        panel("Time to first token", quantiles("shunter_time_to_first_token_seconds", P), "s"),
        panel(
            "Requests (range)",
            [q(f"sum(increase(shunter_requests_total{{{P}}}[$__range]))", "requests")],
            "short",
            "stat",
            w=6,
            h=5,
        ),
        panel(
            "Cost (range)",
            [q(f"sum(increase(shunter_cost_usd_total{{{P}}}[$__range]))", "USD")],
            "currencyUSD",
            "stat",
            w=6,
            h=5,
        ),
        panel(
            "Cost saved (range)",
            [q(f"sum(increase(shunter_cost_saved_usd_total{{{P}}}[$__range]))", "USD")],
            "currencyUSD",
            "stat",
            w=6,
            h=5,
            desc="Against sending every request to the policy's reference model.",
        ),
        panel(
            "Response cache hit ratio",
            [
                q(
                    f'sum by (cache) (rate(shunter_cache_requests_total{{result="hit"}}[{RI}])) / clamp_min(sum by (cache) (rate(shunter_cache_requests_total[{RI}])), 1e-9)',
                    "{{cache}}",
                )
            ],
            "percentunit",
            "stat",
            w=6,
            h=5,
        ),
        panel(
            "Requests refused by limits",
            [q(f"sum by (limit) (rate(shunter_rate_limited_total[{RI}]))", "{{limit}}")],
            "reqps",
        ),
        panel(
            "Config reloads",
            [q("sum by (result) (increase(shunter_config_reloads_total[$__range]))", "{{result}}")],
            "short",
            "stat",
        ),
    ]
    return dashboard(
        "shunter-overview", "Shunter / Overview", panels, [var("policy", "shunter_requests_total", "policy")]
    )


def routing() -> dict:
    share = (
        f"sum by (policy, model) (rate(shunter_requests_total{{{P}}}[{RI}]))"
        f" / ignoring(model) group_left sum by (policy) (rate(shunter_requests_total{{{P}}}[{RI}]))"
    )
    cost = f"sum(increase(shunter_cost_usd_total{{{P}}}[$__range]))"
    saved = f"sum(increase(shunter_cost_saved_usd_total{{{P}}}[$__range]))"
    panels = [
        panel("Traffic share per model", [q(share, "{{policy}} → {{model}}")], "percentunit", w=12, stack=True),
        panel(
            "Decision reasons",
            [q(f"sum by (reason) (rate(shunter_requests_total{{{P}}}[{RI}]))", "{{reason}}")],
            "reqps",
            w=12,
        ),
        panel(
            "Cost per hour by model",
            [q(f"sum by (model) (rate(shunter_cost_usd_total{{{P}}}[{RI}])) * 3600", "{{model}}")],
            "currencyUSD",
            w=8,
        ),
        panel(
            "Cost saved per hour",
            [q(f"sum by (policy) (rate(shunter_cost_saved_usd_total{{{P}}}[{RI}])) * 3600", "{{policy}}")],
            "currencyUSD",
            w=8,
            desc="What always-the-reference-model would have cost, minus what was spent.",
        ),
        panel(
            "Savings vs reference model",
            [q(f"{saved} / clamp_min({saved} + {cost}, 1e-12)", "saved share")],
            "percentunit",
            "stat",
            w=8,
        ),
        panel(
            "Threshold in force",
            [q(f"shunter_policy_threshold{{{P}}}", "{{policy}} {{objective}}")],
            "short",
            w=8,
            desc="The objective value each policy routes with (threshold, cost weight or cost cap).",
        ),
        panel(
            "Fallbacks",
            [
                q(
                    f"sum by (policy, from_model, to_model) (rate(shunter_fallbacks_total{{{P}}}[{RI}]))",
                    "{{policy}}: {{from_model}} → {{to_model}}",
                )
            ],
            "reqps",
            w=8,
        ),
        panel(
            "Cascade escalations",
            [
                q(
                    f"sum by (policy, from_model, to_model) (rate(shunter_cascade_escalations_total{{{P}}}[{RI}]))",
                    "{{policy}}: {{from_model}} → {{to_model}}",
                )
            ],
            "reqps",
            w=8,
        ),
        panel("Routing decision time", quantiles("shunter_routing_decision_seconds", P, qs=(0.5, 0.99)), "s", w=8),
        panel("Embedding time (per batch)", quantiles("shunter_embedding_seconds", "", qs=(0.5, 0.99)), "s", w=8),
        panel(
            "Embedding batch size",
            [
                q(
                    f"sum(rate(shunter_embedding_batch_size_sum[{RI}])) / clamp_min(sum(rate(shunter_embedding_batch_size_count[{RI}])), 1e-9)",
                    "mean prompts per batch",
                )
            ],
            "short",
            w=8,
        ),
        panel(
            "Tokens per second",
            [q(f"sum by (model, kind) (rate(shunter_tokens_total[{RI}]))", "{{model}} {{kind}}")],
            "short",
            w=12,
        ),
        panel(
            "Semantic cache similarity (p50)",
            [
                q(
                    f"histogram_quantile(0.5, sum by (le, policy) (rate(shunter_cache_similarity_bucket{{{P}}}[{RI}])))",
                    "{{policy}}",
                )
            ],
            "percentunit",
            w=12,
        ),
    ]
    return dashboard(
        "shunter-routing", "Shunter / Routing", panels, [var("policy", "shunter_requests_total", "policy")]
    )


def upstreams() -> dict:
    panels = [
        panel(
            "Upstream latency (to headers)",
            quantiles("shunter_upstream_duration_seconds", U, by="upstream", qs=(0.5, 0.95)),
            "s",
        ),
        panel(
            "Upstream errors by class",
            [
                q(
                    f"sum by (upstream, error) (rate(shunter_upstream_errors_total{{{U}}}[{RI}]))",
                    "{{upstream}} {{error}}",
                )
            ],
            "reqps",
        ),
        panel(
            "Circuit state",
            [q(f"max by (upstream) (shunter_circuit_state{{{U}}})", "{{upstream}}")],
            "short",
            "state-timeline",
            desc="0 closed, 1 half-open, 2 open.",
        ),
        panel("Retries", [q(f"sum by (upstream) (rate(shunter_retries_total{{{U}}}[{RI}]))", "{{upstream}}")], "reqps"),
        panel(
            "In-flight requests",
            [q(f"sum by (upstream) (shunter_upstream_inflight_requests{{{U}}})", "{{upstream}}")],
            "short",
        ),
        panel(
            "Served requests by model",
            [q(f'sum by (model) (rate(shunter_requests_total{{model=~"$upstream"}}[{RI}]))', "{{model}}")],
            "reqps",
        ),
    ]
    return dashboard(
        "shunter-upstreams", "Shunter / Upstreams", panels, [var("upstream", "shunter_circuit_state", "upstream")]
    )


def wilson_lower(ok: str, n: str, z: float = 1.96) -> str:
    """PromQL of the Wilson score interval's lower bound for ``ok`` successes out of ``n``."""
    z2 = z * z
    n = f"clamp_min({n}, 1e-9)"
    p = f"(({ok}) / {n})"
    return (
        f"(({p} + {z2 / 2:.6g} / {n}) - {z:g} * sqrt({p} * (1 - {p}) / {n} + {z2 / 4:.6g} / ({n} * {n})))"
        f" / (1 + {z2:.6g} / {n})"
    )


def savings() -> list[dict]:
    """Net savings (issue 18, part 4) next to the judged quality against the reference model."""
    judged = f"increase(shunter_judged_vs_reference_total{{{P}}}[$__range])"
    ok = f'sum(increase(shunter_judged_vs_reference_total{{{P},result=~"better|tie"}}[$__range]))'
    quality = panel(
        "Judged quality vs reference (range)",
        [
            q(f"{ok} / clamp_min(sum({judged}), 1e-9)", "not worse than reference"),
            q(wilson_lower(ok, f"sum({judged})"), "95% Wilson lower bound"),
            q(f"sum({judged})", "judged requests"),
        ],
        "percentunit",
        "stat",
        w=12,
        desc="Shadow-sampled requests the reference model did not serve: share whose answer the judge found "
        "as good as or better than the reference's, with the 95% Wilson lower bound, and how many were judged.",
    )
    quality["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [{"id": "unit", "value": "short"}]}
    ]
    return [
        panel(
            "Net savings vs reference (USD)",
            [
                q(f"sum by (policy) (shunter_net_savings_usd{{{P}}})", "{{policy}} net"),
                q(f"sum by (policy) (shunter_cost_saved_usd_total{{{P}}})", "{{policy}} gross"),
            ],
            "currencyUSD",
            w=12,
            desc="Saved against the policy's reference model net of cascade stages, shadow and judge calls and "
            "routing CPU (SHUNTER_ROUTING_CPU_USD_PER_HOUR), since each gateway started; `shunter report` gives "
            "the same from the outcome store for any window. Gross is shunter_cost_saved_usd_total, which counts "
            "only requests that saved (a cascade that cost more than the reference counts 0 there, its loss here).",
        ),
        quality,
    ]


def learning() -> dict:
    panels = [
        *savings(),
        panel(
            "Outcomes recorded", [q(f"sum by (store) (rate(shunter_outcomes_written_total[{RI}]))", "{{store}}")], "ops"
        ),
        panel("Outcome queue depth", [q("sum(shunter_outcome_queue_depth)", "queued")], "short"),
        panel(
            "Outcomes dropped (range)",
            [q("sum by (store) (increase(shunter_outcomes_dropped_total[$__range]))", "{{store}}")],
            "short",
            "stat",
            w=8,
        ),
        panel(
            "Feedback per second",
            [q(f"sum by (source) (rate(shunter_feedback_total[{RI}]))", "{{source}}")],
            "ops",
            w=8,
        ),
        panel(
            "Feedback rate (per outcome)",
            [
                q(
                    f"sum(rate(shunter_feedback_total[{RI}])) / clamp_min(sum(rate(shunter_outcomes_written_total[{RI}])), 1e-9)",
                    "feedback / outcome",
                )
            ],
            "percentunit",
            w=8,
        ),
        panel(
            "Retrain results (range)",
            [
                q(
                    f"sum by (policy, decision) (increase(shunter_retrain_runs_total{{{P}}}[$__range]))",
                    "{{policy}} {{decision}}",
                )
            ],
            "short",
            "stat",
            w=12,
        ),
        panel(
            "Online-learning explorations",
            [q(f"sum by (policy) (rate(shunter_bandit_explorations_total{{{P}}}[{RI}]))", "{{policy}}")],
            "ops",
            w=12,
        ),
        panel(
            "Shadow and judge calls",
            [
                q(
                    f"sum by (model, result) (rate(shunter_shadow_calls_total{{{P}}}[{RI}]))",
                    "shadow {{model}} {{result}}",
                ),
                q(
                    f"sum by (judge, result) (rate(shunter_judge_calls_total{{{P}}}[{RI}]))",
                    "judge {{judge}} {{result}}",
                ),
            ],
            "ops",
            w=8,
            desc="Judged shadow sampling (learning.shadow): calls to models that did not serve, and judge calls.",
        ),
        panel(
            "Shadow + judge spend (range) and budget left",
            [
                q(f"sum by (kind) (increase(shunter_learning_cost_usd_total{{{P}}}[$__range]))", "{{kind}} USD"),
                q(f"min by (policy) (shunter_shadow_budget_remaining_usd{{{P}}})", "{{policy}} budget left today"),
            ],
            "currencyUSD",
            "stat",
            w=8,
        ),
        panel(
            "Judge order agreement",
            [
                q(
                    f'sum(rate(shunter_judge_order_agreement_total{{{P},agreed="true"}}[{RI}])) / '
                    f"clamp_min(sum(rate(shunter_judge_order_agreement_total{{{P}}}[{RI}])), 1e-9)",
                    "both orders agree",
                )
            ],
            "percentunit",
            w=8,
            desc="Share of judged pairs whose two orders (answers swapped) named the same winner.",
        ),
        panel(
            "Judge preferences per model pair (range)",
            [
                q(
                    f"sum by (model_a, model_b, winner) (increase(shunter_judge_preferences_total{{{P}}}[$__range]))",
                    "{{model_a}} vs {{model_b}}: {{winner}}",
                )
            ],
            "short",
            "stat",
            w=12,
        ),
        panel(
            "Shadow skipped, by reason",
            [q(f"sum by (reason) (rate(shunter_shadow_skipped_total{{{P}}}[{RI}]))", "{{reason}}")],
            "ops",
            w=12,
        ),
    ]
    return dashboard(
        "shunter-learning", "Shunter / Learning", panels, [var("policy", "shunter_requests_total", "policy")]
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for build in (overview, routing, upstreams, learning):
        d = build()
        name = d["uid"].removeprefix("shunter-")
        (OUT / f"{name}.json").write_text(json.dumps(d, indent=2) + "\n")
        print(f"wrote {OUT / name}.json ({len(d['panels'])} panels)")


if __name__ == "__main__":
    main()
