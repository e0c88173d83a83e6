"""Prometheus metrics: names follow Prometheus conventions (``shunter_`` prefix, base units).

Labels are bounded: policy, model, upstream, status class, reason, error class. Never request ids
or prompts. With several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` before import; the
``/metrics`` endpoint then aggregates with ``MultiProcessCollector``.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import values as _values

from gateway import retrain_reports as _retrain_reports

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Multiprocess mode is what prometheus-client chose when it was imported (PROMETHEUS_MULTIPROC_DIR set).
_MP = _values.ValueClass is not _values.MutexValue

REQUESTS = Counter(
    "shunter_requests_total",
    "Requests handled, by policy, served model, HTTP status class and decision reason.",
    ["policy", "model", "status", "reason"],
)
REQUEST_DURATION = Histogram(
    "shunter_request_duration_seconds",
    "End-to-end request duration as seen by the gateway.",
    ["policy", "model"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "shunter_time_to_first_token_seconds",
    "Time from request arrival to the first streamed byte sent to the client.",
    ["policy", "model"],
    buckets=_LATENCY_BUCKETS,
)
ROUTING_DURATION = Histogram(
    "shunter_routing_decision_seconds",
    "Time to decide a model (rules, embedding, router scoring, choice).",
    ["policy"],
    buckets=_FAST_BUCKETS,
)
ENCODER_TIER = Counter(
    "shunter_encoder_tier_total",
    "Learned decisions by the encoder tier that made them (fast: static table; accurate: MiniLM).",
    ["policy", "tier"],
)
EMBEDDING_DURATION = Histogram(
    "shunter_embedding_seconds",
    "Time for one ONNX encoder batch.",
    buckets=_FAST_BUCKETS,
)
EMBEDDING_BATCH = Histogram(
    "shunter_embedding_batch_size",
    "Prompts per ONNX encoder call (micro-batching).",
    buckets=_BATCH_BUCKETS,
)
CACHE = Counter(
    "shunter_cache_requests_total",
    "Cache lookups by cache (embedding, response) and result (hit, miss).",
    ["cache", "result"],
)
UPSTREAM_ERRORS = Counter(
    "shunter_upstream_errors_total",
    "Upstream failures by upstream and class (connect, timeout, status_429, status_5xx, midstream).",
    ["upstream", "error"],
)
UPSTREAM_DURATION = Histogram(
    "shunter_upstream_duration_seconds",
    "Upstream call duration until the response headers arrive.",
    ["upstream"],
    buckets=_LATENCY_BUCKETS,
)
RETRIES = Counter("shunter_retries_total", "Retries of an upstream call before the first byte.", ["upstream"])
FALLBACKS = Counter(
    "shunter_fallbacks_total", "Fallbacks from one candidate to the next.", ["policy", "from_model", "to_model"]
)
ESCALATIONS = Counter(
    "shunter_cascade_escalations_total", "Runtime cascade escalations.", ["policy", "from_model", "to_model"]
)
TOKENS = Counter("shunter_tokens_total", "Tokens by model and kind (prompt, completion).", ["model", "kind"])
COST = Counter("shunter_cost_usd_total", "Spend in USD by policy and model, from the price table.", ["policy", "model"])
COST_SAVED = Counter(
    "shunter_cost_saved_usd_total",
    "USD saved against always sending the request to the policy's reference model.",
    ["policy"],
)
ROUTING_CPU = Counter(
    "shunter_routing_cpu_seconds_total",
    "CPU seconds the gateway spent deciding (the decide stage, per request thread).",
    ["policy"],
)
NET_SAVINGS = Gauge(
    "shunter_net_savings_usd",
    "USD saved against the reference model net of cascade stages, shadow and judge calls and routing CPU "
    "(at SHUNTER_ROUTING_CPU_USD_PER_HOUR), summed since the gateway started; can be negative.",
    ["policy"],
    multiprocess_mode="sum",
)
JUDGED_VS_REFERENCE = Counter(
    "shunter_judged_vs_reference",
    "Shadow-sampled requests the reference model did not serve, by the judge's verdict on the served answer "
    "against the reference's (both orders averaged): better, tie or worse.",
    ["policy", "result"],
)
INFLIGHT = Gauge(
    "shunter_upstream_inflight_requests",
    "Requests in flight per upstream.",
    ["upstream"],
    multiprocess_mode="livesum",
)
CIRCUIT_STATE = Gauge(
    "shunter_circuit_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    multiprocess_mode="livemax",  # open if any live worker sees it open; dead workers drop out
)
OUTCOME_QUEUE_DEPTH = Gauge(
    "shunter_outcome_queue_depth", "Outcome records waiting to be written.", multiprocess_mode="livesum"
)
OUTCOMES_WRITTEN = Counter("shunter_outcomes_written_total", "Outcome records written to the store.", ["store"])
OUTCOMES_DROPPED = Counter(
    "shunter_outcomes_dropped_total",
    "Outcome records lost: the queue was full, or neither the store nor the local spill file took them.",
    ["store"],
)
OUTCOMES_SPILLED = Counter(
    "shunter_outcomes_spilled_total", "Outcome records kept in the local spill file while Redis was down."
)
OUTCOMES_REPLAYED = Counter(
    "shunter_outcomes_replayed_total", "Spilled outcome records replayed into the store once Redis returned."
)
SHARED_STATE_UP = Gauge(
    "shunter_redis_up",
    "1 while Redis (shared state) answers, 0 while it counts as down.",
    multiprocess_mode="livemin",
)
SHARED_STATE_ERRORS = Counter("shunter_redis_errors_total", "Redis commands that failed (timeout, connection).")
SHARED_STATE_DEGRADED = Counter(
    "shunter_redis_degraded_total",
    "Cache, stickiness, bandit or breaker-sync reads and writes skipped while Redis was down.",
)
REDIS_FAILURE_POLICY = Counter(
    "shunter_redis_failure_policy_total",
    "Limit checks decided by server.redis.on_failure while Redis was down, by limit and action.",
    ["limit", "action"],
)
FEEDBACK = Counter("shunter_feedback_total", "Feedback items received, by source.", ["source"])
CONFIG_RELOADS = Counter(
    "shunter_config_reloads_total", "Policy file reload attempts by result (success, rejected).", ["result"]
)
THRESHOLD = Gauge(
    "shunter_policy_threshold",
    "Objective value in force per policy (threshold, cost weight or cost cap).",
    ["policy", "objective"],
    multiprocess_mode="livemostrecent",  # the value set by the latest (re)load
)
# shunter_retrain_runs_total{policy, decision}: counted from the retrain reports on disk at
# scrape time (retrains run outside the gateway); see gateway/retrain_reports.py.
RETRAINS = _retrain_reports.COLLECTOR
REGISTRY.register(RETRAINS)
RATE_LIMITED = Counter("shunter_rate_limited_total", "Requests refused by limits, by limit kind.", ["limit"])
BANDIT_EXPLORATIONS = Counter("shunter_bandit_explorations_total", "Online-learning exploration picks.", ["policy"])
SHADOW_CALLS = Counter(
    "shunter_shadow_calls_total",
    "Shadow calls to a model that did not serve, by policy, model and result (ok, budget, errors).",
    ["policy", "model", "result"],
)
JUDGE_CALLS = Counter(
    "shunter_judge_calls_total",
    "LLM-judge calls by policy, judge and result (ok, unparsed, budget, errors).",
    ["policy", "judge", "result"],
)
SHADOW_SKIPPED = Counter(
    "shunter_shadow_skipped_total",
    "Finished requests not shadowed, by policy and reason (not_sampled, tools, opt_out, ...).",
    ["policy", "reason"],
)
LEARNING_COST = Counter(
    "shunter_learning_cost_usd_total",
    "USD spent on learning by policy and kind (shadow calls, judge calls).",
    ["policy", "kind"],
)
JUDGE_AGREEMENT = Counter(
    "shunter_judge_order_agreement_total",
    "Judged pairs whose two orders named the same winner (agreed=true) or not.",
    ["policy", "agreed"],
)
JUDGE_PREFERENCES = Counter(
    "shunter_judge_preferences_total",
    "Judge preferences per model pair (model_a < model_b by name) and winner (a, b, tie).",
    ["policy", "model_a", "model_b", "winner"],
)
SHADOW_BUDGET_REMAINING = Gauge(
    "shunter_shadow_budget_remaining_usd",
    "Today's (UTC) shadow + judge budget left per policy.",
    ["policy"],
    multiprocess_mode="livemin",
)

CACHE_SIMILARITY = Histogram(
    "shunter_cache_similarity",
    "Cosine similarity of the best semantic response-cache candidate, per policy.",
    ["policy"],
    buckets=(0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0),
)


def prime(rt) -> None:
    """Create the bounded, known label sets at zero so dashboards show 0 rather than no data.

    Called whenever a runtime is built (start and reload): one child per upstream and policy.
    """
    for name, client in rt.clients.items():
        breaker = getattr(client, "breaker", None)
        CIRCUIT_STATE.labels(name).set(getattr(breaker, "state", 0))
        INFLIGHT.labels(name).inc(0)
        RETRIES.labels(name).inc(0)
    for name in rt.policies:
        COST_SAVED.labels(name).inc(0)
        NET_SAVINGS.labels(name).inc(0)
        for result in ("better", "tie", "worse"):
            JUDGED_VS_REFERENCE.labels(name, result).inc(0)
        ROUTING_CPU.labels(name).inc(0)
        BANDIT_EXPLORATIONS.labels(name).inc(0)
        RETRAINS.policies.add(name)
    for result in ("success", "rejected"):
        CONFIG_RELOADS.labels(result).inc(0)
    for limit in ("rpm", "tpm", "budget", "retry_budget"):
        RATE_LIMITED.labels(limit).inc(0)
    for cache in ("response",) + (("embedding",) if getattr(rt, "embedder", None) is not None else ()):
        for result in ("hit", "miss"):
            CACHE.labels(cache, result).inc(0)


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode); a no-op otherwise."""
    if _MP:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` (aggregated across workers in multiprocess mode)."""
    if _MP:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(RETRAINS)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
