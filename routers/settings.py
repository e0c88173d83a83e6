"""Environment settings the ``routers`` package reads (``SHUNTER_*``), typed, in one place.

``gateway.settings.Settings`` extends this class, so the gateway's one settings object (and the
table in ``docs/configuration.md`` generated from it) covers these variables too, while
``routers`` never imports ``gateway``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHUNTER_", extra="ignore")

    encoder_threads: int = Field(
        1,
        ge=1,
        description="onnxruntime intra-op threads of the sentence encoder (1 leaves a core for the event loop).",
    )
    execution_providers: str = Field(
        "cpu",
        description="onnxruntime execution providers for the encoder and routers, in order of preference, "
        "comma-separated: cuda, tensorrt, rocm, migraphx, openvino, coreml, directml, cpu. CPU is always "
        "appended; one that is missing or fails to start is logged and skipped.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Embedding cache for training and evaluation, and where the encoder graph is built when "
        "the package folder is read-only. Default: `~/.cache/shunter`.",
    )
    data_dir: Path | None = Field(
        None, description="The shared outcome data read by training and evaluation. Default: `../shared/data`."
    )

    def cache_root(self) -> Path:
        return self.cache_dir or Path.home() / ".cache" / "shunter"

    def data_root(self) -> Path:
        return self.data_dir or REPO_ROOT.parent / "shared" / "data"
