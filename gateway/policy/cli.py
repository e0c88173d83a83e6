"""``shunter routes ...``: semantic-route tools (registered by ``gateway.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

routes_app = typer.Typer(help="Semantic routes: tune thresholds on labelled examples.", no_args_is_help=True)


@routes_app.command("fit")
def routes_fit(
    file: Path = typer.Argument(..., help="Policy file with semantic_routes."),
    examples: Path = typer.Option(
        ..., "--examples", "-e", help='JSONL: {"text": ..., "route": name or null} per line.'
    ),
    policy: str | None = typer.Option(None, "--policy", "-p", help="Policy to tune (needed when several have routes)."),
    write: bool = typer.Option(False, "--write", "-w", help="Rewrite the thresholds in FILE in place."),
) -> None:
    """Tune per-route thresholds for accuracy; print a YAML snippet (or --write it back)."""
    from gateway.policy.fit import fit, snippet, write_back
    from gateway.policy.loader import ConfigError

    try:
        res = fit(file, examples, policy)
    except (ConfigError, ValueError, KeyError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(snippet(res), nl=False)
    if write:
        write_back(file, res)
        typer.echo(f"# wrote {len(res.routes)} thresholds to {file}")


def register(app: typer.Typer) -> None:
    app.add_typer(routes_app, name="routes")
