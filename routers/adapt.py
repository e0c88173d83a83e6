"""Adapt a deployed router to judged traffic (kind ``adapted``); shared by ``retrain`` and ``learn-curve``.

The deployed router is the prior. For every model ``m`` the adapted router predicts::

    logit q_m(x) = alpha_m * z_m(x) + beta_m + w_m . f(x)

- ``z_m(x)`` is the deployed router's logit of its predicted quality for ``m`` (0 for a model
  it does not know);
- ``f(x)`` are the top ``dims`` principal components of the *domain's* prompt embeddings
  (labelled and unlabelled traffic alike: no labels are needed to find the directions in which
  this user's prompts differ), divided by the first component's spread;
- ``(alpha, beta, w)`` are a MAP estimate under a Gaussian prior centred on the deployed router
  (``alpha = 1, beta = 0, w = 0``), with per-model judge or user scores as Bernoulli
  likelihoods and pairwise judge preferences as Bradley-Terry terms
  ``P(a beats b) = sigmoid(logit q_a - logit q_b)`` (ties are half a win).

The prior's strength is chosen by k-fold cross-validation on the judged rows, among them
"keep the deployed router" (no change at all): with few or uninformative labels the
router stays as it was, which is what keeps small budgets from making it worse.

The artifact is the deployed router's folder copied to ``base/`` plus ``router.onnx``, a
linear graph ``embedding -> delta`` (the PCA projection is folded into one ``MatMul``), and
``router.json`` with ``alpha``. Adapting an adapted router composes the two linear heads
into one over the same base, so repeated retraining never nests folders.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import Router, RouterScores, load_router, register
from .runtime import OnnxRouter, pair_strong_win

EPS = 1e-4


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(q, np.float64), EPS, 1 - EPS)
    return np.log(q / (1 - q))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def prior_logits(router: Router, emb: np.ndarray, models: list[str]) -> np.ndarray:
    """(n, len(models)) logits of ``router``'s predicted quality, 0 for models it lacks."""
    sc = router.score(emb)
    out = np.zeros((len(emb), len(models)))
    for j, m in enumerate(models):
        if m in sc.models:
            out[:, j] = _logit(sc.quality[:, sc.models.index(m)])
    return out


@register("adapted")
class AdaptedRouter(OnnxRouter):
    """Serve time: the base router's logits, scaled by ``alpha``, plus the ONNX head's ``delta``."""

    def __init__(self, path: str | Path, meta: dict[str, Any], threads: int = 1) -> None:
        super().__init__(path, meta, threads)
        self.base = load_router(self.path / "base")
        self.alpha = np.asarray(meta["alpha"], np.float64)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        z = prior_logits(self.base, embeddings, self.models)
        return self.alpha[None, :] * z + self.run(embeddings)["delta"].astype(np.float64)

    def score(self, embeddings: np.ndarray) -> RouterScores:
        q = _sigmoid(self.logits(embeddings)).astype(np.float32)
        cols = self._pair_cols()
        sw = pair_strong_win(q, *cols) if cols else None
        return RouterScores(self.models, q, sw, self.strong, self.weak)


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
        return Judged(self.emb[idx], self.models, self.scores[idx], pairs)


@dataclass
class Head:
    """``logit = alpha * z + beta + f @ w`` over ``models``; ``f`` from a PCA basis."""

    alpha: np.ndarray  # (m,)
    beta: np.ndarray  # (m,)
    w: np.ndarray  # (d, m)

    @classmethod
    def identity(cls, m: int, d: int) -> Head:
        return cls(np.ones(m), np.zeros(m), np.zeros((d, m)))

    def logits(self, z: np.ndarray, f: np.ndarray) -> np.ndarray:
        return self.alpha[None, :] * z + self.beta[None, :] + f @ self.w


@dataclass
class Basis:
    """Domain PCA: ``f(x) = (x - mean) @ comp / scale``."""

    mean: np.ndarray
    comp: np.ndarray  # (dim, d)
    scale: float

    @classmethod
    def fit(cls, emb: np.ndarray, dims: int) -> Basis:
        x = np.asarray(emb, np.float64)
        mu = x.mean(axis=0)
        d = int(max(0, min(dims, len(x) - 1, x.shape[1])))
        if d == 0:
            return cls(mu, np.zeros((x.shape[1], 0)), 1.0)
        _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
        comp = vt[:d].T
        comp *= np.sign(comp[np.abs(comp).argmax(axis=0), np.arange(d)])
        scale = float(s[0] / np.sqrt(max(len(x) - 1, 1))) or 1.0
        return cls(mu, comp, scale)

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        return (np.asarray(emb, np.float64) - self.mean) @ self.comp / self.scale


@dataclass
class Reg:
    """Prior precisions: on ``alpha - 1``, on ``beta`` and on ``w`` (``None``: w fixed at 0)."""

    alpha: float
    beta: float
    w: float | None

    def label(self) -> str:
        return "keep" if self.w is None and self.alpha == np.inf else f"a={self.alpha:g},b={self.beta:g},w={self.w}"


KEEP = Reg(np.inf, np.inf, None)
GRID = [KEEP, Reg(10.0, 10.0, None)] + [Reg(10.0, 10.0, lam) for lam in (100.0, 30.0, 10.0, 3.0, 1.0)]


def _loss_grad(
    theta: np.ndarray, z: np.ndarray, f: np.ndarray, y: np.ndarray, pairs: np.ndarray, reg: Reg
) -> tuple[float, np.ndarray]:
    n, m = z.shape
    d = f.shape[1] if reg.w is not None else 0
    alpha, beta = theta[:m], theta[m : 2 * m]
    w = theta[2 * m :].reshape(d, m) if d else np.zeros((0, m))
    logits = alpha[None, :] * z + beta[None, :] + (f @ w if d else 0.0)
    obs = np.isfinite(y)
    yy = np.where(obs, y, 0.0)
    p = _sigmoid(logits)
    loss = -np.sum(np.where(obs, yy * np.log(np.clip(p, 1e-12, 1)) + (1 - yy) * np.log(np.clip(1 - p, 1e-12, 1)), 0))
    dl = np.where(obs, p - yy, 0.0)
    if len(pairs):
        r, a, b, t = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2].astype(int), pairs[:, 3]
        pd = _sigmoid(logits[r, a] - logits[r, b])
        loss -= np.sum(t * np.log(np.clip(pd, 1e-12, 1)) + (1 - t) * np.log(np.clip(1 - pd, 1e-12, 1)))
        np.add.at(dl, (r, a), pd - t)
        np.add.at(dl, (r, b), t - pd)
    loss += reg.alpha * np.sum((alpha - 1) ** 2) + reg.beta * np.sum(beta**2)
    g_alpha = (dl * z).sum(0) + 2 * reg.alpha * (alpha - 1)
    g_beta = dl.sum(0) + 2 * reg.beta * beta
    parts = [g_alpha, g_beta]
    if d:
        loss += reg.w * np.sum(w**2)  # type: ignore[operator]
        parts.append((f.T @ dl + 2 * reg.w * w).ravel())  # type: ignore[operator]
    return float(loss), np.concatenate(parts)


def fit_head(z: np.ndarray, f: np.ndarray, judged: Judged, reg: Reg) -> Head:
    """MAP head under ``reg`` (L-BFGS); ``KEEP`` returns the identity (the deployed router)."""
    from scipy.optimize import minimize

    m, d = z.shape[1], f.shape[1]
    if reg.alpha == np.inf:
        return Head.identity(m, d)
    dw = d if reg.w is not None else 0
    theta0 = np.concatenate([np.ones(m), np.zeros(m), np.zeros(dw * m)])
    res = minimize(
        _loss_grad,
        theta0,
        args=(z, f, judged.scores, judged.pairs, reg),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 500},
    )
    th = res.x
    w = th[2 * m :].reshape(dw, m) if dw else np.zeros((d, m))
    return Head(th[:m], th[m : 2 * m], w)


def _nll_rows(logits: np.ndarray, judged: Judged) -> np.ndarray:
    """Per-row negative log-likelihood of ``judged``'s labels (scores and pairs of that row)."""
    y = judged.scores
    obs = np.isfinite(y)
    p = np.clip(_sigmoid(logits), 1e-6, 1 - 1e-6)
    yy = np.where(obs, y, 0.0)
    rows = -np.sum(np.where(obs, yy * np.log(p) + (1 - yy) * np.log(1 - p), 0.0), axis=1)
    if len(judged.pairs):
        pr = judged.pairs
        r, a, b, t = pr[:, 0].astype(int), pr[:, 1].astype(int), pr[:, 2].astype(int), pr[:, 3]
        pd = np.clip(_sigmoid(logits[r, a] - logits[r, b]), 1e-6, 1 - 1e-6)
        np.add.at(rows, r, -(t * np.log(pd) + (1 - t) * np.log(1 - pd)))
    return rows


def select_reg(
    z: np.ndarray, f: np.ndarray, judged: Judged, grid: list[Reg] = GRID, folds: int = 5, seed: int = 0
) -> tuple[Reg, list[dict[str, Any]]]:
    """The grid entry with the lowest k-fold held-out NLL (ties and near-ties go to the
    simpler entry: a candidate must beat ``keep`` by more than one standard error)."""
    n = len(judged)
    if n < 2 * folds:
        return KEEP, [{"reg": KEEP.label(), "why": f"{n} judged rows < {2 * folds}"}]
    part = np.random.default_rng(seed).permutation(n) % folds
    rows = []
    for reg in grid:
        per_row = np.zeros(n)
        for k in range(folds):
            tr, te = np.flatnonzero(part != k), np.flatnonzero(part == k)
            head = fit_head(z[tr], f[tr], judged.take(tr), reg)
            # per-row losses give the standard error of the difference to "keep"
            per_row[te] = _nll_rows(head.logits(z[te], f[te]), judged.take(te))
        rows.append({"reg": reg.label(), "nll": per_row})
    base = rows[0]["nll"]
    best = 0
    for i, r in enumerate(rows[1:], 1):
        diff = base - r["nll"]
        se = diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
        r["gain_vs_keep"] = float(diff.mean())
        r["se"] = float(se)
        if diff.mean() > se and r["nll"].mean() < rows[best]["nll"].mean():
            best = i
    table = [
        {
            "reg": r["reg"],
            "cv_nll": float(r["nll"].mean()),
            **{k: v for k, v in r.items() if k in ("gain_vs_keep", "se")},
        }
        for r in rows
    ]
    return grid[best], table


# ------------------------------------------------------------------------- the artifact
def _flatten(router: Router, models: list[str]) -> tuple[Path | None, np.ndarray, np.ndarray, np.ndarray]:
    """(base folder, alpha, W (dim, m), b) of ``router`` as a head over its own base, in ``models``."""
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
    return None, np.ones(m), None, np.zeros(m)  # type: ignore[return-value]


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
    models = list(dict.fromkeys(list(base.models) + list(judged.models)))
    judged = _widen(judged, models)
    dom = judged.emb if domain_emb is None or not len(domain_emb) else np.vstack([judged.emb, domain_emb])
    basis = Basis.fit(dom, dims)
    z = prior_logits(base, judged.emb, models)
    f = basis(judged.emb)
    reg, cv = select_reg(z, f, judged, grid, seed=seed)
    head = fit_head(z, f, judged, reg)
    # fold the PCA into one (dim, m) matrix: f @ w = x @ (comp w / scale) - mean @ (comp w / scale)
    w_eff = basis.comp @ head.w / basis.scale
    b_eff = head.beta - basis.mean @ w_eff
    root, a0, w0, b0 = _flatten(base, models)
    if root is None:
        alpha, w_all, b_all, src = head.alpha, w_eff, b_eff, Path(base_dir)
    else:  # alpha1 * (a0 z0 + x w0 + b0) + x w1 + b1
        alpha = head.alpha * a0
        w_all = w0 * head.alpha[None, :] + w_eff
        b_all = b0 * head.alpha + b_eff
        src = root
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out / "base")
    _save_head(out, w_all, b_all)
    meta = _meta(base, models, alpha, judged, reg, cv, basis, info)
    write_meta(out, meta)
    router = load_router(out)
    meta["calibration"] = calibration_of(router.score(dom))
    write_meta(out, meta)
    return meta


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
    return Judged(judged.emb, models, y, pairs)


def _meta(
    base: Router, models: list[str], alpha: np.ndarray, judged: Judged, reg: Reg, cv: list, basis: Basis, info: Any
) -> dict[str, Any]:
    bm = base.meta
    strong, weak = bm.get("strong"), bm.get("weak")
    if not (strong in models and weak in models):
        strong = weak = None
    return {
        "kind": "adapted",
        "version": 1,
        "models": models,
        "strong": strong,
        "weak": weak,
        "encoder": bm.get("encoder"),
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
