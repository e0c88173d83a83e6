"""Load a policy file: YAML → ``Config``, with errors that name the file, line, column and field.

``load_config`` raises ``ConfigError`` listing every problem as
``config/default.yaml:14:5 policies.chat.candidates[2]: unknown upstream 'gpt4' (known: ...)``.
Cross-references are checked too: unknown upstreams, missing router artifacts, routers trained on
models that are not candidates, missing prices where a cost objective needs them.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gateway.policy.schema import Config


@dataclass
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


class ConfigError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))


def _fmt_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


class _Positions:
    """Maps a key path in the YAML document to the (line, column) of its node (1-based)."""

    def __init__(self, root: yaml.Node | None, text: str = "") -> None:
        self.pos: dict[tuple, tuple[int, int]] = {}
        self.lines = text.splitlines()
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.pos[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                self.pos[path + (key, "__key__")] = (k.start_mark.line + 1, k.start_mark.column + 1)
                self._walk(v, path + (key,))
                if isinstance(v, (yaml.MappingNode, yaml.SequenceNode)):  # a section: point at its key
                    self.pos[path + (key,)] = self.pos[path + (key, "__key__")]
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, path + (i,))
                self.pos[path + (i,)] = self._dash(v)

    def _dash(self, node: yaml.Node) -> tuple[int, int]:
        """A block-sequence item is located at its '- ' marker (a flow item at the item itself)."""
        line, col = node.start_mark.line, node.start_mark.column
        if line < len(self.lines):
            before = self.lines[line][:col].rstrip()
            if before.endswith("-") and before[:-1].strip() == "":
                return line + 1, len(before)
        return line + 1, col + 1

    def find(self, loc: tuple) -> tuple[int, int]:
        loc = tuple(loc)
        # A missing field points at its parent; an unknown (extra) key at the key itself.
        while loc:
            if loc + ("__key__",) in self.pos and loc not in self.pos:
                return self.pos[loc + ("__key__",)]
            if loc in self.pos:
                return self.pos[loc]
            loc = loc[:-1]
        return self.pos.get((), (1, 1))


# Errors whose mistake is where an unfinished construct began (PyYAML's context mark), not where
# PyYAML noticed it, which is often the next line: an unclosed bracket or quote, a key without ':'.
_UNCLOSED = {
    "while scanning a simple key": "the key that starts here has no ':' (or '- ' lacks its space)",
    "while scanning a quoted scalar": "the quote that opens here is not closed",
    "while parsing a flow sequence": "the '[' that opens here is not closed",
    "while parsing a flow mapping": "the '{' that opens here is not closed",
}


def _yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """(line, column, message) of a YAML syntax error, at the line that holds the mistake."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or str(exc)
    if mark is None:
        return 1, 1, f"YAML syntax error: {problem}"
    ctx = exc.context_mark
    if ctx is not None and exc.context in _UNCLOSED and ctx.line < mark.line:
        return ctx.line + 1, ctx.column + 1, f"YAML syntax error: {_UNCLOSED[exc.context]}"
    lines = text.splitlines()
    opener = _unclosed_flow(text)
    if opener is not None and opener.line < mark.line and (exc.context or "").startswith("while parsing a flow"):
        kind = "'['" if lines[opener.line][opener.column] == "[" else "'{'"
        return opener.line + 1, opener.column + 1, f"YAML syntax error: the {kind} that opens here is not closed"
    if problem == "mapping values are not allowed here":
        scalar = _last_scalar(text)
        if scalar is not None and scalar.start_mark.line < mark.line:
            start = scalar.start_mark
            first = lines[start.line]
            if first[: start.column].strip() == "":  # the scalar is a key: its own line lacks ':'
                return (
                    start.line + 1,
                    start.column + 1,
                    f"YAML syntax error: '{first.strip()}' needs a ':' after its key",
                )
            indent = len(lines[mark.line]) - len(lines[mark.line].lstrip())
            return mark.line + 1, indent + 1, "YAML syntax error: this key is indented further than the keys above it"
    if problem.startswith("expected <block end>"):
        found = "a '- ' list item" if problem.endswith("'-'") else "a key"
        return (
            mark.line + 1,
            mark.column + 1,
            f"YAML syntax error: {found} at an indentation that matches no key above it "
            "(check this line's indentation, and the line before)",
        )
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    return mark.line + 1, mark.column + 1, f"YAML syntax error: {problem}"


def _unclosed_flow(text: str) -> yaml.Mark | None:
    """Where the innermost '[' or '{' still open at the error begins, if it is not closed on its own line."""
    stack: list[yaml.Mark] = []
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                stack.append(tok.start_mark)
            elif isinstance(tok, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and stack:
                stack.pop()
    except yaml.YAMLError:
        pass
    if not stack:
        return None
    start = stack[-1]
    rest = text.splitlines()[start.line][start.column :]
    closer = "]" if rest.startswith("[") else "}"
    return None if closer in rest else start


def _last_scalar(text: str) -> yaml.ScalarToken | None:
    """The last scalar PyYAML scanned before the error (a plain scalar may span several lines)."""
    last = None
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, yaml.ScalarToken):
                last = tok
    except yaml.YAMLError:
        pass
    return last


def parse_yaml(text: str, file: str) -> tuple[Any, _Positions]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line, col, msg = _yaml_error(exc, text)
        raise ConfigError([Problem(file, line, col, "", msg)]) from None
    return data, _Positions(node, text)


DEFAULT_CONFIG = Path("config/default.yaml")
"""The policy file the CLI names by default (relative to the working directory: a clone's root)."""
PACKAGED_DEFAULT = Path(__file__).resolve().parents[1] / "defaults" / "default.yaml"
"""The same file shipped inside the package (``config/default.yaml`` in a clone links to it)."""


def find_config(path: str | Path) -> Path:
    """``path``, or the packaged default when ``path`` is the unchanged default and the working directory lacks it."""
    path = Path(path)
    if path == DEFAULT_CONFIG and not path.exists():
        return PACKAGED_DEFAULT
    return path


def load_config(path: str | Path, text: str | None = None) -> Config:
    """Parse and validate a policy file, raising ``ConfigError`` with every problem found."""
    path = Path(path)
    file = str(path)
    if text is None:
        try:
            text = path.read_text()
        except OSError as exc:
            hint = f" (the default policy file ships at {PACKAGED_DEFAULT})" if path.name == DEFAULT_CONFIG.name else ""
            raise ConfigError([Problem(file, 0, 0, "", f"cannot read file: {exc.strerror}{hint}")]) from None
    data, pos = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, 1, "", "the file must be a mapping with 'upstreams' and 'policies'")])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [Problem(file, *pos.find(loc), _fmt_path(loc), msg) for loc, msg in schema_problems(exc)]
        ) from None
    problems = [Problem(file, *pos.find(loc), _fmt_path(loc), msg) for loc, msg in cross_check(cfg, path.parent)]
    if problems:
        raise ConfigError(problems)
    return cfg


def schema_problems(exc: ValidationError) -> list[tuple[tuple, str]]:
    """(location, message) per schema error; a misspelt field is one error, not two.

    ``candidate: [...]`` in place of ``candidates`` makes pydantic report both "Field required"
    (candidates) and "extra fields not permitted" (candidate): the second is the mistake, the first
    its knock-on, so the pair becomes ``unknown field 'candidate' (did you mean 'candidates'?)``.
    """
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        errors.append((loc, err["type"], err["msg"].removeprefix("Value error, ")))
    missing = {loc for loc, kind, _ in errors if kind == "missing"}
    renamed: set[tuple] = set()
    out: list[tuple[tuple, str]] = []
    for loc, kind, msg in errors:
        if kind == "extra_forbidden":
            siblings = [m[-1] for m in missing if m[:-1] == loc[:-1] and isinstance(m[-1], str)]
            siblings += _field_names(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), siblings, n=1, cutoff=0.7)
            msg = f"unknown field '{loc[-1]}'" + (f" (did you mean '{close[0]}'?)" if close else "")
            if close and loc[:-1] + (close[0],) in missing:
                renamed.add(loc[:-1] + (close[0],))
        out.append((loc, msg))
    return [(loc, msg) for loc, msg in out if loc not in renamed]


def _field_names(loc: tuple) -> list[str]:
    """The fields the schema allows at ``loc`` (a path into ``Config``), or [] where it cannot tell."""
    ann: Any = Config
    for part in loc:
        ann = _strip_optional(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            ann = field.annotation
        elif typing.get_origin(ann) in (dict, list):
            ann = typing.get_args(ann)[-1]  # dict[str, X] or list[X]: the part is a key or an index
        else:
            return []
    ann = _strip_optional(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _strip_optional(ann: Any) -> Any:
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return ann


def resolve_path(base: Path, p: str) -> Path:
    """Artifact paths are relative to the policy file, then the working directory, then the install root.

    The install root holds ``routers/artifacts/`` (shipped default routers), so a policy file copied
    anywhere can still say ``path: routers/artifacts/mf-mmlu``.
    """
    cand = Path(p)
    if cand.is_absolute():
        return cand
    for root in (base, Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / cand).exists():
            return root / cand
    return base / cand


def cross_check(cfg: Config, base: Path) -> list[tuple[tuple, str]]:
    """References between sections that a schema alone cannot check."""
    out: list[tuple[tuple, str]] = []
    known = sorted(cfg.upstreams)
    aliases: dict[str, str] = {}
    for pname, pol in cfg.policies.items():
        out.extend(_check_names(cfg, pname, pol, known, aliases))
        out.extend(_check_shadow(cfg, pname, pol, known))
        out.extend(_check_objective(cfg, pname, pol))
        out.extend(_check_targets(cfg, pname, pol, known))
        if pol.router:
            out.extend(_check_router(base, pname, pol, [c for c in pol.candidates if c not in cfg.upstreams]))
    out.extend(_check_cycles(cfg))
    if cfg.server.default_policy and cfg.server.default_policy not in cfg.policies:
        out.append(
            (
                ("server", "default_policy"),
                _unknown("policy", cfg.server.default_policy, sorted(cfg.policies)),
            )
        )
    return out


def _check_names(
    cfg: Config, pname: str, pol: Any, known: list[str], aliases: dict[str, str]
) -> list[tuple[tuple, str]]:
    """Candidates and fallbacks name upstreams; an alias is no other policy's, model's or alias's name."""
    out: list[tuple[tuple, str]] = []
    for field in ("candidates", "fallbacks"):
        for i, c in enumerate(getattr(pol, field)):
            if c not in cfg.upstreams:
                out.append((("policies", pname, field, i), _unknown("upstream", c, known)))
    for i, a in enumerate(pol.aliases):
        if a in aliases or a in cfg.policies or a in cfg.upstreams:
            out.append((("policies", pname, "aliases", i), f"alias '{a}' is already a policy, model or alias"))
        aliases[a] = pname
    # A misspelt candidate is reported once: the references to the name it should have had
    # (reference_model, model_map) are knock-on errors of that one typo.
    typos = [c for c in pol.candidates if c not in cfg.upstreams]
    if pol.reference_model and pol.reference_model not in pol.candidates and not typos:
        out.append((("policies", pname, "reference_model"), f"'{pol.reference_model}' is not a candidate"))
    return out


def _check_shadow(cfg: Config, pname: str, pol: Any, known: list[str]) -> list[tuple[tuple, str]]:
    """The judge and the compared models are upstreams, and there are two models to compare: with
    fewer, every request would be skipped and the option would silently do nothing."""
    shadow = pol.learning.shadow if pol.learning else None
    if shadow is None:
        return []
    out: list[tuple[tuple, str]] = []
    loc = ("policies", pname, "learning", "shadow")
    if shadow.judge not in cfg.upstreams:
        out.append((loc + ("judge",), _unknown("upstream", shadow.judge, known)))
    for i, c in enumerate(shadow.compare):
        if c not in cfg.upstreams:
            out.append((loc + ("compare", i), _unknown("upstream", c, known)))
        elif c in shadow.compare[:i]:
            out.append((loc + ("compare", i), f"'{c}' is listed twice"))
    if shadow.compare and len(set(shadow.compare)) < 2:  # (the candidates, its default, are two or more)
        out.append(
            (
                loc + ("compare",),
                "a shadow call answers with another model than the served one: compare must name at least "
                f"two models (has: {', '.join(sorted(set(shadow.compare)))})",
            )
        )
    return out


def _check_objective(cfg: Config, pname: str, pol: Any) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    kind = pol.objective.kind
    if kind in ("cost_weight", "max_cost_per_request"):
        for c in pol.candidates:
            up = cfg.upstreams.get(c)
            if up and (up.input_price is None or up.output_price is None):
                out.append(
                    (("upstreams", c), f"objective {kind} of policy '{pname}' needs input_price and output_price")
                )
    if kind == "target_strong_share" and not pol.router:
        out.append(
            (
                ("policies", pname, "objective", "target_strong_share"),
                "target_strong_share needs a pair router (its stored calibration); without a router use threshold",
            )
        )
    return out


def _check_router(base: Path, pname: str, pol: Any, typos: list[str]) -> list[tuple[tuple, str]]:
    """The router artifact exists, knows every candidate, and matches the declared family and objective."""
    rdir = resolve_path(base, pol.router.path)
    meta_file = rdir / "router.json"
    if not (rdir / "router.onnx").exists() or not meta_file.exists():
        return [
            (
                ("policies", pname, "router", "path"),
                f"router artifact not found at '{rdir}' (needs router.onnx and router.json)",
            )
        ]
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        return [(("policies", pname, "router", "path"), f"unreadable router.json: {exc}")]
    out: list[tuple[tuple, str]] = []
    cal = meta.get("calibration") or {}
    if pol.objective.kind == "target_strong_share" and not (cal.get("strong_win") or cal.get("quality_sample")):
        out.append(
            (
                ("policies", pname, "objective", "target_strong_share"),
                f"router '{pol.router.path}' stores no strong_win calibration; use threshold",
            )
        )
    rmodels = set(meta.get("models", []))
    for c in pol.candidates:
        inner = pol.router.model_map.get(c, c)
        if c not in typos and inner not in rmodels and meta.get("kind") not in ("random",):
            out.append(
                (
                    ("policies", pname, "router", "model_map"),
                    f"candidate '{c}' maps to '{inner}', which router '{pol.router.path}' was not trained on "
                    f"(it knows: {', '.join(sorted(rmodels))})",
                )
            )
    for c in pol.router.model_map:
        if c not in pol.candidates and not typos:
            out.append((("policies", pname, "router", "model_map", c), f"'{c}' is not a candidate"))
    if pol.router.family and pol.router.family != meta.get("kind"):
        out.append(
            (
                ("policies", pname, "router", "family"),
                f"artifact is a '{meta.get('kind')}' router, not '{pol.router.family}'",
            )
        )
    return out


def _unknown(kind: str, name: str, known: list[str]) -> str:
    """``unknown upstream 'gpt4' (known: gpt-4o, gpt-4o-mini)`` (the wording issue 4 fixed)."""
    return f"unknown {kind} '{name}' (known: {', '.join(known)})"


def _check_targets(cfg: Config, pname: str, pol: Any, known: list[str]) -> list[tuple[tuple, str]]:
    """Rules, semantic routes and reasoning rules name existing upstreams and policies."""
    out: list[tuple[tuple, str]] = []
    for section in ("rules", "semantic_routes"):
        for i, r in enumerate(getattr(pol, section)):
            loc = ("policies", pname, section, i)
            if r.model and r.model not in cfg.upstreams:
                out.append((loc + ("model",), _unknown("upstream", r.model, known)))
            if r.policy and r.policy not in cfg.policies:
                out.append((loc + ("policy",), _unknown("policy", r.policy, sorted(cfg.policies))))
            elif r.policy == pname:
                out.append((loc + ("policy",), f"policy '{pname}' cannot hand requests to itself"))
    for i, r in enumerate(pol.reasoning):
        loc = ("policies", pname, "reasoning", i)
        if r.model and r.model not in cfg.upstreams:
            out.append((loc + ("model",), _unknown("upstream", r.model, known)))
        if pol.router is None:
            out.append((loc, "reasoning rules read the router's scores, but this policy has no router"))
    return out


def _check_cycles(cfg: Config) -> list[tuple[tuple, str]]:
    """Policies that hand requests to each other (rules/semantic routes) must not loop."""
    edges = {
        n: [r.policy for r in (*p.rules, *p.semantic_routes) if r.policy and r.policy in cfg.policies and r.policy != n]
        for n, p in cfg.policies.items()
    }
    out: list[tuple[tuple, str]] = []
    reported: set[frozenset] = set()

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in edges[node]:
            if nxt == start:
                key = frozenset(trail)
                if key not in reported:
                    reported.add(key)
                    out.append(
                        (
                            ("policies", start),
                            "policies hand requests to each other in a loop: " + " -> ".join([*trail, start]),
                        )
                    )
            elif nxt not in trail:
                walk(start, nxt, [*trail, nxt])

    for n in edges:
        walk(n, n, [n])
    return out
