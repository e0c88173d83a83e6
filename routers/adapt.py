"""Adapt a deployed router to judged traffic (kind ``adapted``); shared by ``retrain`` and ``learn-curve``.

The deployed router is the prior. For every model ``m`` the adapted router predicts::

    q_m(x) = p_m(x) + c_m * (p_m(x) - center_m) + beta_m + w_m . f(x)

- ``p_m(x)`` is the deployed router's predicted quality for ``m`` (0.5 for a model it does not know);
- ``f(x)`` are the top ``dims`` principal components of the *domain's* prompt embeddings
  (labelled and unlabelled traffic alike: no labels are needed to find the directions in which
  this user's prompts differ), divided by the first component's spread;
- ``(c, beta, w)`` are a ridge estimate shrunk towards the deployed router (all zero): each
  observed per-model score ``y`` (user feedback, a judge's score, a revealed outcome) is an
  equation ``q_m = y``; each judge preference ``(a, b, t)`` with ``t = P(a beats b)`` is
  Bradley-Terry's target on the probability scale, ``q_a - q_b = 2t - 1`` (a tie is 0).

The ridge precision on ``w`` is chosen by 5-fold cross-validation on the judged rows by the
error of the models' quality *differences* (what a routing decision compares), with "keep the
deployed router" as one candidate: where the labels carry no signal the router stays as it was.

The artifact is the deployed router's folder copied to ``base/``, ``router.onnx`` a linear graph
``embedding -> delta`` (the PCA projection folded into one ``MatMul``) and ``router.json`` with
``alpha = 1 + c``: ``q = clip(alpha * p + delta, 0, 1)``, and ``judged_ids.json`` the ids of the
judged rows it learnt from, when they have ids. Adapting an adapted router again refits from its
original base when every one of those rows is given again, else composes the two linear heads into
one over the same base (:func:`rows_to_fit`), so repeated retraining never nests folders.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import Router, RouterScores, load_router, register
from .identities import find_model
from .runtime import OnnxRouter, pair_strong_win


def prior_quality(router: Router, emb: np.ndarray, models: list[str], pair_from_win: bool = True) -> np.ndarray:
    """(n, len(models)) of ``router``'s predicted quality, 0.5 for models it lacks.

    ``pair_from_win``: for a pair router, the pair's two columns are rewritten so that their
    difference is the router's own decision score, ``q_strong - q_weak = 2 * strong_win - 1``
    (around their mean; around 0.5 for a router whose per-model quality is only relative, the
    Hybrid-LLM cascade's). A matrix-factorisation or cascade router decides by a ``strong_win``
    that its per-model quality does not rank the same way; without this, "keep the deployed
    router" re-ranked its prompts by the quality gap (measured: MMLU math APGR 1.00 -> 0.95 for
    ``mf-mmlu``), and a correction fitted to the cascade's relative quality as if absolute
    undid its decision (0.86 -> 0.53 at 100 judged prompts). For routers that derive
    ``strong_win`` from the quality gap it changes nothing. An adapted router contributes its
    unclipped value (:meth:`AdaptedRouter.raw`), the linear map a further head composes with."""
    if isinstance(router, AdaptedRouter) and router.version >= 2:
        q, names, sw = router.raw(emb), router.models, None
    else:
        sc = router.score(emb)
        q, names, sw = sc.quality, sc.models, sc.strong_win
    out = np.full((len(emb), len(models)), 0.5)
    for j, m in enumerate(models):
        if m in names:
            out[:, j] = np.asarray(q[:, names.index(m)], np.float64)
    return with_pair_decision(router, sw, out, models) if pair_from_win else out


def with_pair_decision(router: Router, strong_win: np.ndarray | None, q: np.ndarray, models: list[str]) -> np.ndarray:
    """``q`` (n, len(models)), the router's quality in ``models`` columns, with the pair's two
    columns rewritten so that ``q_strong - q_weak = 2 * strong_win - 1`` around their mean (around
    0.5 for a router whose quality is only relative); see :func:`prior_quality`."""
    strong, weak = router.meta.get("strong"), router.meta.get("weak")
    if strong_win is None or strong not in models or weak not in models or strong == weak:
        return q
    out = np.array(q, np.float64)
    s, w = models.index(strong), models.index(weak)
    half = np.asarray(strong_win, np.float64) - 0.5
    mid = 0.5 if getattr(router, "relative_quality", False) else (out[:, s] + out[:, w]) / 2
    out[:, s], out[:, w] = mid + half, mid - half
    return out


@register("adapted")
class AdaptedRouter(OnnxRouter):
    """Serve time: the base router's quality scaled by ``alpha`` plus the ONNX head's ``delta``."""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        super().__init__(path, meta, threads)
        self.base = load_router(self.path / "base")
        self.alpha = np.asarray(meta["alpha"], np.float64)
        # version 1 (before the pair rule in ``prior_quality``): the base's plain quality, and
        # ``strong_win`` from the clipped quality; kept so a published router decides as it did
        self.version = int(meta.get("version", 1))

    def raw(self, embeddings: np.ndarray) -> np.ndarray:
        """Unclipped adapted quality (the linear model's value)."""
        p = prior_quality(self.base, embeddings, self.models, pair_from_win=self.version >= 2)
        return self.alpha[None, :] * p + self.run(embeddings)["delta"].astype(np.float64)

    def score(self, embeddings: np.ndarray) -> RouterScores:
        raw = self.raw(embeddings)
        q = np.clip(raw, 0.0, 1.0).astype(np.float32)
        cols = self._pair_cols()
        # the gap of the unclipped values: what cross-validation chose the head by, and no ties
        # where both models' predictions run past 0 or 1
        sw = pair_strong_win(raw if self.version >= 2 else q, *cols) if cols else None
        return RouterScores(self.models, q, None if sw is None else sw.astype(np.float32), self.strong, self.weak)


# ------------------------------------------------------------------------- training side
@dataclass
class Judged:
    """Labels revealed by a judge or by users, in the adapted router's model columns.

    ``scores``: (n, m) per-model quality in [0, 1], NaN where unobserved. ``pairs``: rows of
    ``(row, a, b, target)`` with ``target`` = P(model column ``a`` beats ``b``) (1, 0 or 0.5).
    """

    emb: np.ndarray
    models: list[str]
    scores: np.ndarray
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    ids: list[str] | None = None  # one per row (request ids), when known: see ``rows_to_fit``

    def __len__(self) -> int:
        return len(self.emb)

    def take(self, idx: np.ndarray) -> Judged:
        idx = np.asarray(idx, int)
        pos = np.full(len(self), -1)
        pos[idx] = np.arange(len(idx))
        keep = self.pairs[pos[self.pairs[:, 0].astype(int)] >= 0] if len(self.pairs) else self.pairs
        pairs = keep.copy()
        if len(pairs):
            pairs[:, 0] = pos[pairs[:, 0].astype(int)]
        ids = None if self.ids is None else [self.ids[i] for i in idx]
        return Judged(self.emb[idx], self.models, self.scores[idx], pairs, ids)


@dataclass
class Basis:
    """Domain PCA: ``f(x) = (x - mean) @ comp / scale``."""

    mean: np.ndarray
    comp: np.ndarray  # (dim, d)
    scale: float

    @classmethod
    def fit(cls, emb: np.ndarray, dims: int) -> Basis:
        x = np.asarray(emb, np.float64)
        if not len(x):
            return cls(np.zeros(x.shape[1]), np.zeros((x.shape[1], 0)), 1.0)
        mu = x.mean(axis=0)
        d = int(max(0, min(dims, len(x) - 1, x.shape[1])))
        if d == 0:
            return cls(mu, np.zeros((x.shape[1], 0)), 1.0)
        _, sv, vt = np.linalg.svd(x - mu, full_matrices=False)
        comp = vt[:d].T
        comp *= np.sign(comp[np.abs(comp).argmax(axis=0), np.arange(d)])
        scale = float(sv[0] / np.sqrt(max(len(x) - 1, 1))) or 1.0
        return cls(mu, comp, scale)

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        return (np.asarray(emb, np.float64) - self.mean) @ self.comp / self.scale


@dataclass
class Head:
    """``q = base + c * (base - center) + beta + f @ w`` per model (probability space)."""

    c: np.ndarray  # (m,)
    center: np.ndarray  # (m,) mean base prediction on the judged rows
    beta: np.ndarray  # (m,)
    w: np.ndarray  # (d, m)

    @classmethod
    def identity(cls, m: int, d: int) -> Head:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m), np.zeros((d, m)))

    def predict(self, p: np.ndarray, f: np.ndarray) -> np.ndarray:
        return p + self.c[None, :] * (p - self.center[None, :]) + self.beta[None, :] + f @ self.w


@dataclass
class Reg:
    """One candidate correction. ``w``: ridge precision (``None``: keep the deployed router
    unchanged). ``blend == 0``: the domain-PCA head with precision ``w`` on its directions;
    ``blend > 0``: ``(1 - blend) * base + blend * r(x)`` where ``r`` is a ridge regression of the
    judged labels alone on the raw embedding (precision ``w``), for the models the labels cover."""

    w: float | None
    c: float = 1.0
    blend: float = 0.0

    def label(self) -> str:
        if self.w is None:
            return "keep"
        return f"blend={self.blend:g},ridge={self.w:g}" if self.blend else f"w={self.w:g}"


KEEP = Reg(None)
HEADS = [Reg(lam) for lam in (30.0, 10.0, 3.0, 1.0, 0.3)]
BLENDS = [Reg(lam, blend=om) for lam in (3.0, 10.0) for om in (0.3, 0.5, 0.7)]
GRID = [KEEP, *HEADS, *BLENDS]


@dataclass
class Linear:
    """A correction in the served form: ``q = alpha * p + x @ w + b`` on the raw embedding ``x``."""

    alpha: np.ndarray  # (m,)
    w: np.ndarray  # (dim, m)
    b: np.ndarray  # (m,)

    @classmethod
    def identity(cls, m: int, dim: int) -> Linear:
        return cls(np.ones(m), np.zeros((dim, m)), np.zeros(m))

    @classmethod
    def of_head(cls, head: Head, basis: Basis) -> Linear:
        """``head`` over ``basis``'s PCA features folded into one linear map of the embedding."""
        w_eff = basis.comp @ head.w / basis.scale
        return cls(1.0 + head.c, w_eff, head.beta - head.c * head.center - basis.mean @ w_eff)

    def predict(self, p: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.alpha[None, :] * p + np.asarray(x, np.float64) @ self.w + self.b[None, :]


def _design(p: np.ndarray, f: np.ndarray, center: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """One design row per (row, model) cell, in the joint parameter vector's layout."""
    m, d = p.shape[1], f.shape[1]
    k = d + 2
    g = np.zeros((len(rows), m * k))
    at = cols * k
    idx = np.arange(len(rows))
    g[idx, at] = p[rows, cols] - center[cols]
    g[idx, at + 1] = 1.0
    for j in range(d):
        g[idx, at + 2 + j] = f[rows, j]
    return g


def fit_head(p: np.ndarray, f: np.ndarray, judged: Judged, reg: Reg) -> Head:
    """Ridge fit of the correction to the deployed router's predicted quality ``p``: each
    observed score ``y`` is an equation ``q_m = y``, each judge pair ``(a, b, t)`` an equation
    ``q_a - q_b = 2t - 1`` (Bradley-Terry's target on the probability scale; ties are 0);
    all models are solved jointly so pairs tie their corrections together."""
    m, d = p.shape[1], f.shape[1]
    if reg.w is None:
        return Head.identity(m, d)
    y = judged.scores
    obs = np.isfinite(y)
    cnt = obs.sum(0)
    center = np.where(cnt > 0, np.where(obs, p, 0.0).sum(0) / np.maximum(cnt, 1), p.mean(0))
    rows, cols = np.nonzero(obs)
    g = _design(p, f, center, rows, cols)
    r = y[rows, cols] - p[rows, cols]
    if len(judged.pairs):
        pr = judged.pairs
        i, a, b, t = pr[:, 0].astype(int), pr[:, 1].astype(int), pr[:, 2].astype(int), pr[:, 3]
        g = np.vstack([g, _design(p, f, center, i, a) - _design(p, f, center, i, b)])
        r = np.concatenate([r, (2 * t - 1) - (p[i, a] - p[i, b])])
    k = d + 2
    pen = np.tile(np.concatenate([[reg.c, 1e-3], np.full(d, reg.w)]), m)
    theta = np.linalg.solve(g.T @ g + np.diag(pen), g.T @ r).reshape(m, k)
    return Head(theta[:, 0], center, theta[:, 1], theta[:, 2:].T.copy())


def _solve(g: np.ndarray, r: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """argmin ``|g theta - r|^2 + sum(pen * theta^2)``, in the primal or the dual (kernel) form,
    whichever system is smaller."""
    if g.shape[0] >= g.shape[1]:
        return np.linalg.solve(g.T @ g + np.diag(pen), g.T @ r)
    gi = g / pen[None, :]
    return gi.T @ np.linalg.solve(gi @ g.T + np.eye(g.shape[0]), r)


def _covered(judged: Judged) -> np.ndarray:
    """(m,) bool: the models with at least one judged score or judge pair."""
    covered = np.isfinite(judged.scores).any(0)
    if len(judged.pairs):
        covered[judged.pairs[:, 1].astype(int)] = covered[judged.pairs[:, 2].astype(int)] = True
    return covered


def share_aliases(lin: Linear, models: list[str], aliases: dict[str, str], covered: np.ndarray) -> Linear:
    """A correction learned under one name of a model serves every name the base router declares
    for it (the universal prior's ``aliases``: RouterBench's ``mistralai/mixtral-8x7b-chat`` is
    the default pair's Mixtral), where that name has no labels of its own."""
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(models):
        groups.setdefault(aliases.get(name, name), []).append(j)
    alpha, w, b = lin.alpha.copy(), lin.w.copy(), lin.b.copy()
    for cols in groups.values():
        src = [j for j in cols if covered[j]]
        if len(src) == 1:  # none labelled, or several with labels of their own: leave them
            for j in cols:
                alpha[j], w[:, j], b[j] = alpha[src[0]], w[:, src[0]], b[src[0]]
    return Linear(alpha, w, b)


def fit_refit(x: np.ndarray, judged: Judged, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of the judged labels **alone** (no base router) on the raw embedding:
    ``r_m(x) = x @ W_m + b_m`` for every model the labels cover (scores as ``r_m = y``, judge
    pairs as ``r_a - r_b = 2t - 1``, solved jointly; intercepts almost unpenalised). Returns
    ``(W (dim, m), b (m,), covered (m,) bool)``; uncovered models get zeros."""
    x = np.asarray(x, np.float64)
    n, dim = x.shape
    m = judged.scores.shape[1]
    obs = np.isfinite(judged.scores)
    pr = judged.pairs
    covered = _covered(judged)
    cols = np.flatnonzero(covered)
    mu = x.mean(0) if n else np.zeros(dim)
    xc = np.hstack([np.ones((n, 1)), x - mu])
    pen = np.concatenate([[1e-3], np.full(dim, lam)])
    w, b = np.zeros((dim, m)), np.zeros(m)
    if not len(pr):  # scores only: one independent ridge per model
        for c in cols:
            ok = obs[:, c]
            th = _solve(xc[ok], judged.scores[ok, c], pen)
            w[:, c], b[c] = th[1:], th[0] - mu @ th[1:]
        return w, b, covered
    at = {int(c): k for k, c in enumerate(cols)}
    k = dim + 1
    rows, cc = np.nonzero(obs)
    g = np.zeros((len(rows) + len(pr), len(cols) * k))
    for e, (i, c) in enumerate(zip(rows, cc)):
        g[e, at[int(c)] * k : (at[int(c)] + 1) * k] = xc[i]
    for e, (i, a, bb, _t) in enumerate(pr, start=len(rows)):
        g[e, at[int(a)] * k : (at[int(a)] + 1) * k] += xc[int(i)]
        g[e, at[int(bb)] * k : (at[int(bb)] + 1) * k] -= xc[int(i)]
    r = np.concatenate([judged.scores[rows, cc], 2 * pr[:, 3] - 1])
    th = _solve(g, r, np.tile(pen, len(cols))).reshape(len(cols), k)
    w[:, cols], b[cols] = th[:, 1:].T, th[:, 0] - mu @ th[:, 1:].T
    return w, b, covered


def fit_linear(p: np.ndarray, basis: Basis, judged: Judged, reg: Reg) -> Linear:
    """The correction ``reg`` fitted on ``judged`` (``p``: the base router's quality on its rows),
    in the served form."""
    m, dim = p.shape[1], judged.emb.shape[1]
    if reg.w is None:
        return Linear.identity(m, dim)
    if not reg.blend:
        return Linear.of_head(fit_head(p, basis(judged.emb), judged, reg), basis)
    w, b, covered = fit_refit(judged.emb, judged, reg.w)
    om = np.where(covered, reg.blend, 0.0)
    return Linear(1.0 - om, w * om[None, :], b * om)


def _pair_error(q: np.ndarray, judged: Judged) -> np.ndarray:
    """Per-row squared error of every model pair's quality difference (observed scores and judge pairs)."""
    y = judged.scores
    err = np.zeros(len(judged))
    for a in range(y.shape[1]):
        for b in range(a + 1, y.shape[1]):
            both = np.isfinite(y[:, a]) & np.isfinite(y[:, b])
            err += np.where(both, ((y[:, a] - y[:, b]) - (q[:, a] - q[:, b])) ** 2, 0.0)
    if len(judged.pairs):
        pr = judged.pairs
        i, ca, cb, t = pr[:, 0].astype(int), pr[:, 1].astype(int), pr[:, 2].astype(int), pr[:, 3]
        np.add.at(err, i, ((2 * t - 1) - (q[i, ca] - q[i, cb])) ** 2)
    if not err.any():  # a single model: its own score error
        err = np.nansum((y - q) ** 2, axis=1)
    return err


def select_reg(
    p: np.ndarray, basis: Basis, judged: Judged, grid: list[Reg] = GRID, folds: int = 5, seed: int = 0
) -> tuple[Reg, list[dict[str, Any]]]:
    """The grid entry with the lowest k-fold error of the models' quality *differences* (what a
    routing decision compares), "keep the deployed router" among them."""
    n = len(judged)
    if n < 2 * folds:
        return KEEP, [{"reg": KEEP.label(), "why": f"{n} judged rows < {2 * folds}"}]
    part = np.random.default_rng(seed).permutation(n) % folds
    table: list[dict[str, Any]] = []
    for reg in grid:
        err = np.zeros(n)
        for k in range(folds):
            tr, te = np.flatnonzero(part != k), np.flatnonzero(part == k)
            lin = fit_linear(p[tr], basis, judged.take(tr), reg)
            err[te] = _pair_error(lin.predict(p[te], judged.emb[te]), judged.take(te))
        table.append({"reg": reg.label(), "cv_error": float(err.mean())})
    best = min(range(len(grid)), key=lambda i: table[i]["cv_error"])
    return grid[best], table


# ------------------------------------------------------------------------- the artifact
def _flatten(router: Router, models: list[str], dim: int) -> tuple[Path | None, np.ndarray, np.ndarray, np.ndarray]:
    """(base folder, alpha, W (dim, m), b) of an adapted ``router`` as a head over its own base,
    in ``models``; (None, ...) for any other router."""
    m = len(models)
    if isinstance(router, AdaptedRouter):
        w, b = _head_weights(router.path)
        al = np.ones(m)
        ww, bb = np.zeros((w.shape[0], m)), np.zeros(m)
        for j, name in enumerate(models):
            if name in router.models:
                k = router.models.index(name)
                al[j], ww[:, j], bb[j] = router.alpha[k], w[:, k], b[k]
        return router.path / "base", al, ww, bb
    return None, np.ones(m), np.zeros((dim, m)), np.zeros(m)


def _head_weights(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path / "router.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return inits["head_w"].astype(np.float64), inits["head_b"].astype(np.float64)


def _save_head(out: Path, w: np.ndarray, b: np.ndarray) -> None:
    from .onnx_graphs import GraphBuilder

    g = GraphBuilder(w.shape[0])
    g.op(
        "Add",
        [
            g.op("MatMul", [g.input_name, g.const(w.astype(np.float32), "head_w")]),
            g.const(b.astype(np.float32), "head_b"),
        ],
        "delta",
    )
    g.save(out / "router.onnx", {"delta": ["N", w.shape[1]]}, doc="shunter adapted router head")


def adapt(
    base_dir: str | Path,
    judged: Judged,
    out: str | Path,
    *,
    domain_emb: np.ndarray | None = None,
    dims: int = 32,
    seed: int = 0,
    grid: list[Reg] = GRID,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Adapt the router at ``base_dir`` to ``judged`` and write the ``adapted`` artifact to ``out``.

    ``domain_emb``: unlabelled prompt embeddings of the same traffic (the PCA basis is fitted on
    them together with the judged ones). Returns the written router.json.
    """
    from .export import calibration_of
    from .runtime import write_meta

    out = Path(out)
    base = load_router(base_dir)
    judged, rows = rows_to_fit(base, judged)
    if rows["mode"] == REFIT:  # base is an adapted router: its original base is the copy inside it
        base_dir = Path(base_dir) / "base"
        base = load_router(base_dir)
    judged = _as_base_names(judged, list(base.models), base.meta.get("aliases") or {})
    models = list(dict.fromkeys(list(base.models) + list(judged.models)))
    judged = _widen(judged, models)
    dom = judged.emb if domain_emb is None or not len(domain_emb) else np.vstack([judged.emb, domain_emb])
    basis = Basis.fit(dom, dims)
    p = prior_quality(base, judged.emb, models)
    reg, cv = select_reg(p, basis, judged, grid, seed=seed)
    lin = fit_linear(p, basis, judged, reg)
    lin = share_aliases(lin, models, base.meta.get("aliases") or {}, _covered(judged))
    a1, w_eff, b_eff = lin.alpha, lin.w, lin.b  # q = a1 * p + x @ w_eff + b_eff
    root, a0, w0, b0 = _flatten(base, models, basis.comp.shape[0])
    if root is None:
        alpha, w_all, b_all, src = a1, w_eff, b_eff, Path(base_dir)
    else:  # a1 * (a0 p0 + x w0 + b0) + x w1 + b1: one head over the original base
        alpha = a1 * a0
        w_all = w0 * a1[None, :] + w_eff
        b_all = b0 * a1 + b_eff
        src = root
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out / "base")
    _save_head(out, w_all, b_all)
    ids = rows.pop("ids")
    if ids is not None:  # beside router.json, which the gateway reads on every load
        (out / FITTED_FILE).write_text(json.dumps({"ids": ids}) + "\n")
    version = base.version if isinstance(base, AdaptedRouter) else 2  # a head over a version-1 base stays one
    meta = _meta(base, models, alpha, judged, reg, cv, basis, {**(info or {}), "rows": rows}, version)
    write_meta(out, meta)
    router = load_router(out)
    meta["calibration"] = calibration_of(router.score(dom))
    write_meta(out, meta)
    return meta


FITTED_FILE = "judged_ids.json"  # the ids of every judged row an adapted router has learnt from
REFIT, ON_TOP, ALL = "refit from the original base", "new rows on top", "all rows on top"


def fitted_ids(router: Router) -> set[str] | None:
    """The judged rows (ids) an adapted router has learnt from, when it recorded them."""
    if not isinstance(router, AdaptedRouter) or not (router.path / FITTED_FILE).exists():
        return None
    return set(json.loads((router.path / FITTED_FILE).read_text())["ids"])


def rows_to_fit(base: Router, judged: Judged) -> tuple[Judged, dict[str, Any]]:
    """Which judged rows to fit, and on top of what, when ``base`` may itself be adapted.

    Retraining reads every labelled request again, so the rows an adapted router learnt from come
    back. Correcting it again with them fits its own in-sample residuals, which are small, and
    learns little from the new rows (measured in docs/learning.md: 200 then 400 judged rows ends
    where 200 did). So, when the rows are identified:

    - every row the deployed head learnt from is here again: refit from the original base with
      all of them (one fit, as if adapted once; ``REFIT``);
    - some are gone (a ``--since`` window, a pruned store): correct the deployed router with the
      rows it has not seen (``ON_TOP``), and remember both sets;
    - no ids, or no record: correct the deployed router with every row (``ALL``).
    """
    seen = fitted_ids(base)
    ids = judged.ids
    if ids is None or seen is None:
        return judged, {"mode": ALL, "judged": len(judged), "ids": None if ids is None else sorted(set(ids))}
    if seen <= set(ids):
        return judged, {"mode": REFIT, "judged": len(judged), "ids": sorted(set(ids))}
    new = np.array([i for i, r in enumerate(ids) if r not in seen], int)
    kept = judged.take(new)
    record = sorted(seen | set(kept.ids or []))
    return kept, {"mode": ON_TOP, "judged": len(judged), "new": len(new), "ids": record}


def _as_base_names(judged: Judged, base_models: list[str], aliases: dict[str, str]) -> Judged:
    """``judged`` with each model the base router knows under another name (``routers.identities``:
    RouterBench's ``mistralai/mixtral-8x7b-chat`` is RouteLLM's Mixtral) renamed to the base's
    name, so its labels correct that model instead of adding a second, unrouted copy."""
    names = []
    for m in judged.models:
        found = find_model(m, base_models, aliases)
        names.append(found if found is not None and found not in judged.models and found not in names else m)
    return judged if names == judged.models else replace(judged, models=names)


def _widen(judged: Judged, models: list[str]) -> Judged:
    """``judged`` re-indexed to ``models`` columns (NaN for models it did not observe)."""
    if judged.models == models:
        return judged
    cols = [models.index(m) for m in judged.models]
    y = np.full((len(judged), len(models)), np.nan)
    y[:, cols] = judged.scores
    pairs = judged.pairs.copy()
    if len(pairs):
        pairs[:, 1] = [cols[int(a)] for a in pairs[:, 1]]
        pairs[:, 2] = [cols[int(b)] for b in pairs[:, 2]]
    return replace(judged, models=models, scores=y, pairs=pairs)


def _meta(
    base: Router,
    models: list[str],
    alpha: np.ndarray,
    judged: Judged,
    reg: Reg,
    cv: list,
    basis: Basis,
    info: Any,
    version: int,
) -> dict[str, Any]:
    bm = base.meta
    strong, weak = bm.get("strong"), bm.get("weak")
    if not (strong in models and weak in models):
        strong = weak = None
    return {
        "kind": "adapted",
        "version": version,
        "models": models,
        "strong": strong,
        "weak": weak,
        "encoder": bm.get("encoder"),
        **({"aliases": {a: c for a, c in bm["aliases"].items() if a in models}} if bm.get("aliases") else {}),
        **({"encoders": bm["encoders"]} if bm.get("encoders") else {}),
        "training_data": bm.get("training_data", []),
        "typical_output_tokens": bm.get("typical_output_tokens", {}),
        "typical_cost_usd": bm.get("typical_cost_usd", {}),
        "prices": bm.get("prices", {}),
        "alpha": [float(a) for a in alpha],
        "base_kind": bm.get("base_kind", bm.get("kind")),
        "adaptation": {
            "judged_rows": len(judged),
            "observed_scores": int(np.isfinite(judged.scores).sum()),
            "pairs": len(judged.pairs),
            "dims": int(basis.comp.shape[1]),
            "chosen": reg.label(),
            "cv": cv,
            **(info or {}),
        },
        "onnx_outputs": ["delta"],
    }
