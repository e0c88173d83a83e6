"""Importers from public routing-outcome formats into one table (:class:`RoutingTable`).

Formats (``load_table(paths, fmt)``):

- ``routellm``: a CSV, or a folder of CSVs, with ``prompt`` and one boolean column per model
  (RouteLLM's MMLU evals). Group = the file stem minus ``mmlu_`` (the MMLU subject). Prompts
  listed as ``eval_prompt`` in a ``contaminated_prompts.jsonl`` beside the files are skipped.
  A ``<model>_response`` column (RouteLLM's GSM8K eval file) is that model's answer, kept in
  ``responses``; a value that is not an outcome is an error naming the file, line and column.
- ``routerbench``: wide CSV(s) with ``sample_id``, ``prompt`` (a Python-list literal: we use its
  **last** element, the turn that is routed; the encoder keeps head+tail of long text),
  ``eval_name``, and per model ``M`` (score), ``M|total_cost`` (USD), ``M|model_response``.
  Group = ``sample_id``. Responses (also list literals: last element) are kept
  (``responses``) for the answer checker.
- ``llmrouter``: a JSON list (or JSON Lines) of ``{question, scores: {model: score}, cluster_id}``; prices
  (USD per million tokens) from ``models.json`` beside it. Cost = prompt tokens x input price
  (output length unknown; NaN when the model has no price). Group = ``cluster_id``.
- ``outcomes``: the gateway's recorded outcomes, JSONL, **one row per (prompt, model) call**::

      {"id": "req-1",                # optional; rows with the same id are one prompt
       "prompt": "text",             # or "messages": [...OpenAI messages...] (last user turn)
       "embedding": [384 floats],    # optional; used instead of re-embedding when present
       "model": "gpt-4o-mini",
       "quality": 0.0..1.0,          # or "feedback": 0..1, or +1/-1 (thumbs; -1 -> 0)
       "cost": 0.00042,              # USD, optional
       "group": "tenant-a"}          # optional split group (default: the id)

  Rows are pivoted to the wide table; repeated (prompt, model) pairs are averaged.
- ``mixed``: any number of the files/folders above at once (e.g. all of ``../shared/data``),
  each one's format detected (:func:`detect_format`), merged into one table whose model names
  are canonical (``routers.identities``: one column per model, however each data set spells
  it). Ids and groups are prefixed with the source format (``routellm:abstract_algebra``);
  ``extra["sources"]`` lists each part's format, hash, rows and models. Outcomes listed in
  ``GRADING_FAILURES`` (a model's answers that were not graded, not wrong) are masked.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .settings import RouterSettings

FORMATS = ("routellm", "routerbench", "llmrouter", "outcomes", "mixed")
csv.field_size_limit(2**31 - 1)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$SHUNTER_DATA_DIR`` or ``<repo>/../shared/data``."""
    return RouterSettings().data_root()


@dataclass
class RoutingTable:
    """Per-prompt outcomes of several models: quality in [0, 1] and cost in USD (NaN: unknown)."""

    prompts: list[str]
    models: list[str]
    quality: np.ndarray  # (n, m) float64
    cost: np.ndarray  # (n, m) float64
    ids: list[str]
    groups: list[str]
    fmt: str = ""
    data_hash: str = ""
    responses: dict[str, list[str]] | None = None  # model -> per-prompt response text
    embeddings: np.ndarray | None = None  # (n, 384) when the source carried them
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> RoutingTable:
        idx = np.asarray(idx, dtype=int)
        return replace(
            self,
            prompts=[self.prompts[i] for i in idx],
            quality=self.quality[idx],
            cost=self.cost[idx],
            ids=[self.ids[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            responses=None if self.responses is None else {m: [r[i] for i in idx] for m, r in self.responses.items()},
            embeddings=None if self.embeddings is None else self.embeddings[idx],
        )

    def select_models(self, models: Sequence[str]) -> RoutingTable:
        cols = [self.models.index(m) for m in models]
        return replace(
            self,
            models=list(models),
            quality=self.quality[:, cols],
            cost=self.cost[:, cols],
            responses=None if self.responses is None else {m: self.responses[m] for m in models if m in self.responses},
        )


def files_hash(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of the given files (sorted by path)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _expand(paths: Sequence[str | Path], pattern: str) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob(pattern)) if p.is_dir() else [p])
    if not out:
        raise FileNotFoundError(f"no {pattern} files under {list(map(str, paths))}")
    return out


def _json_lines(text: str) -> list[Any]:
    """The values of a JSON Lines text (blank lines skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _bool(v: str) -> float:
    s = str(v).strip().lower()
    if s in ("true", "1", "1.0", "yes"):
        return 1.0
    if s in ("false", "0", "0.0", "no"):
        return 0.0
    return float("nan") if s in ("", "nan", "none") else float(s)


def _float(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


RESPONSE_SUFFIXES = ("_response", "|model_response")  # RouteLLM's GSM8K / MT-Bench files, RouterBench's


def routellm_columns(fieldnames: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(model columns, model -> its response column) of a RouteLLM-format header.

    Besides ``prompt`` and one outcome column per model, RouteLLM's own eval files (GSM8K) carry
    each model's answer as ``<model>_response``; such a column is the model's response, not a
    model. Pandas' index columns (``Unnamed: 0``) are skipped."""
    names = [c for c in fieldnames if c and c != "prompt" and not c.startswith("Unnamed")]
    responses = {c[: -len(sfx)]: c for c in names for sfx in RESPONSE_SUFFIXES if c.endswith(sfx)}
    responses = {m: c for m, c in responses.items() if m in names}
    return [c for c in names if c not in responses.values()], responses


def _outcome(v: str, where: str, model: str) -> float:
    try:
        return _bool(v)
    except ValueError:
        raise ValueError(
            f"{where}: column {model!r} holds {str(v)[:40]!r}, not an outcome (true/false or a score); "
            "the routellm format is a 'prompt' column and one outcome column per model"
        ) from None


def load_routellm(paths: Sequence[str | Path]) -> RoutingTable:
    files = _expand(paths, "*.csv")
    contaminated: set[str] = set()
    for d in {f.parent for f in files}:
        cp = d / "contaminated_prompts.jsonl"
        if cp.exists():
            contaminated.update(row["eval_prompt"].strip() for row in _json_lines(cp.read_text()))
    prompts, rows, ids, groups = [], [], [], []
    models: list[str] | None = None
    answers: dict[str, list[str]] = {}
    for f in files:
        with open(f, newline="") as fh:
            reader = csv.DictReader(fh)
            if "prompt" not in (reader.fieldnames or []):
                raise ValueError(f"{f}: no 'prompt' column (columns: {reader.fieldnames})")
            cols, resp_cols = routellm_columns(reader.fieldnames or [])
            if models is None:
                models, answers = cols, {m: [] for m in resp_cols}
            elif set(cols) != set(models):
                raise ValueError(f"{f}: model columns {cols} differ from {models}")
            subject = f.stem.removeprefix("mmlu_")
            for i, r in enumerate(reader):
                if r["prompt"].strip() in contaminated:
                    continue
                prompts.append(r["prompt"])
                rows.append([_outcome(r[m], f"{f}:{reader.line_num}", m) for m in models])
                for m in answers:
                    answers[m].append(r.get(resp_cols.get(m, ""), "") or "")
                ids.append(f"{subject}/{i}")
                groups.append(subject)
    assert models is not None
    q = np.array(rows, dtype=np.float64).reshape(len(rows), len(models))
    table = RoutingTable(prompts, models, q, np.full_like(q, np.nan), ids, groups, "routellm", files_hash(files))
    return replace(table, responses=answers) if answers else table


def routerbench_prompt(raw: str) -> str:
    """The routed text of a RouterBench ``prompt`` cell: the last element of its list literal."""
    try:
        val = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if isinstance(val, (list, tuple)):
        return str(val[-1]) if val else ""
    return str(val)


def load_routerbench(paths: Sequence[str | Path]) -> RoutingTable:
    files = _expand(paths, "*.csv")
    prompts: list[str] = []
    q: list[list[float]] = []
    c: list[list[float]] = []
    ids: list[str] = []
    groups: list[str] = []
    responses: dict[str, list[str]] = {}
    models: list[str] | None = None
    for f in files:
        with open(f, newline="") as fh:
            reader = csv.DictReader(fh)
            names = reader.fieldnames or []
            cols = [n.split("|")[0] for n in names if n.endswith("|total_cost")]
            if models is None:
                models = cols
                responses = {m: [] for m in models}
            elif set(cols) != set(models):
                raise ValueError(f"{f}: models {cols} differ from {models}")
            for r in reader:
                prompts.append(routerbench_prompt(r["prompt"]))
                q.append([_float(r.get(m)) for m in models])
                c.append([_float(r.get(f"{m}|total_cost")) for m in models])
                for m in models:
                    responses[m].append(routerbench_prompt(r.get(f"{m}|model_response") or ""))
                ids.append(r.get("sample_id") or f"{f.stem}/{len(ids)}")
                groups.append(r.get("sample_id") or ids[-1])
    assert models is not None
    return RoutingTable(
        prompts,
        models,
        np.clip(np.array(q, dtype=np.float64), 0, 1),
        np.array(c, dtype=np.float64),
        ids,
        groups,
        "routerbench",
        files_hash(files),
        responses=responses,
    )


def _json_items(f: Path) -> list[dict]:
    """A JSON list of items, or JSON Lines (one item per line)."""
    text = f.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _json_lines(text)
    if isinstance(data, dict):
        data = [data]
    for i, it in enumerate(data):
        if not isinstance(it, dict) or "question" not in it or not isinstance(it.get("scores"), dict):
            raise ValueError(f"{f}: item {i} is not {{question, scores: {{model: score}}}}")
    return data


def load_llmrouter(paths: Sequence[str | Path]) -> RoutingTable:
    files = [f for f in _expand(paths, "*.json*") if f.name != "models.json" and f.suffix in (".json", ".jsonl")]
    items: list[dict] = []
    prices: dict[str, dict] = {}
    for f in files:
        items.extend(_json_items(f))
        mj = f.parent / "models.json"
        if mj.exists():
            prices.update(json.loads(mj.read_text()))
    models = sorted({m for it in items for m in it["scores"]})
    q = np.array([[_float(it["scores"].get(m)) for m in models] for it in items], dtype=np.float64)
    # Cost: prompt tokens (~4 chars/token) x input price; output length is not in the data.
    ntok = np.array([len(it["question"]) / 4.0 for it in items])
    inp = np.array([_float(str(prices.get(m, {}).get("input_price", ""))) for m in models])
    cost = ntok[:, None] * inp[None, :] / 1e6
    hash_files = files + [f.parent / "models.json" for f in files if (f.parent / "models.json").exists()]
    return RoutingTable(
        [it["question"] for it in items],
        models,
        np.clip(q, 0, 1),
        cost,
        [str(it.get("id", i)) for i, it in enumerate(items)],
        [str(it.get("cluster_id", i)) for i, it in enumerate(items)],
        "llmrouter",
        files_hash(hash_files),
        extra={"prices": {m: prices[m] for m in models if m in prices}},
    )


def _outcome_quality(row: dict) -> float:
    for key in ("quality", "score", "feedback"):
        if row.get(key) is not None:
            v = float(row[key])
            return 0.0 if v < 0 else min(v, 1.0)
    return float("nan")


def load_outcomes(paths: Sequence[str | Path]) -> RoutingTable:
    from .encoder import select_text

    files = _expand(paths, "*.jsonl")
    key_index: dict[str, int] = {}
    prompts: list[str] = []
    ids: list[str] = []
    groups: list[str] = []
    embs: list[list[float] | None] = []
    cells: dict[tuple[int, str], list[tuple[float, float]]] = {}
    models: list[str] = []
    for f in files:
        for row in _json_lines(f.read_text()):
            text = row.get("prompt")
            if text is None and row.get("messages"):
                text = select_text(row["messages"])
            text = text or ""
            key = str(row.get("id") or hashlib.sha256(text.encode()).hexdigest())
            if key not in key_index:
                key_index[key] = len(prompts)
                prompts.append(text)
                ids.append(key)
                groups.append(str(row.get("group") or key))
                embs.append(row.get("embedding"))
            m = str(row["model"])
            if m not in models:
                models.append(m)
            cells.setdefault((key_index[key], m), []).append((_outcome_quality(row), _float(row.get("cost"))))
    q = np.full((len(prompts), len(models)), np.nan)
    c = np.full_like(q, np.nan)
    for (i, m), vals in cells.items():
        arr = np.array(vals, dtype=np.float64)
        j = models.index(m)
        with np.errstate(all="ignore"):
            q[i, j] = np.nanmean(arr[:, 0]) if np.isfinite(arr[:, 0]).any() else np.nan
            c[i, j] = np.nanmean(arr[:, 1]) if np.isfinite(arr[:, 1]).any() else np.nan
    emb = None
    if embs and all(e is not None for e in embs):
        emb = np.asarray(embs, dtype=np.float32)
    return RoutingTable(prompts, models, q, c, ids, groups, "outcomes", files_hash(files), embeddings=emb)


def detect_format(path: str | Path) -> list[tuple[Path, str]]:
    """``[(path, format)]`` for a file or folder of public outcome data; a folder holding
    several data sets (like ``../shared/data``) yields one entry per data set inside it."""
    p = Path(path)
    if p.is_file():
        if p.suffix == ".jsonl":
            with open(p) as fh:
                first = fh.readline()
            return [(p, "llmrouter" if '"scores"' in first and '"question"' in first else "outcomes")]
        if p.suffix == ".json":
            return [(p, "llmrouter")]
        with open(p, newline="") as fh:
            header = fh.readline()
        return [(p, "routerbench" if "|total_cost" in header else "routellm")]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if any(p.glob("mmlu_*.csv")):
        return [(p, "routellm")]
    csvs = sorted(p.glob("*.csv"))
    if csvs:
        return [(p, detect_format(csvs[0])[0][1])]
    if (p / "train.json").exists():
        return [(p / "train.json", "llmrouter")]
    if any(p.glob("*.jsonl")):
        return [(p, "outcomes")]
    found = [hit for sub in sorted(p.iterdir()) if sub.is_dir() for hit in detect_format(sub)]
    if not found:
        raise FileNotFoundError(f"{p}: no routing-outcome data found")
    return found


def merge_tables(tables: Sequence[RoutingTable]) -> RoutingTable:
    """One table from several: canonical model names (``routers.identities``), NaN where a
    source has no outcome for a model, ids and groups prefixed with the source format."""
    from .identities import canonical

    models: list[str] = []
    for t in tables:
        for m in t.models:
            if canonical(m) not in models:
                models.append(canonical(m))
    n = sum(len(t) for t in tables)
    q = np.full((n, len(models)), np.nan)
    c = np.full_like(q, np.nan)
    prompts: list[str] = []
    ids: list[str] = []
    groups: list[str] = []
    sources: list[dict[str, Any]] = []
    prices: dict[str, Any] = {}
    row = 0
    for t in tables:
        cols = [models.index(canonical(m)) for m in t.models]
        q[row : row + len(t), cols] = t.quality
        c[row : row + len(t), cols] = t.cost
        prompts += t.prompts
        ids += [f"{t.fmt}:{i}" for i in t.ids]
        groups += [f"{t.fmt}:{g}" for g in t.groups]
        sources.append({"format": t.fmt, "hash": t.data_hash, "rows": len(t), "models": list(t.models)})
        prices.update({canonical(m): p for m, p in (t.extra.get("prices") or {}).items()})
        row += len(t)
    h = hashlib.sha256("".join(t.data_hash for t in tables).encode()).hexdigest()
    extra = {"sources": sources, "prices": prices}
    return RoutingTable(prompts, models, q, c, ids, groups, "mixed", h, extra=extra)


# Outcomes that are grading failures, not model failures: masked (NaN) in ``mixed`` tables.
# GPT-4-1106 scores 4% on MMLU high_school_mathematics (193 four-option questions, chance is
# 25%; Mixtral 35%, and GPT-4 scores 39-56% on the neighbouring math subjects): its answers
# were not parsed, so these rows would teach a router that GPT-4 fails at math.
GRADING_FAILURES: dict[tuple[str, str], str] = {
    ("routellm:high_school_mathematics", "gpt-4-1106-preview"): "4% on 4-option questions (chance 25%)",
}


def mask_grading_failures(table: RoutingTable) -> RoutingTable:
    """``table`` with the outcomes listed in ``GRADING_FAILURES`` set to NaN (missing)."""
    q = table.quality.copy()
    groups = np.array(table.groups)
    masked = {}
    for (group, model), why in GRADING_FAILURES.items():
        if model in table.models:
            rows = groups == group
            q[rows, table.models.index(model)] = np.nan
            if rows.any():
                masked[f"{group} / {model}"] = {"rows": int(rows.sum()), "why": why}
    return replace(table, quality=q, extra={**table.extra, "masked": masked})


def load_mixed(paths: Sequence[str | Path]) -> RoutingTable:
    parts = [hit for p in paths for hit in detect_format(p)]
    return mask_grading_failures(merge_tables([LOADERS[fmt]([p]) for p, fmt in parts]))


def source_of(group: str) -> str:
    """The source format of a merged table's row, from its group (``routellm:abstract_algebra``)."""
    return group.split(":", 1)[0]


def reference_mix(table: RoutingTable, per_source: int = 1000, seed: int = 0) -> np.ndarray:
    """Row indices of a merged table's calibration mix: up to ``per_source`` rows (seeded) of
    every source data set, so no one data set sets the router's score quantiles."""
    src = np.array([source_of(g) for g in table.groups])
    rng = np.random.default_rng(seed)
    out = []
    for s in sorted(set(src.tolist())):
        rows = np.flatnonzero(src == s)
        out.append(np.sort(rng.choice(rows, min(per_source, len(rows)), replace=False)))
    return np.concatenate(out) if out else np.array([], dtype=int)


LOADERS = {
    "routellm": load_routellm,
    "routerbench": load_routerbench,
    "llmrouter": load_llmrouter,
    "outcomes": load_outcomes,
    "mixed": load_mixed,
}


def load_table(paths: str | Path | Sequence[str | Path], fmt: str) -> RoutingTable:
    """Load one or more files/folders of format ``fmt`` into a :class:`RoutingTable`."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    try:
        loader = LOADERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}") from None
    table = loader(list(paths))
    if not len(table) or not table.models:  # a file of another format reads as nothing: say so
        raise ValueError(f"{', '.join(map(str, paths))}: no {fmt} rows with model outcomes{_looks_like(paths, fmt)}")
    return table


def _looks_like(paths: Sequence[str | Path], fmt: str) -> str:
    """``"; it looks like X (--format X)"`` when the data is recognisably another format."""
    try:
        found = {f for p in paths for _, f in detect_format(p)} - {fmt}
    except (OSError, ValueError, UnicodeDecodeError):
        return ""
    return f"; it looks like {' or '.join(sorted(found))} (--format {sorted(found)[0]})" if found else ""


SPLITS = ("group", "row")


def group_split(
    table: RoutingTable, test_frac: float = 0.2, seed: int = 0, by: str = "group"
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split.

    ``by="group"``: hold out whole groups (a ``test_frac`` share of the distinct groups, e.g.
    whole MMLU subjects: unseen topics). ``by="row"``: hold out a ``test_frac`` share of the
    rows (unseen prompts from the same topics).
    """
    if by not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {by!r}")
    if by == "row":
        is_test = np.random.default_rng(seed).random(len(table)) < test_frac
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    uniq = sorted(set(table.groups))
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_frac * len(uniq)))) if test_frac > 0 else 0
    test_groups = set(rng.permutation(uniq)[:n_test].tolist())
    is_test = np.array([g in test_groups for g in table.groups], dtype=bool)
    if n_test and (is_test.all() or len(uniq) < 2):  # too few groups: split rows instead
        is_test = rng.random(len(table)) < test_frac
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def kfold_split(
    table: RoutingTable, fold: int, k: int = 5, seed: int = 0, by: str = "group"
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``fold`` of a seeded ``k``-way partition: every group (``by="group"``) or row
    (``by="row"``) is held out in exactly one of the ``k`` folds."""
    if by not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {by!r}")
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in [0, {k})")
    rng = np.random.default_rng(seed)
    if by == "row":
        part = rng.permutation(len(table)) % k
    else:
        uniq = rng.permutation(sorted(set(table.groups))).tolist()
        of = {g: i % k for i, g in enumerate(uniq)}
        part = np.array([of[g] for g in table.groups])
    return np.flatnonzero(part != fold), np.flatnonzero(part == fold)


def holdout_split(
    table: RoutingTable, holdout: float = 0.0, seed: int = 0, by: str = "group", fold: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) rows: fold ``i`` of a ``k``-way partition when ``fold=(i, k)``, else a
    ``holdout`` share (``group_split``), else every row for training and none held out."""
    if fold is not None:
        return kfold_split(table, fold[0], fold[1], seed, by=by)
    if holdout > 0:
        return group_split(table, holdout, seed, by=by)
    return np.arange(len(table)), np.array([], dtype=int)


def default_paths(fmt: str) -> Path:
    """The shared data folder for a public format."""
    return (
        shared_data_dir()
        / {
            "routellm": "routellm-mmlu",
            "routerbench": "routerbench",
            "llmrouter": "llmrouter/train.json",
            "mixed": "",
        }[fmt]
    )
