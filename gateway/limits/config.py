"""Policy-file settings for the reliability features (imported by ``gateway.policy.schema``).

Kept here, free of other gateway imports, so the schema stays the single source of truth while
the breaker and retry-budget knobs live next to the code that uses them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BreakerConfig(BaseModel):
    """Circuit breaker per upstream: opens on consecutive failures or an error rate over a window."""

    model_config = ConfigDict(extra="forbid")
    consecutive_failures: int = Field(5, ge=1, description="Open after this many failures in a row.")
    error_rate: float = Field(0.5, gt=0, le=1, description="Open when this share of calls in the window failed...")
    min_calls: int = Field(20, ge=1, description="...and the window holds at least this many calls.")
    window: float = Field(10.0, gt=0, description="Seconds of history the error rate is computed over.")
    open_for: float = Field(10.0, gt=0, description="Seconds an open circuit waits before one half-open probe.")


class RetryBudgetConfig(BaseModel):
    """Envoy-style retry budget per upstream: retries may be at most ``ratio`` of recent calls."""

    model_config = ConfigDict(extra="forbid")
    ratio: float = Field(0.2, ge=0, le=1, description="Retries allowed as a share of first attempts in the window.")
    min_retries: int = Field(3, ge=0, description="Retries always allowed in a window, so low traffic can retry.")
    window: float = Field(10.0, gt=0, description="Seconds of history the budget counts.")


FailureMode = Literal["fail_open", "fail_closed"]


class RedisFailure(BaseModel):
    """What a limit does while Redis cannot be reached (``fail_open``: let the request through
    uncounted; ``fail_closed``: answer 503 with ``Retry-After``)."""

    model_config = ConfigDict(extra="forbid")
    rpm: FailureMode = Field("fail_open", description="Requests-per-minute limits.")
    tpm: FailureMode = Field("fail_open", description="Tokens-per-minute limits.")
    budget: FailureMode = Field("fail_closed", description="USD budgets (spend cannot be checked).")


class RedisOptions(BaseModel):
    """How the gateway talks to Redis (``server.redis_url``) and what it does while Redis is away."""

    model_config = ConfigDict(extra="forbid")
    socket_timeout: float = Field(0.5, gt=0, description="Seconds a Redis command may take before it counts as failed.")
    connect_timeout: float = Field(0.5, gt=0, description="Seconds to open a connection to Redis.")
    health_check_interval: float = Field(
        5.0, ge=0, description="A pooled connection idle this long is checked (PING) before use; 0: never."
    )
    down_for: float = Field(
        1.0,
        gt=0,
        description="After a failure, Redis counts as down for this long: calls fail at once, then one probe.",
    )
    retry_after: int = Field(2, ge=1, description="Retry-After seconds on a 503 while Redis is down.")
    on_failure: RedisFailure = Field(default_factory=RedisFailure)
    spill_path: str | None = Field(
        None,
        description="Local SQLite file that keeps outcome records while Redis is down, replayed when it returns; "
        "default: <server.outcomes_path>-spill.sqlite beside the outcome file.",
    )
    replay_every: float = Field(1.0, gt=0, description="Seconds between two attempts to replay spilled records.")
