"""Process settings: every environment variable the gateway reads, typed, in one object.

Variables carry the ``SHUNTER_`` prefix (``encoder_threads`` is ``SHUNTER_ENCODER_THREADS``);
the one exception is ``PROMETHEUS_MULTIPROC_DIR``, prometheus-client's own name. The policy file
holds everything else; its ``os.environ/NAME`` references are resolved by
``gateway.secrets.resolve``. The table in ``docs/configuration.md`` is generated from
this class (``python -m gateway.settings docs/configuration.md`` rewrites it);
``tests/gateway/test_settings.py`` keeps the two equal.

The fields of ``routers.settings.RouterSettings`` (encoder threads, cache and data folders) are
inherited, so ``routers`` reads its own variables without importing ``gateway``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from routers.settings import RouterSettings

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(RouterSettings):
    model_config = SettingsConfigDict(env_prefix="SHUNTER_", extra="ignore")

    config: Path = Field(Path("config/default.yaml"), description="The policy file (`shunter serve --config`).")
    host: str = Field("127.0.0.1", description="Address `shunter serve` listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port `shunter serve` listens on.")
    workers: int = Field(1, ge=1, description="uvicorn worker processes of `shunter serve`.")
    log_level: LogLevel = Field(
        "info", description="Level of the gateway's own loggers (`shunter.*`) and of uvicorn's (`shunter serve`)."
    )
    watch: bool = Field(
        True, description="Reload the policy file when it changes (SIGHUP and POST /admin/reload always work)."
    )
    embed_max_batch: int = Field(32, ge=1, description="Most prompts the encoder embeds in one micro-batch.")
    embed_max_wait_ms: float = Field(
        1.0, ge=0, description="Milliseconds a micro-batch waits for more prompts after the first one."
    )
    embed_pad_slack: float | None = Field(
        None,
        ge=0,
        description="A micro-batch is split into several ONNX calls where padding to its longest prompt would "
        "add more than this share of the real tokens; unset: the encoder's default (0.25), `inf`: never.",
    )
    embed_max_call_tokens: float | None = Field(
        None,
        gt=0,
        description="Most padded tokens in one ONNX call; unset: the encoder's default (512), `inf`: no limit.",
    )
    embed_cache_size: int = Field(10_000, ge=0, description="Prompt embeddings kept in memory (LRU; 0: none).")
    bandit_cache_s: float = Field(
        0.5,
        ge=0,
        description="Seconds a replica reuses the online bandit's arms it read (0: read on every decision, "
        "for deterministic simulations).",
    )
    bandit_seed: int | None = Field(
        None, description="Seed of the online bandit's sampler (repeatable simulations); unset in production."
    )
    retrain_dir: Path = Field(
        Path("var/routers"),
        description="Where `shunter retrain` writes `<policy>/<version>/` (its `--out` default) and where "
        "`/metrics` counts retrain reports (`shunter_retrain_runs_total`).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis that `shunter outcomes pull` reads (its `--redis` default); the gateway itself "
        "uses the policy file's `server.redis_url`.",
    )
    routing_cpu_usd_per_hour: float = Field(
        0.04,
        ge=0,
        description="USD one CPU-hour of the gateway costs; `shunter report` and `shunter_net_savings_usd` "
        "take the routing CPU off the savings at this price (default: about one cloud vCPU on demand).",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds from a connection's opening (or the next request's first byte) until its headers "
        "are complete; past it the gateway answers 408 and closes (slow clients, gateway/httpguard.py).",
    )
    keep_alive_timeout: int = Field(5, ge=1, description="Seconds an idle kept-alive connection stays open.")
    max_connections: int = Field(
        2048, ge=1, description="Open connections per worker process; one more is answered 503 and closed."
    )
    prometheus_multiproc_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus-client's multiprocess folder (no `SHUNTER_` prefix). `shunter serve --workers N` "
        "makes a temporary one when unset; a folder given here is emptied of old files on start.",
    )


def env_name(field: str) -> str:
    """The environment variable a field is read from."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"SHUNTER_{field.upper()}"


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args:  # X | None
        return " \\| ".join(_type_name(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any) -> str:
    return "unset" if value is None else f"`{value}`"


def markdown_table() -> str:
    """The table of environment variables in ``docs/configuration.md``."""
    rows = ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        meaning = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {_type_name(info.annotation)} | {_default(info.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- settings table: generated by python -m gateway.settings -->", "<!-- end of settings table -->"


def with_table(doc: str) -> str:
    """``doc`` with the text between the two markers replaced by the current table."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the document needs the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{markdown_table()}{END}{tail}"


def main(argv: list[str]) -> int:
    """``python -m gateway.settings [DOC]``: print the table, or rewrite it inside DOC."""
    if not argv:
        sys.stdout.write(markdown_table())
        return 0
    path = Path(argv[0])
    path.write_text(with_table(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
