"""``shunter routes fit``: tune semantic-route thresholds on labelled examples.

Input: the policy file and a JSONL file of ``{"text": "...", "route": "code"}`` lines (``route``
null, ``""`` or ``"none"`` for prompts that should match no route). Every prompt is embedded with
the serving encoder; the thresholds are then tuned by coordinate ascent to maximise the routing
accuracy (the gateway's own rule: the best-scoring route at or above its threshold wins, no
route when none reaches it), starting from the thresholds in the file.

By default the result is printed as a YAML snippet; ``--write`` rewrites the ``threshold:``
values in the file in place (comments and layout are kept; a route without a ``threshold``
line gets one under its ``name``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from gateway.policy.loader import load_config
from gateway.policy.schema import Config
from gateway.policy.semantic import SemanticIndex, embed_each

NONE = -1


@dataclass
class FitResult:
    policy: str
    routes: list[str]
    before: list[float]
    after: list[float]
    accuracy_before: float
    accuracy_after: float
    n: int
    per_route: dict[str, dict[str, float]]


def predict(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Route index per example (or NONE): the best-scoring route that reaches its threshold."""
    ok = scores >= thresholds[None, :]
    best = np.argmax(np.where(ok, scores, -np.inf), axis=1)
    return np.where(ok.any(axis=1), best, NONE)


def tune(scores: np.ndarray, labels: np.ndarray, start: np.ndarray, passes: int = 4) -> np.ndarray:
    """Coordinate ascent on accuracy over midpoints between observed scores.

    For each route, among the thresholds that reach the best accuracy, the middle of the widest
    run of them is taken: the largest margin to the examples on both sides.
    """
    th = start.astype(np.float64).copy()
    best_acc = float((predict(scores, th) == labels).mean())
    for _ in range(passes):
        changed = False
        for r in range(scores.shape[1]):
            vals = np.unique(np.round(scores[:, r], 6))
            cands = np.sort(np.concatenate([(vals[:-1] + vals[1:]) / 2, [vals[0] - 1e-3, min(1.0, vals[-1] + 1e-3)]]))
            accs = np.empty(len(cands))
            for j, t in enumerate(cands):
                trial = th.copy()
                trial[r] = t
                accs[j] = (predict(scores, trial) == labels).mean()
            top = accs.max()
            if top < best_acc - 1e-12:
                continue
            runs, start_j = [], None
            for j, hit in enumerate(np.append(accs >= top - 1e-12, False)):
                if hit and start_j is None:
                    start_j = j
                elif not hit and start_j is not None:
                    runs.append((start_j, j - 1))
                    start_j = None
            lo, hi = max(runs, key=lambda ab: cands[ab[1]] - cands[ab[0]])
            t = float((cands[lo] + cands[hi]) / 2)
            if top > best_acc + 1e-12 or abs(t - th[r]) > 1e-6:
                changed = changed or top > best_acc + 1e-12 or abs(t - th[r]) > 1e-3
                th[r], best_acc = t, float(top)
        if not changed:
            break
    return np.round(th, 3)


def read_examples(path: Path, routes: list[str]) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    index = {r: i for i, r in enumerate(routes)}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        route = row.get("route")
        if route in (None, "", "none"):
            labels.append(NONE)
        elif route in index:
            labels.append(index[route])
        else:
            raise ValueError(f"{path}:{n}: unknown route {route!r} (known: {', '.join(routes)}, or none)")
        texts.append(str(row["text"]))
    if not texts:
        raise ValueError(f"{path}: no examples")
    return texts, np.array(labels, dtype=np.int64)


def pick_policy(cfg: Config, policy: str | None) -> str:
    with_routes = [n for n, p in cfg.policies.items() if p.semantic_routes]
    if policy:
        if policy not in with_routes:
            raise ValueError(
                f"policy {policy!r} has no semantic_routes (policies with routes: {', '.join(with_routes) or 'none'})"
            )
        return policy
    if len(with_routes) != 1:
        raise ValueError(f"choose a policy with --policy ({', '.join(with_routes) or 'no policy has semantic_routes'})")
    return with_routes[0]


def fit(config: Path, examples: Path, policy: str | None = None, embed=None) -> FitResult:
    cfg = load_config(config)
    name = pick_policy(cfg, policy)
    routes = cfg.policies[name].semantic_routes
    index = SemanticIndex(routes, embed)
    names = [r.name for r in routes]
    texts, labels = read_examples(examples, names)
    emb = (embed or embed_each)(texts)
    scores = index.scores(emb)
    before = np.array([r.threshold for r in routes])
    after = tune(scores, labels, before)
    pred = predict(scores, after)
    per_route = {}
    for i, r in enumerate(names):
        tp = int(((pred == i) & (labels == i)).sum())
        fp = int(((pred == i) & (labels != i)).sum())
        fn = int(((pred != i) & (labels == i)).sum())
        per_route[r] = {
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "support": int((labels == i).sum()),
        }
    return FitResult(
        name,
        names,
        before.tolist(),
        after.tolist(),
        float((predict(scores, before) == labels).mean()),
        float((pred == labels).mean()),
        len(texts),
        per_route,
    )


def snippet(res: FitResult) -> str:
    lines = [
        f"# shunter routes fit: accuracy {res.accuracy_before:.3f} -> {res.accuracy_after:.3f} on {res.n} examples",
        "policies:",
        f"  {res.policy}:",
        "    semantic_routes:",
    ]
    for r, t in zip(res.routes, res.after):
        pr = res.per_route[r]
        lines.append(f"    - name: {r}")
        lines.append(
            f"      threshold: {t:g}  # precision {pr['precision']:.2f}, recall {pr['recall']:.2f}, {pr['support']} examples"
        )
    return "\n".join(lines) + "\n"


def write_back(config: Path, res: FitResult) -> None:
    """Replace (or add) each route's ``threshold:`` in place, keeping comments and layout."""
    text = config.read_text()
    lines = text.splitlines(keepends=True)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    pol = _get(_get(root, "policies"), res.policy)
    seq = _get(pol, "semantic_routes")
    edits: list[tuple[int, int, int, str]] = []  # (line, start col, end col, replacement) or insert when start < 0
    for node, t in zip(seq.value, res.after):
        keys = {k.value: (k, v) for k, v in node.value}
        value = f"{t:g}"
        if "threshold" in keys:
            v = keys["threshold"][1]
            if v.start_mark.line != v.end_mark.line:
                raise ValueError("threshold spans several lines; edit it by hand")
            edits.append((v.start_mark.line, v.start_mark.column, v.end_mark.column, value))
        else:
            k = keys["name"][0]
            if node.flow_style:
                raise ValueError(f"route {k.value!r} is a flow mapping without threshold; add one by hand")
            edits.append((k.start_mark.line, -1, k.start_mark.column, value))
    for line, start, end, value in sorted(edits, reverse=True):
        if start >= 0:
            s = lines[line]
            lines[line] = s[:start] + value + s[end:]
        else:
            nl = "" if lines[line].endswith("\n") else "\n"
            lines[line] = lines[line] + nl
            lines.insert(line + 1, " " * end + f"threshold: {value}\n")
    new = "".join(lines)
    load_config(config, new)  # never write a file the gateway would reject
    config.write_text(new)


def _get(node: yaml.Node | None, key: str) -> yaml.Node:
    if node is None:  # an empty document
        raise KeyError(key)
    for k, v in node.value:
        if k.value == key:
            return v
    raise KeyError(key)
