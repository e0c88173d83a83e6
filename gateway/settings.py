"""Process settings from the environment (``SHUNTER_*``); the policy file holds the rest."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHUNTER_")

    config: str = "config/default.yaml"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    encoder_threads: int = 1
    embed_max_batch: int = 32
    embed_max_wait_ms: float = 1.0
    # How a micro-batch splits into ONNX calls; None: the encoder's defaults (routers.encoder:
    # padding over 25% of the real tokens, or over 512 padded tokens per call; inf: never).
    embed_pad_slack: float | None = None
    embed_max_call_tokens: float | None = None
    embed_cache_size: int = 10_000
    watch: bool = True
