"""The ``shunter`` command line (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup


def _hide_flag_types(cmd: Any, parent: typer.Context | None = None) -> None:
    """Leave the value type off flags in ``--help``: typer's rich help prints ``<bool>`` on each.

    A flag (``--json``, ``--watch/--no-watch``, ``--help``) takes no value, so an empty metavar
    is what it shows. Walks every subcommand, since sub-apps (``keys``, ``config``) build their own.
    """
    ctx = typer.Context(cmd, parent=parent, info_name=cmd.name)
    for param in [*cmd.params, cmd.get_help_option(ctx)]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _hide_flag_types(sub, ctx)


class _Group(TyperGroup):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        _hide_flag_types(self)
        return super().main(*args, **kwargs)


app = typer.Typer(help="Shunter: an OpenAI-compatible LLM routing gateway.", no_args_is_help=True, cls=_Group)
config_app = typer.Typer(help="Validate policy files and emit their JSON Schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def serve(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Policy file [SHUNTER_CONFIG]; default config/default.yaml here, else the copy shipped in the package.",
    ),
    host: str | None = typer.Option(None, help="Listen address [SHUNTER_HOST]."),
    port: int | None = typer.Option(None, help="Listen port [SHUNTER_PORT]."),
    workers: int | None = typer.Option(None, help="uvicorn worker processes [SHUNTER_WORKERS]."),
    log_level: str | None = typer.Option(
        None, help="critical, error, warning, info, debug, trace [SHUNTER_LOG_LEVEL]."
    ),
    watch: bool | None = typer.Option(None, help="Reload the policy file when it changes [SHUNTER_WATCH]."),
) -> None:
    """Run the gateway. Options left out come from the environment (docs/configuration.md)."""
    from pydantic import ValidationError

    from gateway import serve as serving
    from gateway.policy.loader import ConfigError, find_config, load_config
    from gateway.settings import Settings

    given: dict[str, Any] = {
        "config": config,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "watch": watch,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        typer.echo(f"invalid settings:\n{exc}", err=True)
        raise typer.Exit(2) from None
    if (found := find_config(settings.config)) != settings.config:
        typer.echo(f"{settings.config} not found here; using the packaged default {found}", err=True)
        settings = settings.model_copy(update={"config": found})
    try:
        load_config(settings.config)
    except ConfigError as exc:
        typer.echo(f"invalid policy file:\n{exc}", err=True)
        raise typer.Exit(2) from None
    serving.run(settings)


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
def config_schema(
    out: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: print to stdout)."),
) -> None:
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
