"""``shunter ... --help``: every option says what it is for, and flags show no value type."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from gateway.cli import app


def _commands(cmd, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    out = [(path, cmd)]
    for name, sub in getattr(cmd, "commands", {}).items():
        out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_every_option_has_help():
    missing = [
        f"shunter {' '.join(path)} {param.opts[0]}"
        for path, cmd in COMMANDS
        for param in cmd.params
        if param.param_type_name == "option" and not (param.help or "").strip()
    ]
    assert missing == []


def test_help_shows_no_bool_type_on_flags():
    runner = CliRunner()
    seen = 0
    for path, _ in COMMANDS:
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
        assert r.exit_code == 0, (path, r.output)
        assert "--help" in r.output
        assert "<bool>" not in r.output, (path, r.output)
        seen += 1
    assert seen >= 15  # serve, config check/schema, keys ..., train, score, eval, calibrate, ...
    r = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "160"})
    assert "layout of --data: routellm" in r.output
    assert "<list[Path]>" not in r.output
