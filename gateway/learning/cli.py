"""``shunter retrain`` and ``shunter outcomes pull`` (registered by ``gateway.cli``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

outcomes_app = typer.Typer(
    help="Recorded outcomes: copy the Redis stream into a trainer's SQLite file.", no_args_is_help=True
)


def retrain(
    policy: str = typer.Option(..., "--policy", "-p", help="Policy whose router is retrained."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Policy file, rewritten on publish [SHUNTER_CONFIG]."
    ),
    since: str = typer.Option("7d", help="Outcomes newer than this (7d, 12h, 30m; 0 for all)."),
    judge: Path | None = typer.Option(
        None, help="LLM-judge scores, JSONL {request_id, score, model?, source?} (model: a non-served model's score)."
    ),
    margin: float = typer.Option(0.01, help="Publish only when the candidate is better by this much."),
    holdout: float = typer.Option(0.2, help="Newest share of labelled requests held back for the gate."),
    metric: str = typer.Option("brier", help="Gate metric (lower is better): brier or log_loss."),
    out: Path | None = typer.Option(None, help="Artifacts go to OUT/<policy>/<version>/ [SHUNTER_RETRAIN_DIR]."),
    db: Path | None = typer.Option(None, help="SQLite outcome store (default: server.outcomes_path)."),
    candidate: Path | None = typer.Option(None, help="Gate this existing artifact instead of training one."),
    family: str | None = typer.Option(
        None, help="Retrain this family from scratch (default: adapt the deployed router, as learn-curve measures)."
    ),
    min_rows: int = typer.Option(50, help="Refuse with fewer labelled requests than this."),
    publish: bool = typer.Option(True, help="Rewrite the policy file's router path when the gate passes."),
    reload_url: str | None = typer.Option(None, help="Gateway URL to POST /admin/reload after publishing."),
    seed: int = typer.Option(0, help="Seed of the candidate router's training."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Train and gate, print the shadow A/B table, never publish (report still written)."
    ),
    plot: Path | None = typer.Option(None, help="With --dry-run: write the shadow A/B plot here (needs matplotlib)."),
    min_judged: int = typer.Option(20, help="Judged held-back requests the shadow A/B needs before it gates."),
) -> None:
    """Retrain a policy's router on its outcomes with feedback; publish only if it is better (exit 0), else exit 3."""
    from gateway.learning.retrain import Options, run
    from gateway.settings import Settings

    settings = Settings()
    opts = Options(
        config=config or settings.config,
        policy=policy,
        since=None if since in ("0", "all") else since,
        judge=judge,
        margin=margin,
        holdout=holdout,
        metric=metric,
        out=out or settings.retrain_dir,
        db=db,
        candidate=candidate,
        family=family,
        min_rows=min_rows,
        publish=publish,
        reload_url=reload_url,
        seed=seed,
        dry_run=dry_run,
        min_judged=min_judged,
    )
    try:
        report = run(opts, log=lambda s: typer.echo(s, err=True))
    except ValueError as exc:
        typer.echo(f"retrain: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        print_ab(report.get("shadow_ab") or {}, plot)
        verdict = "would publish" if report.get("would_publish") else "would not publish"
        typer.echo(f"dry run: {verdict}: {report.get('reason', '')} (report: {report.get('report_file', '')})")
        raise typer.Exit(0 if report.get("would_publish") else 3)
    typer.echo(
        json.dumps({k: report[k] for k in ("decision", "reason", "report_file", "metrics") if k in report}, indent=2)
    )
    raise typer.Exit(0 if report["decision"] == "published" else 3)


def print_ab(ab: dict, plot: Path | None) -> None:
    """The shadow A/B table (rich when installed) and, with ``plot``, its figure."""
    from gateway.learning import abtest

    head = ["router", "judged quality", "cost USD/request", "picks"]
    rows = abtest.table_rows(ab)
    if not rows:  # no candidate was trained, or no judged request to compare on: no empty table
        typer.echo(f"shadow A/B: not computed{': ' + ab['reason'] if ab.get('reason') else ''}")
        return
    title = f"shadow A/B on {ab.get('requests', 0)} judged requests ({ab.get('bound', '')})"
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(*head, title=title)
        for r in rows:
            t.add_row(*r)
        Console().print(t)
    except ImportError:
        typer.echo(title)
        for r in [head, *rows]:
            typer.echo(" | ".join(r))
    typer.echo(f"A/B {'passed' if ab.get('passed') else 'refused'}: {ab.get('reason', 'not computed')}")
    if plot is not None:
        typer.echo(f"plot: {plot}" if abtest.plot(ab, plot) else "plot: skipped (no matplotlib or no comparison)")


@outcomes_app.command("pull")
def pull(
    redis_url: str | None = typer.Option(None, "--redis", help="redis://host:port/db [SHUNTER_REDIS_URL]."),
    db: Path = typer.Option(Path("var/outcomes.sqlite"), help="Trainer's SQLite file."),
    group: str = typer.Option("trainer", help="Consumer group."),
    consumer: str | None = typer.Option(None, help="Consumer name (default host-pid)."),
) -> None:
    """Copy unread outcomes and feedback from the Redis streams into SQLite (acknowledged after writing)."""
    from gateway.outcomes.redis_stream import StreamReader, StreamUnavailable
    from gateway.outcomes.sqlite import SQLiteStore
    from gateway.settings import Settings

    redis_url = redis_url or Settings().redis_url
    if not redis_url:
        typer.echo("outcomes pull needs --redis or SHUNTER_REDIS_URL", err=True)
        raise typer.Exit(2)
    try:
        reader = StreamReader(redis_url, None, group=group, consumer=consumer)
    except StreamUnavailable as exc:
        typer.echo(f"outcomes pull: {exc}", err=True)
        raise typer.Exit(1) from None
    store = SQLiteStore(db)
    reader.sink = store
    typer.echo(json.dumps(reader.pull()))
    reader.close()
    store.close()


def report(
    since: str = typer.Option("7d", help="Outcomes newer than this (7d, 12h, 30m; 0 for all)."),
    policy: str | None = typer.Option(None, "--policy", "-p", help="Only this policy (default: every policy)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Policy file: reference models and the store path [SHUNTER_CONFIG]."
    ),
    db: Path | None = typer.Option(
        None, help="SQLite outcome store (default: the policy file's server.outcomes_path)."
    ),
    cpu_usd_per_hour: float | None = typer.Option(
        None, help="USD per CPU-hour of routing [SHUNTER_ROUTING_CPU_USD_PER_HOUR]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Cost saved against the reference model net of cascade stages, shadow and judge calls and routing CPU,
    with the judged quality against the reference model (95% intervals)."""
    from gateway.learning import report as R
    from gateway.outcomes.sqlite import SQLiteStore
    from gateway.policy.loader import ConfigError, find_config, load_config
    from gateway.settings import Settings

    settings = Settings()
    price = settings.routing_cpu_usd_per_hour if cpu_usd_per_hour is None else cpu_usd_per_hour
    try:
        start = R.parse_since(since)
        if price < 0:
            raise ValueError(f"--cpu-usd-per-hour must be 0 or more, got {price}")
        cfg = load_config(find_config(config or settings.config))
    except (ValueError, ConfigError) as exc:
        typer.echo(f"report: {exc}", err=True)
        raise typer.Exit(2) from None
    path = Path(db or cfg.server.outcomes_path)
    if not path.exists():
        typer.echo(f"report: no outcome store at {path}", err=True)
        raise typer.Exit(2)
    store = SQLiteStore(path)
    try:
        rows = R.build(
            store.outcomes(policy, start),
            store.spend(policy, start),
            store.feedback_since(policy, start),
            price,
            R.reference_models(cfg),
        )
    finally:
        store.close()
    if policy and not rows and policy not in cfg.policies:  # a typo, not a quiet week
        typer.echo(
            f"report: unknown policy {policy!r}: not in the policy file ({', '.join(cfg.policies)}), "
            "and no outcomes recorded under that name in this window",
            err=True,
        )
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(R.to_json(rows, start, price), indent=2))
    else:
        R.print_table(rows, since, price)


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)
    app.command("report")(report)
    app.add_typer(outcomes_app, name="outcomes")
