"""One settings object: the docs table, environment references, and no stray environment reads."""

from __future__ import annotations

import ast
import logging
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway import logs, secrets
from gateway.policy.loader import ConfigError, load_config
from gateway.settings import Settings, env_name, markdown_table, with_table
from routers.settings import RouterSettings

ROOT = Path(__file__).resolve().parents[2]


def test_docs_table_is_generated_from_the_settings():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert with_table(doc) == doc, "run: python -m gateway.settings docs/configuration.md"
    assert markdown_table() in doc


def test_every_field_reads_its_variable(monkeypatch):
    values = {
        "SHUNTER_PORT": "9001",
        "SHUNTER_LOG_LEVEL": "debug",
        "SHUNTER_ENCODER_THREADS": "2",
        "SHUNTER_WATCH": "0",
        "SHUNTER_BANDIT_SEED": "7",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prom",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert (s.port, s.log_level, s.encoder_threads, s.watch, s.bandit_seed) == (9001, "debug", 2, False, 7)
    assert s.prometheus_multiproc_dir == Path("/tmp/prom")
    assert RouterSettings().encoder_threads == 2  # routers reads the same variable, through the base class
    assert env_name("prometheus_multiproc_dir") == "PROMETHEUS_MULTIPROC_DIR"
    assert env_name("embed_max_batch") == "SHUNTER_EMBED_MAX_BATCH"
    assert Settings(port=1).port == 1  # explicit values (the CLI's options) win over the environment


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("SHUNTER_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="log_level"):
        Settings()


def test_settings_pickle_for_spawned_workers():
    s = Settings(port=1234, config=Path("x.yaml"))
    assert pickle.loads(pickle.dumps(s)) == s


def test_resolve_rules(monkeypatch):
    monkeypatch.setenv("SHUNTER_TEST_SECRET", "s3cret-value")
    monkeypatch.setenv("SHUNTER_TEST_EMPTY", "")
    monkeypatch.delenv("SHUNTER_TEST_UNSET", raising=False)
    assert secrets.resolve("os.environ/SHUNTER_TEST_SECRET") == "s3cret-value"
    assert secrets.resolve("os.environ/SHUNTER_TEST_EMPTY") is None
    assert secrets.resolve("os.environ/SHUNTER_TEST_UNSET") is None
    assert secrets.resolve("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"  # a literal
    assert secrets.resolve(None) is None and secrets.resolve("") is None
    assert secrets.env_name("os.environ/A_B1") == "A_B1" and secrets.env_name("os.environ/1X") is None


def _policy(tmp_path: Path, **server) -> Path:
    up = {"base_url": "http://127.0.0.1:9/v1", "api_key": "os.environ/SHUNTER_TEST_KEY"}
    cfg = {"server": server, "upstreams": {"m": up}}
    import yaml

    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_credentials_must_be_references(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="admin_key"):
        load_config(_policy(tmp_path, admin_key="literal-admin-key"))
    cfg = load_config(_policy(tmp_path, admin_key="os.environ/SHUNTER_TEST_ADMIN", redis_url="redis://h:1/0"))
    monkeypatch.setenv("SHUNTER_TEST_ADMIN", "adm1n-key-value")
    monkeypatch.delenv("SHUNTER_TEST_KEY", raising=False)
    assert secrets.admin_key(cfg.server) == "adm1n-key-value"
    assert cfg.upstreams["m"].available() == (False, "SHUNTER_TEST_KEY is not set")
    monkeypatch.setenv("SHUNTER_TEST_KEY", "sk-upstream-value")
    assert cfg.upstreams["m"].resolve_key() == "sk-upstream-value"
    secrets.register(cfg)
    assert secrets.redact("key sk-upstream-value and adm1n-key-value") == "key [REDACTED] and [REDACTED]"


def test_log_level_sets_the_gateway_loggers():
    old = logging.getLogger("shunter").level
    try:
        logs.configure("debug")
        assert logging.getLogger("shunter.reload").isEnabledFor(logging.DEBUG)
        logs.configure("warning")
        assert not logging.getLogger("shunter.reload").isEnabledFor(logging.INFO)
    finally:
        logging.getLogger("shunter").setLevel(old)


def test_serve_reports_bad_settings_without_starting(monkeypatch, tmp_path):
    from gateway.cli import app

    monkeypatch.setenv("SHUNTER_PORT", "not-a-port")
    r = CliRunner().invoke(app, ["serve", "--config", str(_policy(tmp_path))])
    assert r.exit_code == 2 and "port" in r.output


# Modules that may touch os.environ, and why. Everything else reads Settings.
ALLOWED_ENV = {
    "gateway/secrets.py": "resolves os.environ/NAME references and masks their values",
    "gateway/promdir.py": "hands prometheus-client its folder inside a worker (its only interface)",
    "gateway/upstream/launcher.py": "passes the environment on to a launched local server",
}


def _env_uses(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr in ("environ", "getenv", "putenv", "unsetenv"):
                lines.append(node.lineno)
    return lines


def test_no_module_reads_the_environment_behind_the_settings():
    found = {}
    for pkg in ("gateway", "routers"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED_ENV:
                continue
            if lines := _env_uses(path):
                found[rel] = lines
    assert not found, f"read these through gateway.settings.Settings (or routers.settings): {found}"
