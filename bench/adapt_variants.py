"""Other ways to adapt a router to judged rows, side by side with ``routers.adapt`` on the same splits.

``shunter learn-curve`` measures the adaptation ``retrain`` ships. This benchmark asks whether
another recipe would learn faster from the same labels, on the leave-one-data-set-out setups of
``routers.learning_report`` (the universal prior trained without the target) plus a
math-word-problem pair that ``learn-curve`` cannot score by APGR: LLMRouter's math items
(``routers.lodo.is_math``) with its strongest model against a weak one (only the two chatqa models are weaker),
llama-3.3-nemotron-super-49b (0.63 correct) against mistral-7b-instruct-v0.3 (0.24).
``llmr-math-qwen`` is the same rows and prior with qwen2.5-7b-instruct (0.50) as the weak model:
a pair whose gain the labels can see (a plain ridge lifts it far more than the mistral pair).

``fast-mmlu-math-minilm`` is ``fast-mmlu-math`` (the default policy's router, ``prior-fast``,
trained without the math subjects) with the labels learnt through MiniLM's embeddings instead of
the static table's: the deployed router's predictions still come from the fast tier. It measures
what an adaptation head on MiniLM over a fast-tier base would gain (such a router would need both
embeddings at serve time; none is shipped).

Every method sees exactly what ``learn_curve`` gives ``adapt``: the deployed router's predicted
quality ``p``, the embeddings of the first ``k`` stream rows with their revealed outcomes, and the
stream half's embeddings (unlabelled); each is scored on the evaluation half by APGR of the pair.

- ``adapt``: ``routers.adapt``'s candidates chosen by 5-fold CV (what ``retrain`` does);
- ``adapt-damp``: ``adapt`` with four more candidates that keep the deployed router's ranking of
  a pair: its levels shifted by the labels' means, and ``(1 - blend) p + blend * mean(y)`` for
  blend 0.3, 0.5, 0.7 (whether uninformative labels re-rank the router only because nothing
  between "keep" and a noisy blend damps its errors);
- ``ridge``: one ridge regression per model (alpha 1) on the labels alone, no deployed router;
- ``blend``: a fixed ``0.5 p + 0.5 r(x)``, ``r`` the ridge refit of the labels (precision 3);
- ``residual``: ``p + r(x)``, ``r`` a ridge (precision 3) on the residuals ``y - p``: the
  posterior mean of a linear correction under a Gaussian prior centred on the deployed router;
- ``stack``: ``a p + b r(x)``, ``(a, b)`` fitted on out-of-fold refits (stacked generalisation);
- ``irt``: ``sigmoid(b_m + c logit p_m + v . x)``: one shared difficulty direction ``v`` for
  every model, fitted by L2-penalised logistic likelihood on all models' outcomes at once;
- ``lexical``: ``residual`` with word features next to the embedding: ``[x, tfidf(prompt)]``,
  the TF-IDF of word 1-2-grams (sublinear, seen in at least 2 stream prompts) fitted on the
  stream half's prompts (unlabelled). It asks whether the words carry signal MiniLM's mean-pooled
  embedding loses; a router serves from embeddings alone, so it is a measurement, not a candidate.

Usage: ``python -m bench.adapt_variants [--setups mmlu-math,llmr-math] [--seeds 0-7]
[--json bench/results/adapt_variants.json]``; a run of some ``--methods`` updates those
methods in an existing ``--json`` and keeps the others (about 2 minutes a setup on 2 cores with cached
embeddings and priors; the first run trains each prior without its target, about 30 s each).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from routers import adapt as A
from routers.base import load_router
from routers.data import RoutingTable, load_table
from routers.evaluate import pair_metrics
from routers.learncurve import encoder_of, judged_rows, stream_eval_split
from routers.learning_report import MATH_TARGET, PRIOR_FOLDS, _mmlu, llmrouter_math, prior_without, rb_as_routellm
from routers.train import table_embeddings

LLMR_PAIR = ("llama-3.3-nemotron-super-49b-v1", "mistral-7b-instruct-v0.3")
LLMR_QWEN_PAIR = ("llama-3.3-nemotron-super-49b-v1", "qwen2.5-7b-instruct")
WORK = Path("/tmp") / "shunter-adapt-variants"


@dataclass
class Setup:
    name: str
    table: RoutingTable
    emb: np.ndarray
    models: list[str]
    p: np.ndarray  # deployed router's quality, every row, in ``models``
    pair: tuple[str, str]


def _llmr_math(pair: tuple[str, str]) -> tuple[Any, ...]:
    """A setup entry for LLMRouter's math items scored on ``pair``, the prior trained without them."""
    return (*PRIOR_FOLDS["prior-llmrouter-math"], lambda: [llmrouter_math(WORK / "llmr")], "llmrouter", pair)


def load_setup(name: str) -> Setup:
    """The prior trained without the target, the target's rows and the pair APGR is taken on.
    A ``-minilm`` suffix keeps the setup's predictions but learns through MiniLM's embeddings."""
    fold, recipe, files, fmt, pair = {
        "mmlu-math": (*PRIOR_FOLDS["prior-mmlu-math"], lambda: _mmlu(MATH_TARGET, True), "routellm", None),
        "fast-mmlu-math": (*PRIOR_FOLDS["prior-fast-mmlu-math"], lambda: _mmlu(MATH_TARGET, True), "routellm", None),
        "arc": (*PRIOR_FOLDS["prior-arc"], lambda: [rb_as_routellm("arc_challenge", WORK)], "routellm", None),
        "winogrande": (
            "RouterBench winogrande",
            "prior",
            lambda: [rb_as_routellm("winograde", WORK)],
            "routellm",
            None,
        ),
        "llmr-math": _llmr_math(LLMR_PAIR),
        "llmr-math-qwen": _llmr_math(LLMR_QWEN_PAIR),
    }[name.removesuffix("-minilm")]
    base = load_router(prior_without(fold, recipe=recipe))
    table = load_table(files(), fmt)
    emb = table_embeddings(table, encoder_of(base.meta))
    models = list(dict.fromkeys(list(base.models) + list(table.models)))
    p = A.prior_quality(base, emb, models)
    if name.endswith("-minilm"):
        emb = table_embeddings(table, encoder_of({}))  # encoder_of({}): MiniLM
    return Setup(name, table, emb, models, p, pair or (base.meta["strong"], base.meta["weak"]))


def apgr(s: Setup, rows: np.ndarray, q: np.ndarray) -> float:
    ms, mw = s.models.index(s.pair[0]), s.models.index(s.pair[1])
    ts, tw = s.table.models.index(s.pair[0]), s.table.models.index(s.pair[1])
    qs, qw = np.nan_to_num(s.table.quality[rows, ts]), np.nan_to_num(s.table.quality[rows, tw])
    return float(pair_metrics(0.5 + (q[:, ms] - q[:, mw]) / 2, qs, qw)["apgr"])


# A method: (setup, judged rows, their indices, stream indices, eval indices, seed) -> eval quality.
Method = Callable[[Setup, A.Judged, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def m_adapt(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    basis = A.Basis.fit(np.vstack([jd.emb, s.emb[st]]), 32)
    reg, _ = A.select_reg(s.p[lab], basis, jd, A.GRID, seed=seed)
    return A.fit_linear(s.p[lab], basis, jd, reg).predict(s.p[ev], s.emb[ev])


DAMP_GRID = [*A.GRID, A.Reg(1e9, c=1e9), *[A.Reg(1e9, blend=om) for om in (0.3, 0.5, 0.7)]]


def m_adapt_damp(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    basis = A.Basis.fit(np.vstack([jd.emb, s.emb[st]]), 32)
    reg, _ = A.select_reg(s.p[lab], basis, jd, DAMP_GRID, seed=seed)
    return A.fit_linear(s.p[lab], basis, jd, reg).predict(s.p[ev], s.emb[ev])


def _refit(jd: A.Judged, lam: float, x: np.ndarray) -> np.ndarray:
    w, b, _ = A.fit_refit(jd.emb, jd, lam)
    return np.asarray(x, np.float64) @ w + b


def m_ridge(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    return _refit(jd, 1.0, s.emb[ev])


def m_blend(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    return A.fit_linear(s.p[lab], A.Basis.fit(jd.emb, 0), jd, A.Reg(3.0, blend=0.5)).predict(s.p[ev], s.emb[ev])


def m_residual(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    res = A.Judged(jd.emb, jd.models, jd.scores - s.p[lab])
    return s.p[ev] + _refit(res, 3.0, s.emb[ev])


def m_stack(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    n, p = len(jd), s.p[lab]
    part = np.random.default_rng(seed).permutation(n) % 5
    oof = np.zeros_like(p)
    for k in range(5):
        tr, te = np.flatnonzero(part != k), np.flatnonzero(part == k)
        oof[te] = _refit(jd.take(tr), 3.0, jd.emb[te])
    ms, mw = s.models.index(s.pair[0]), s.models.index(s.pair[1])
    dy = jd.scores[:, ms] - jd.scores[:, mw]
    x = np.stack([p[:, ms] - p[:, mw], oof[:, ms] - oof[:, mw], np.ones(n)], 1)
    a, b, _ = np.clip(np.linalg.lstsq(x, dy, rcond=None)[0], 0.0, None)
    return a * s.p[ev] + b * _refit(jd, 3.0, s.emb[ev])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


def m_irt(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    from scipy.optimize import minimize

    y, x = jd.scores, jd.emb.astype(np.float64)
    rows, cols = np.nonzero(np.isfinite(y))
    t, xr, off = y[rows, cols], x[rows], _logit(s.p[lab])[rows, cols]
    m, d = y.shape[1], x.shape[1]

    def loss(th: np.ndarray) -> tuple[float, np.ndarray]:
        b, v, c = th[:m], th[m:-1], th[-1]
        q = 1 / (1 + np.exp(-(b[cols] + xr @ v + c * off)))
        r = q - t
        nll = -np.sum(t * np.log(q + 1e-12) + (1 - t) * np.log(1 - q + 1e-12))
        value = nll + 0.5 * v @ v + 0.05 * (c - 1) ** 2  # v ~ N(0, 1), c ~ N(1, 10)
        grad = np.concatenate([np.bincount(cols, r, minlength=m), xr.T @ r + v, [r @ off + 0.1 * (c - 1)]])
        return float(value), grad

    th0 = np.zeros(m + d + 1)
    th0[-1] = 1.0
    th = minimize(loss, th0, jac=True, method="L-BFGS-B", options={"maxiter": 200}).x
    z = th[:m][None, :] + (s.emb[ev] @ th[m:-1])[:, None] + th[-1] * _logit(s.p[ev])
    return np.asarray(1 / (1 + np.exp(-z)))


def m_lexical(s: Setup, jd: A.Judged, lab: np.ndarray, st: np.ndarray, ev: np.ndarray, seed: int) -> np.ndarray:
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    texts = s.table.prompts
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit([texts[i] for i in st])

    def feats(rows: np.ndarray) -> Any:
        return hstack([vec.transform([texts[i] for i in rows]), csr_matrix(s.emb[rows])]).tocsr()

    xl, xe, y = feats(lab), feats(ev), jd.scores - s.p[lab]
    out = s.p[ev].copy()
    for j in range(y.shape[1]):
        ok = np.isfinite(y[:, j])
        if ok.sum() >= 5:
            out[:, j] += Ridge(alpha=3.0).fit(xl[ok], y[ok, j]).predict(xe)
    return out


METHODS: dict[str, Method] = {
    "adapt": m_adapt,
    "adapt-damp": m_adapt_damp,
    "ridge": m_ridge,
    "blend": m_blend,
    "residual": m_residual,
    "stack": m_stack,
    "irt": m_irt,
    "lexical": m_lexical,
}


def curve(s: Setup, method: Method, seeds: list[int], budgets: list[int]) -> np.ndarray:
    """(seeds, budgets) APGR on ``learn_curve``'s splits; budget 0 is the deployed router."""
    out = np.zeros((len(seeds), len(budgets)))
    for i, seed in enumerate(seeds):
        st, ev = stream_eval_split(len(s.table), seed)
        for j, k in enumerate(budgets):
            k = min(k, len(st))
            if k == 0:
                q = s.p[ev]
            else:
                jd = A._widen(judged_rows(s.table, s.emb, st[:k]), s.models)
                q = method(s, jd, st[:k], st, ev, seed)
            out[i, j] = apgr(s, ev, np.clip(q, 0.0, 1.0))
    return out


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        lo, hi = spec.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(v) for v in spec.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--setups", default="mmlu-math,fast-mmlu-math,fast-mmlu-math-minilm,llmr-math,llmr-math-qwen,arc,winogrande"
    )
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--budgets", default="0,50,100,200,400")
    ap.add_argument("--json", default="bench/results/adapt_variants.json")
    args = ap.parse_args()
    seeds, budgets = _seeds(args.seeds), [int(b) for b in args.budgets.split(",")]
    result: dict[str, Any] = {"seeds": seeds, "budgets": budgets, "setups": {}}
    old = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    if old.get("seeds") == seeds and old.get("budgets") == budgets:
        result = old  # same splits: update the methods run now, keep the others
    for name in args.setups.split(","):
        s = load_setup(name)
        stream = len(s.table) // 2
        print(f"{name}: {len(s.table)} rows (stream {stream}), APGR of {s.pair[0]} vs {s.pair[1]}", flush=True)
        kept = result["setups"].get(name, {}).get("methods", {})
        res: dict[str, Any] = {"rows": len(s.table), "stream": stream, "pair": list(s.pair), "methods": kept}
        for mname in args.methods.split(","):
            v = curve(s, METHODS[mname], seeds, budgets)
            res["methods"][mname] = {"mean": v.mean(0).round(4).tolist(), "sd": v.std(0, ddof=1).round(4).tolist()}
            cells = "  ".join(f"{m:.3f}±{sd:.3f}" for m, sd in zip(v.mean(0), v.std(0, ddof=1)))
            print(f"  {mname:9s} {cells}", flush=True)
        result["setups"][name] = res
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
