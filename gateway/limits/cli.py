"""``shunter keys create|list|revoke``: manage virtual API keys in the gateway's SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from redis.exceptions import RedisError

keys_app = typer.Typer(help="Virtual API keys: create (shown once), list, revoke.", no_args_is_help=True)

_CONFIG = typer.Option(
    None, "--config", "-c", help="Policy file; its server.outcomes_path holds the keys [SHUNTER_CONFIG]."
)
_DB = typer.Option(None, "--db", help="SQLite file to use instead of the policy file's server.outcomes_path.")


def _csv(v: str | None) -> list[str] | None:
    return [p.strip() for p in v.split(",") if p.strip()] if v is not None else None


def _redis_url(cfg) -> str | None:
    from gateway import secrets

    return secrets.resolve(cfg.server.redis_url)


def _store(config: Path | None, db: Path | None):
    from gateway.limits.keys import KeyStore
    from gateway.policy.loader import ConfigError, find_config, load_config
    from gateway.settings import Settings

    try:
        cfg = load_config(find_config(config or Settings().config))
    except ConfigError as exc:
        typer.echo(f"invalid policy file:\n{exc}", err=True)
        raise typer.Exit(2) from None
    return cfg, KeyStore(db or cfg.server.outcomes_path)


@keys_app.command("create")
def create(
    budget: float | None = typer.Option(None, help="USD budget per period."),
    period: str = typer.Option("month", help="Budget period: day, month or total."),
    rpm: int | None = typer.Option(None, help="Requests per minute."),
    tpm: int | None = typer.Option(None, help="Tokens (prompt + completion) per minute."),
    policies: str | None = typer.Option(None, help="Comma-separated policies the key may use (default: all)."),
    models: str | None = typer.Option(None, help="Comma-separated upstream models the key may call directly."),
    name: str | None = typer.Option(None, help="A label for the key."),
    config: Path = _CONFIG,
    db: Path | None = _DB,
) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    from pydantic import ValidationError

    from gateway.limits.keys import KeySpec

    cfg, store = _store(config, db)
    try:
        spec = KeySpec(
            name=name,
            policies=_csv(policies),
            models=_csv(models),
            budget_usd=budget,
            budget_period=period,
            rpm=rpm,
            tpm=tpm,
        )
    except ValidationError as exc:
        typer.echo(f"invalid key settings: {exc}", err=True)
        raise typer.Exit(2) from None
    unknown = [p for p in spec.policies or [] if p not in cfg.policies] + [
        m for m in spec.models or [] if m not in cfg.upstreams
    ]
    if unknown:
        typer.echo(
            f"unknown policies or models: {', '.join(unknown)} (the policy file has policies "
            f"{', '.join(cfg.policies)} and models {', '.join(cfg.upstreams)})",
            err=True,
        )
        raise typer.Exit(2)
    rec, key = store.create(spec)
    redis_url = _redis_url(cfg)
    if redis_url:  # replicas sharing Redis accept the key even without this SQLite file
        from gateway.limits.keys import hash_key
        from gateway.limits.mirror import put_sync

        try:
            put_sync(redis_url, hash_key(key), rec)
        except RedisError as exc:  # other replicas would refuse the key: take it back
            store.revoke(rec.id)
            typer.echo(f"Redis unreachable ({type(exc).__name__}): the key was not created; retry later", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"created {rec.id} in {store.path}", err=True)
    typer.echo("key (shown once, store it now):", err=True)
    typer.echo(key)


@keys_app.command("list")
def list_(config: Path = _CONFIG, db: Path | None = _DB) -> None:
    """List keys (ids and limits; never the keys themselves)."""
    _, store = _store(config, db)
    for rec in store.list():
        typer.echo(json.dumps({"id": rec.id, "created": rec.created, "revoked": rec.revoked, **rec.spec.model_dump()}))


@keys_app.command("revoke")
def revoke(key_id: str, config: Path = _CONFIG, db: Path | None = _DB) -> None:
    """Revoke a key by id; running gateways refuse it within a few seconds."""
    cfg, store = _store(config, db)
    done = store.revoke(key_id)
    redis_url = _redis_url(cfg)
    if redis_url:
        from gateway.limits.mirror import revoke_sync

        try:
            done = revoke_sync(redis_url, key_id) or done
        except RedisError as exc:
            typer.echo(
                f"revoked in {store.path} only: Redis unreachable ({type(exc).__name__}), so other replicas may "
                "still accept the key; run this again once Redis is back",
                err=True,
            )
            raise typer.Exit(1) from None
    if not done:
        typer.echo(f"no live key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
