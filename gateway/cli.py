"""The ``shunter`` command line (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Shunter: an OpenAI-compatible LLM routing gateway.", no_args_is_help=True)
config_app = typer.Typer(help="Validate policy files and emit their JSON Schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def serve(
    config: Path = typer.Option(
        Path("config/default.yaml"),
        "--config",
        "-c",
        envvar="SHUNTER_CONFIG",
        help="Policy file (default: config/default.yaml here, else the copy shipped in the package).",
    ),
    host: str = typer.Option("127.0.0.1", envvar="SHUNTER_HOST"),
    port: int = typer.Option(8080, envvar="SHUNTER_PORT"),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
    log_level: str = typer.Option("info"),
    watch: bool = typer.Option(True, help="Reload the policy file when it changes."),
) -> None:
    """Run the gateway."""
    import os

    import uvicorn

    from gateway.policy.loader import ConfigError, find_config, load_config

    if (found := find_config(config)) != config:
        typer.echo(f"{config} not found here; using the packaged default {found}", err=True)
        config = found
    try:
        load_config(config)
    except ConfigError as exc:
        typer.echo(f"invalid policy file:\n{exc}", err=True)
        raise typer.Exit(2) from None
    os.environ["SHUNTER_CONFIG"] = str(config)
    os.environ["SHUNTER_WATCH"] = "1" if watch else "0"
    from gateway import promdir

    cleanup = promdir.prepare(workers)  # before any worker imports gateway.metrics
    try:
        _run_uvicorn(uvicorn, host, port, workers, log_level)
    finally:
        cleanup()


def _run_uvicorn(uvicorn, host: str, port: int, workers: int, log_level: str) -> None:
    uvicorn.run(
        "gateway.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=30,
        access_log=False,
    )


@config_app.command("check")
def config_check(files: list[Path] = typer.Argument(..., help="Policy files to validate.")) -> None:
    """Validate policy files offline; errors name the file, line, column and field."""
    from gateway.policy.loader import ConfigError, load_config

    bad = 0
    for f in files:
        try:
            cfg = load_config(f)
        except ConfigError as exc:
            bad += 1
            typer.echo(str(exc), err=True)
            continue
        typer.echo(f"{f}: ok ({_count(len(cfg.upstreams), 'upstream')}, {_count(len(cfg.policies), 'policy')})")
    raise typer.Exit(1 if bad else 0)


def _count(n: int, noun: str) -> str:
    """``1 policy``, ``2 policies``, ``1 upstream``, ``3 upstreams``."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


@config_app.command("schema")
def config_schema(out: Path | None = typer.Option(None, "--out", "-o")) -> None:
    """Print (or write) the policy file's JSON Schema."""
    from gateway.policy.schema import Config

    text = json.dumps(Config.model_json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)


try:  # training-side commands (train, score, eval, calibrate, profile) live with the routers
    from routers import cli as _routers_cli

    _routers_cli.register(app)
except ImportError:  # pragma: no cover - routers.cli not present
    pass

from gateway.limits.cli import register as _register_keys  # noqa: E402  (shunter keys ...)

_register_keys(app)

from gateway.policy.cli import register as _register_routes  # noqa: E402  (shunter routes fit)

_register_routes(app)

from gateway.learning.cli import register as _register_learning  # noqa: E402  (shunter retrain, outcomes pull)

_register_learning(app)
