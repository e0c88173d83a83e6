"""The policy file model: pydantic is the single source of truth (``shunter config schema``).

A file has ``server`` settings, ``upstreams`` (one entry per served model at an endpoint) and
``policies`` (virtual models such as ``router-chat`` that choose among upstream models). An
upstream's section (``gateway.upstream.config``, breaker knobs in ``gateway.upstream.breaker``)
lives with the code that uses it; this module composes the whole file.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway import secrets
from gateway.state import RedisOptions
from gateway.upstream.config import Strict, Upstream


class RouterRef(Strict):
    family: str | None = Field(
        None, description="mf, cluster, cascade, cost, knn, random (read from router.json when omitted)."
    )
    path: str = Field(description="Router artifact folder (router.onnx + router.json), relative to the policy file.")
    model_map: dict[str, str] = Field(
        default_factory=dict, description="Candidate name -> model name inside the router (when they differ)."
    )
    strong: str | None = Field(None, description="Candidate treated as strong by a pair router.")
    weak: str | None = Field(None, description="Candidate treated as weak by a pair router.")
    fast_path: str | None = Field(
        None,
        description="Router for the fast encoder tier of a tiered policy (default: path, which must then "
        "be trained on both encoders' embeddings).",
    )


class Objective(Strict):
    """Exactly one of the four objectives."""

    threshold: float | None = Field(None, ge=0, le=1)
    cost_weight: float | None = Field(None, ge=0)
    target_strong_share: float | None = Field(None, ge=0, le=1)
    max_cost_per_request: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Objective:
        set_ = [k for k, v in self.model_dump().items() if v is not None]
        if len(set_) != 1:
            raise ValueError(
                "set exactly one of threshold, cost_weight, target_strong_share, max_cost_per_request"
                + (f" (got {', '.join(set_)})" if set_ else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.model_dump().items() if v is not None)

    @property
    def value(self) -> float:
        return float(getattr(self, self.kind))


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class _Target(Strict):
    """Where a matched rule or semantic route sends the request (and/or which reasoning effort)."""

    model: str | None = Field(
        None, description="Send to this upstream (it must pass the capability and context filters)."
    )
    policy: str | None = Field(None, description="Hand the request to another policy (its own rules and router apply).")
    reasoning_effort: ReasoningEffort | None = Field(
        None, description="reasoning_effort sent to the chosen model when it has the 'reasoning' capability."
    )

    @model_validator(mode="after")
    def _target(self) -> _Target:
        if self.model and self.policy:
            raise ValueError("set model or policy, not both")
        if not (self.model or self.policy or self.reasoning_effort):
            raise ValueError("set model, policy or reasoning_effort")
        return self


class Rule(_Target):
    """A hand-written rule, evaluated before semantic routes and the learned router.

    Every condition given must hold (AND); a rule needs at least one condition.
    """

    name: str = Field(min_length=1)
    regex: str | None = Field(
        None, description="Python regular expression searched in the prompt text, e.g. '(?i)\\bSELECT\\b'."
    )
    keywords: list[str] = Field(
        default_factory=list, description="Any of these words or phrases (case-insensitive, whole words)."
    )
    header: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Request header name -> value (or list of values); names are case-insensitive.",
    )
    metadata: dict[str, str | int | float | bool | list[str]] = Field(
        default_factory=dict, description="Request 'metadata' key -> value (or list of values)."
    )
    min_tokens: int | None = Field(None, ge=0, description="Prompt (all messages) has at least this many tokens.")
    max_tokens: int | None = Field(None, ge=0, description="Prompt (all messages) has at most this many tokens.")

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _conditions(self) -> Rule:
        if not (
            self.regex
            or self.keywords
            or self.header
            or self.metadata
            or self.min_tokens is not None
            or self.max_tokens is not None
        ):
            raise ValueError(
                "a rule needs at least one condition: regex, keywords, header, metadata, min_tokens or max_tokens"
            )
        return self


class SemanticRoute(_Target):
    """A route matched by embedding similarity (same encoder as the routers) to example utterances."""

    name: str = Field(min_length=1)
    description: str | None = None
    utterances: list[str] = Field(min_length=1, description="Example prompts for this route.")
    threshold: float = Field(0.5, ge=-1, le=1, description="Least cosine similarity to the closest utterance.")


class ReasoningRule(Strict):
    """Set reasoning_effort (and optionally switch to a reasoning model) from the router's scores."""

    effort: ReasoningEffort
    model: str | None = Field(None, description="Switch to this upstream (a reasoning model) when the rule holds.")
    min_strong_win: float | None = Field(None, ge=0, le=1, description="Pair routers: P(strong wins) at least this.")
    max_quality: float | None = Field(
        None, ge=0, le=1, description="The best candidate's predicted quality is at most this (a hard prompt)."
    )

    @model_validator(mode="after")
    def _cond(self) -> ReasoningRule:
        if self.min_strong_win is None and self.max_quality is None:
            raise ValueError("set min_strong_win or max_quality")
        return self


class Sticky(Strict):
    """Keep a conversation on the model it started with."""

    ttl: float = Field(1800.0, gt=0, description="Seconds a session stays on its model after its last request.")
    key: Literal["any", "header", "user"] = Field(
        "any",
        description="header: x-shunter-session (or extra_body shunter.session); user: the 'user' field; any: header first, then user.",
    )


class Online(Strict):
    """Opt-in online learning: a bandit over (cluster x model) fed by /v1/feedback (gateway.learning.online)."""

    mode: Literal["epsilon_greedy", "thompson"] = "thompson"
    explore: float = Field(0.05, ge=0, le=0.5, description="Most share of this policy's traffic that may explore.")
    cost_weight: float | None = Field(
        None, ge=0, description="Choose by quality - cost_weight*cost/max_cost (else the policy objective)."
    )
    prior_strength: float = Field(20.0, gt=0, description="Pseudo-observations given to the router's prediction.")
    clusters: str | None = Field(
        None, description="Centroids: a cluster router folder or a .npy file, relative to the policy file."
    )


class Shadow(Strict):
    """Judged shadow sampling (gateway.learning.shadow): off the request path, budgeted."""

    rate: float = Field(gt=0, le=1, description="Share of eligible requests sampled (exactly floor(n * rate) of n).")
    budget_usd_per_day: float = Field(gt=0, description="Hard cap on shadow + judge spend per UTC day (all replicas).")
    judge: str = Field(description="Upstream that judges (MT-Bench pairwise prompt, both orders).")
    compare: list[str] = Field(
        default_factory=list, description="Models compared with the served one (default: the policy's candidates)."
    )
    max_tokens: int = Field(1024, ge=1, description="max_tokens of a shadow call (bounds its cost).")
    judge_max_tokens: int = Field(512, ge=16, description="max_tokens of a judge call.")


class Learning(Strict):
    """Learning from this policy's own traffic (docs/learning.md)."""

    shadow: Shadow | None = Field(None, description="Judged shadow sampling; off when omitted.")


class ResponseCache(Strict):
    """Opt-in response cache (gateway.cache): exact match, plus semantic match when ``semantic``."""

    ttl: float = Field(300.0, gt=0, description="Seconds a cached response stays valid.")
    semantic: bool = Field(False, description="Also serve a cached answer to a prompt whose embedding is close enough.")
    similarity: float = Field(0.95, gt=0, le=1, description="Least cosine similarity for a semantic hit.")
    max_entries: int = Field(256, ge=1, le=4096, description="Semantic index size per policy and parameter set.")


class Cascade(Strict):
    """FrugalGPT runtime cascade: call the cheapest candidate, check its answer, escalate if weak."""

    checker: str = Field(description="Answer-check artifact folder (kind 'answer-check').")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Escalate when P(answer correct) is below this (default: the checker's)."
    )
    order: list[str] | None = Field(
        None, description="Candidates from first tried to last (default: by expected cost, cheapest first)."
    )


class Policy(Strict):
    description: str | None = None
    aliases: list[str] = Field(default_factory=list)
    candidates: list[str] = Field(min_length=2, description="Upstream names this policy may choose from.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Upstreams tried, in order, after every candidate failed or was unavailable.",
    )
    router: RouterRef | None = None
    objective: Objective = Field(default_factory=lambda: Objective(threshold=0.5))
    reference_model: str | None = Field(None, description="The always-strong model cost savings are measured against.")
    embed: Literal["last_user", "all_user", "system_last_user"] = "last_user"
    encoder: Literal["auto", "fast", "accurate", "tiered"] = Field(
        "auto",
        description="Encoder tier for the router: fast (static table, ~0.05 ms), accurate (MiniLM, ~6 ms), "
        "tiered (fast first, MiniLM when the decision margin is below encoder_band); auto: tiered when the "
        "router accepts both encoders, else the one it was trained on.",
    )
    encoder_band: float = Field(
        0.05,
        ge=0,
        le=1,
        description="tiered: re-score with MiniLM when the fast tier's decision margin is below this. For a "
        "threshold on strong_win it is in the router's calibration percentiles (0.05: prompts within 5 percentile "
        "points either side of the threshold, 10% of the calibration mix; 2-10% of real prompts measured); "
        "otherwise the chosen model's utility or quality lead.",
    )
    allow_overrides: bool = True
    threshold_range: tuple[float, float] = (0.0, 1.0)
    cost_weight_range: tuple[float, float] = (0.0, 100.0)
    store_prompts: bool = False
    online: Online | None = Field(None, description="Learn online from feedback (bandit); off by default.")
    learning: Learning | None = Field(None, description="Judged shadow sampling; off when omitted.")
    rules: list[Rule] = Field(
        default_factory=list, description="Evaluated in order before semantic routes and the router; first match wins."
    )
    semantic_routes: list[SemanticRoute] = Field(
        default_factory=list, description="Best-matching route above its threshold wins."
    )
    reasoning: list[ReasoningRule] = Field(
        default_factory=list, description="First rule that holds sets reasoning_effort."
    )
    sticky: Sticky | None = Field(None, description="Session stickiness; off when omitted.")
    max_prompt_tokens: int | None = Field(None, ge=1, description="Refuse prompts longer than this (400).")
    cache: ResponseCache | None = Field(
        None, description="Response cache (exact, optionally semantic); off when omitted."
    )
    cascade: Cascade | None = Field(None, description="Runtime answer-check-then-escalate cascade; off when omitted.")

    @field_validator("candidates")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({c for c in v if v.count(c) > 1})
        if dup:
            raise ValueError(f"duplicate candidates: {', '.join(dup)}")
        return v

    @field_validator("rules", "semantic_routes")
    @classmethod
    def _unique_names(cls, v: list) -> list:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate names: {', '.join(dup)}")
        return v


class Server(Strict):
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_messages: int = Field(512, ge=1)
    outcomes_path: str = Field("var/outcomes.sqlite", description="SQLite outcome store (embedded default).")
    outcome_queue_size: int = Field(10_000, ge=1)
    redis_url: str | None = Field(None, description="Shared state and outcome stream; 'os.environ/VAR' allowed.")
    outcome_stream_maxlen: int = Field(1_000_000, ge=1000, description="Redis outcome stream length (XADD MAXLEN ~).")
    redis: RedisOptions = Field(
        default_factory=RedisOptions, description="Redis timeouts and the failure policy while Redis is down."
    )
    admin_key: str | None = Field("os.environ/SHUNTER_ADMIN_KEY", description="Admin key reference.")
    allow_passthrough: bool = Field(True, description="A concrete upstream model name bypasses routing.")
    default_policy: str | None = Field(None, description="Policy used when the model is 'router' or 'auto'.")
    auth: bool = Field(False, description="Require a virtual key (Bearer) on every /v1 request; see docs/security.md.")
    metrics_auth: bool = Field(False, description="Require the admin key on /metrics.")
    public_docs: bool = Field(False, description="Serve /docs and /openapi.json without a key even when auth is on.")
    request_timeout: float = Field(
        600.0, gt=0, description="Seconds a /v1 request may take in all, body upload and stream included."
    )
    responses_store_size: int = Field(
        10_000, ge=1, description="Most stored /v1/responses conversations (previous_response_id); oldest go first."
    )
    responses_store_ttl: float = Field(
        86_400.0, gt=0, description="Seconds a stored /v1/responses conversation can be continued."
    )

    @field_validator("admin_key")
    @classmethod
    def _admin_ref(cls, v: str | None) -> str | None:
        return secrets.require_ref(v, "SHUNTER_ADMIN_KEY")


class Config(Strict):
    server: Server = Field(default_factory=Server)
    upstreams: dict[str, Upstream] = Field(min_length=1)
    policies: dict[str, Policy] = Field(default_factory=dict)
