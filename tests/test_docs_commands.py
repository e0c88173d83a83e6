"""Every command in the README and docs/ runs as written.

Commands come from fenced ``bash``/``sh``/``console`` blocks and from inline code that starts
like a command (``shunter ...``, ``.venv/bin/...``, ``python ...``, ``scripts/...``, ``pip``,
``docker``, ``kubectl``). The cheap ones run, in document order, in a scratch folder holding a
copy of ``config/`` and a link to ``routers/`` (``config check``, ``config schema``, ``routes fit``,
``keys create``/``list``, ``calibrate``, ``printf``). The rest are checked without running them:
``shunter`` subcommands and options exist (and, in full commands, parse with their types and
required options), Python modules and scripts exist, pip extras are declared in pyproject.toml,
Docker targets exist in the Dockerfile, and every file a command reads exists, in the repository
or in ``../shared/data``, or was written by an earlier command on the same page.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
import typer

from gateway.cli import app
from tests.support.paths import DATA, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(
    r"^(?:[A-Z_]+=\S+\s+)*(?:shunter\s+[a-z]|\.venv/bin/\w|python3?\s|scripts/\S+\.sh|pip\s|docker\s|kubectl\s)"
)
RUN = (
    ("shunter", "config", "check"),
    ("shunter", "config", "schema"),
    ("shunter", "routes", "fit"),
    ("shunter", "keys", "create"),
    ("shunter", "keys", "list"),
    ("shunter", "calibrate"),
    ("printf",),
)
OUTPUT_OPTIONS = {"--out", "--output", "-o", "--plot", "--json-out"}
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|\[.*\]|<.*>|.*\.\.\.)$")
PATHLIKE = re.compile(r"\.(?:ya?ml|jsonl?|png|csv|py|sh|md|sqlite)$")


@dataclass
class Command:
    page: str
    line: int
    words: list[str]
    fenced: bool
    outputs: list[str]  # files the shell redirects into

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.words)}"

    @property
    def placeholders(self) -> bool:
        return any(PLACEHOLDER.match(w) for w in self.words[1:])


def split_commands(text: str) -> list[tuple[list[str], list[str]]]:
    """Simple commands of a shell line (split at && ; |), env assignments dropped, redirects apart."""
    text = re.sub(r"\[[^\]\s]*\|[^\]\s]*\]", "[CHOICE]", text)  # `[gateway|llama]` is a placeholder, not a pipe
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    out: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    redirects: list[str] = []
    tokens = list(lex)
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in ("&&", "||", ";", "|"):
            out.append((words, redirects))
            words, redirects = [], []
        elif t in (">", ">>"):
            redirects.append(tokens[i + 1])
            i += 1
        elif not words and re.match(r"^[A-Z_]+=", t):
            pass
        else:
            words.append(t)
        i += 1
    out.append((words, redirects))
    return [(w, r) for w, r in out if w]


def extract(page: Path) -> list[Command]:
    rel = str(page.relative_to(ROOT))
    lines = page.read_text().splitlines()
    found: list[Command] = []
    lang = None
    pending, start = "", 0
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if m:
            lang = None if lang is not None else m.group(1)
            continue
        if lang is None:
            for span in INLINE.findall(line):
                if COMMAND.match(span):
                    found += [Command(rel, n, w, False, r) for w, r in split_commands(span)]
            continue
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        if lang == "console":
            if not line.startswith("$ "):
                continue  # the command's output
            line = line[2:]
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = pending + line, ""
        if text.strip():
            found += [Command(rel, start, w, True, r) for w, r in split_commands(text)]
    return found


def _program(words: list[str]) -> str:
    return words[0].removeprefix(".venv/bin/")


def _shunter_command(words: list[str]):
    """(click command, its arguments, its name path) for ``shunter a b --x``."""
    cmd = typer.main.get_command(app)
    args = list(words[1:])
    path = ["shunter"]
    while hasattr(cmd, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in cmd.commands, f"no subcommand '{name}' under {' '.join(path)}"
        cmd = cmd.commands[name]
        path.append(name)
    assert not hasattr(cmd, "commands"), f"'{' '.join(path)}' needs a subcommand"
    return cmd, args, path


def check_shunter(c: Command) -> None:
    cmd, args, path = _shunter_command(c.words)
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for a in args:
        if a.startswith("-") and a.split("=", 1)[0] not in known:
            raise AssertionError(f"'{' '.join(path)}' has no option {a.split('=', 1)[0]}")
    if c.fenced and not c.placeholders:  # a whole command: types and required options too
        cmd.make_context(" ".join(path), list(args))


def complete(c: Command) -> bool:
    """A command as one would type it, not a mention of one (prose names `shunter config check`)."""
    if c.placeholders:
        return False
    if c.fenced or c.words[0] != "shunter":
        return True
    cmd, args, path = _shunter_command(c.words)
    try:
        cmd.make_context(" ".join(path), list(args))
    except Exception:
        return False
    return True


def check_python(c: Command) -> None:
    args = c.words[1:]
    if args[:1] == ["-m"]:
        sys.path.insert(0, str(ROOT))
        try:
            assert importlib.util.find_spec(args[1]) is not None, f"no module {args[1]}"
        finally:
            sys.path.remove(str(ROOT))
    else:
        assert (ROOT / args[0]).is_file(), f"no script {args[0]}"


def check_pip(c: Command) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for a in c.words[2:]:
        m = re.fullmatch(r"\.\[([\w,-]+)\]", a)
        if m:
            missing = [e for e in m.group(1).split(",") if e not in extras]
            assert not missing, f"pyproject.toml declares no extra {missing}"


def check_docker(c: Command) -> None:
    args = c.words[1:]
    if args[:1] == ["build"] and "--target" in args:
        target = args[args.index("--target") + 1]
        assert re.search(rf"^FROM .* AS {re.escape(target)}$", (ROOT / "Dockerfile").read_text(), re.M), target
    elif args[:1] == ["compose"]:
        assert (ROOT / "docker-compose.yml").is_file()


def check_kubectl(c: Command) -> None:
    if c.words[1:2] == ["kustomize"]:
        assert (ROOT / c.words[-1]).is_dir(), c.words[-1]


CHECKS = {
    "shunter": check_shunter,
    "python": check_python,
    "python3": check_python,
    "pip": check_pip,
    "docker": check_docker,
    "kubectl": check_kubectl,
    "printf": lambda c: None,
}


def _output_options(c: Command) -> set[str]:
    # `shunter outcomes pull --db FILE` writes the SQLite file that `retrain`/`report --db` read
    if c.words[:3] == ["shunter", "outcomes", "pull"]:
        return OUTPUT_OPTIONS | {"--db"}
    return OUTPUT_OPTIONS


def inputs(c: Command) -> list[str]:
    """The files a command reads: path-like arguments that are not its outputs."""
    if _program(c.words) not in ("shunter", "python", "python3") and not c.words[0].startswith("scripts/"):
        return []
    out, skip = [], False
    for i, w in enumerate(c.words[1:], 1):
        if skip or w.startswith("-") or PLACEHOLDER.match(w) or "$" in w or "://" in w:
            skip = False
            continue
        if c.words[i - 1] in _output_options(c):
            continue
        if "/" in w or PATHLIKE.search(w):
            out.append(w)
    if c.words[0].startswith("scripts/"):
        out.append(c.words[0])
    return out


def outputs(c: Command) -> list[str]:
    w = c.words
    opts = _output_options(c)
    return [w[i + 1] for i in range(len(w) - 1) if w[i] in opts] + c.outputs


def exists(path: str, made: set[str]) -> bool:
    if path in made or any(path.startswith(m.rstrip("/") + "/") for m in made):
        return True
    if path.startswith("../shared/data"):
        return not DATA.exists() or (DATA / path.removeprefix("../shared/data").lstrip("/")).exists()
    return (ROOT / path).exists()


def runs(c: Command) -> bool:
    return any(tuple(c.words[: len(r)]) == r for r in RUN) and complete(c)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A working directory like the repository root, whose config/ the commands may rewrite."""
    shutil.copytree(ROOT / "config", tmp_path / "config")  # config/default.yaml: the file, not the link
    (tmp_path / "routers").symlink_to(ROOT / "routers")
    return tmp_path


def run(c: Command, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    if c.words[0] == "printf":
        line = shlex.join(c.words) + "".join(f" > {shlex.quote(o)}" for o in c.outputs)
        return subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=30)
    cmd = [sys.executable, "-m", "gateway", *c.words[1:]]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_commands_run_as_written(page: Path, sandbox: Path):
    commands = extract(page)
    made: set[str] = set()
    failures = []
    for c in commands:
        prog = _program(c.words)
        check = CHECKS.get(prog)
        if check is None and not c.words[0].startswith("scripts/"):
            failures.append(f"{c.where}: unknown program '{prog}' (teach tests/test_docs_commands.py to check it)")
            continue
        try:
            if check is not None:
                check(c)
            missing = [p for p in inputs(c) if not exists(p, made)]
            assert not missing, f"missing file(s) {missing}"
            if c.words[0].startswith("scripts/"):
                assert os.access(ROOT / c.words[0], os.X_OK), "script is not executable"
            if runs(c):
                r = run(c, sandbox)
                assert r.returncode == 0, f"exit {r.returncode}: {(r.stderr or r.stdout)[-600:]}"
        except Exception as exc:
            failures.append(f"{c.where}: {type(exc).__name__}: {exc}")
        made.update(outputs(c))
    assert not failures, "\n".join(failures)


def test_commands_are_found():
    """The extractor sees the commands the pages are known to hold."""
    readme = [shlex.join(c.words) for c in extract(ROOT / "README.md")]
    assert "scripts/setup.sh" in readme and ".venv/bin/shunter serve" in readme
    assert any(w.startswith("shunter keys create") for w in readme)
    policies = [c for c in extract(ROOT / "docs" / "policies.md") if runs(c)]
    assert len(policies) >= 4


def test_routes_fit_reproduces_the_documented_figure(sandbox: Path):
    """docs/policies.md quotes what `routes fit` prints on the shipped examples."""
    c = next(
        c for c in extract(ROOT / "docs" / "policies.md") if c.fenced and c.words[:3] == ["shunter", "routes", "fit"]
    )
    r = run(c, sandbox)
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    figure = re.search(r"accuracy (\S+ -> \S+) on (\d+) examples", head)
    assert figure, head
    text = (ROOT / "docs" / "policies.md").read_text()
    assert f"`accuracy {figure.group(1)}`" in text and f"({figure.group(2)} prompts)" in text


def test_readme_names_the_train_extra_install():
    from routers.cli import TRAIN_EXTRA

    command = re.search(r"\.venv/bin/pip install -e '\.\[train\]'", TRAIN_EXTRA)
    assert command and f"`{command.group(0)}`" in (ROOT / "README.md").read_text()
