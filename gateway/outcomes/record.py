"""The outcome record: what the gateway decided for one request and what happened."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Outcome(BaseModel):
    request_id: str
    ts: float = Field(description="Unix time the request arrived.")
    endpoint: str = "chat"
    policy: str | None = None
    key_id: str | None = None
    candidates: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    strong_win: float | None = None
    chosen: str | None = Field(None, description="The model the decision picked first.")
    served: str | None = Field(None, description="The model that actually answered.")
    reason: str = Field(
        "router",
        description="router, rule, semantic, sticky, passthrough, fallback, cascade, static, online, explore",
    )
    detail: str | None = None
    router: str | None = None
    encoder_tier: str | None = Field(None, description="fast or accurate: the encoder tier the router decided on.")
    status: int = 200
    latency_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    reference_cost_usd: float | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    stream: bool = False
    embedding: bytes | None = Field(
        None,
        description="float16 prompt embedding, raw bytes, from the encoder tier that decided (encoder_tier; "
        "both tiers embed into MiniLM's 384-d space).",
    )
    prompt: str | None = Field(None, description="Kept only when the policy sets store_prompts: true.")
    escalations: int = Field(0, description="Runtime cascade escalations (each stage was a paid call).")
    extra_cost_usd: float | None = Field(None, description="Cost of earlier cascade stages, included in cost_usd.")
    route_cpu_s: float | None = Field(
        None, description="CPU seconds of the decide stage on the request's thread (time.thread_time)."
    )


class Feedback(BaseModel):
    """One feedback item, joined to an outcome by ``request_id``; unique per (request_id, source)."""

    request_id: str
    source: str = "user"
    score: float = Field(ge=0, le=1)
    label: str | None = None
    comment: str | None = None
    ts: float


class Spend(BaseModel):
    """One learning call (shadow or judge) made for a request, off its path; joined by ``request_id``."""

    request_id: str
    policy: str
    kind: str = Field(description="shadow or judge")
    model: str
    cost_usd: float
    ts: float


class Labelled(BaseModel):
    """An outcome with the mean of its feedback scores (the training view)."""

    outcome: Outcome
    score: float
    n_feedback: int = 1
