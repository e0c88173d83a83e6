"""Policy-file settings for the reliability features (imported by ``gateway.policy.schema``).

Kept here, free of other gateway imports, so the schema stays the single source of truth while
the breaker and retry-budget knobs live next to the code that uses them.
"""

from __future__ import annotations

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
