"""Retraining twice: what a second ``retrain`` learns, on ``learn-curve``'s splits.

``retrain`` reads every labelled request in its window again, so once an adapted router is
published, the rows it learnt from come back next time. This benchmark compares, per setup of
``bench.adapt_variants`` (the universal prior trained without the target, then adapted to it):

- ``first``: one adaptation on the first ``k1`` judged stream rows (the first retrain);
- ``again, no ids``: that router adapted again with the first ``k2`` rows, which carry no ids, so
  it is corrected on top with all of them (what every second retrain did before rows had ids);
- ``again``: the same with the rows' ids: every row it learnt from is back, so ``adapt`` refits
  from the original base with all ``k2`` (``routers.adapt.rows_to_fit``);
- ``once``: one adaptation on the first ``k2`` rows (what ``learn-curve`` measures);
- ``window``: adapted again with rows ``k1 / 2`` to ``k2`` only (a ``--since`` window that
  dropped the oldest): corrected on top with the ``k2 - k1`` rows it has not seen.

APGR of the setup's pair on the evaluation half, mean and sd over seeds.

Usage: ``python -m bench.retrain_twice [--setups mmlu-math,llmr-math-qwen,arc,llmr-math]
[--k1 200 --k2 400] [--seeds 0-7] [--json bench/results/retrain_twice.json]`` (about 4 minutes
on 2 cores once ``bench.adapt_variants``' priors and embeddings are cached).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import adapt_variants as V
from routers import adapt as A
from routers.base import load_router
from routers.learncurve import judged_rows, stream_eval_split
from routers.learning_report import PRIOR_FOLDS, prior_without

FOLD = {
    "mmlu-math": "prior-mmlu-math",
    "arc": "prior-arc",
    "llmr-math": "prior-llmrouter-math",
    "llmr-math-qwen": "prior-llmrouter-math",
}
WAYS = ("first", "again, no ids", "again", "once", "window")


def _rows(s: V.Setup, idx: np.ndarray, ids: bool = True) -> A.Judged:
    j = judged_rows(s.table, s.emb, idx)
    return replace(j, ids=[str(i) for i in idx]) if ids else j


def _apgr(s: V.Setup, path: Path, ev: np.ndarray) -> float:
    q = A.prior_quality(load_router(path), s.emb[ev], s.models)
    return V.apgr(s, ev, np.clip(q, 0.0, 1.0))


def one_seed(s: V.Setup, base: Path, seed: int, k1: int, k2: int) -> dict[str, float]:
    st, ev = stream_eval_split(len(s.table), seed)
    k2 = min(k2, len(st))
    dom = s.emb[st]
    with tempfile.TemporaryDirectory(prefix="retrain-twice-") as tmp:
        d = Path(tmp)
        fits = {
            "first": (base, _rows(s, st[:k1])),
            "again, no ids": (d / "first", _rows(s, st[:k2], ids=False)),
            "again": (d / "first", _rows(s, st[:k2])),
            "once": (base, _rows(s, st[:k2])),
            "window": (d / "first", _rows(s, st[k1 // 2 : k2])),
        }
        for way, (src, rows) in fits.items():  # "first" is written before the others read it
            A.adapt(src, rows, d / way, domain_emb=dom, seed=seed)
        return {way: _apgr(s, d / way, ev) for way in WAYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default="mmlu-math,llmr-math-qwen,arc,llmr-math")
    ap.add_argument("--k1", type=int, default=200)
    ap.add_argument("--k2", type=int, default=400)
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--json", default="bench/results/retrain_twice.json")
    args = ap.parse_args()
    seeds = V._seeds(args.seeds)
    out: dict[str, Any] = {"k1": args.k1, "k2": args.k2, "seeds": seeds, "setups": {}}
    for name in args.setups.split(","):
        s = V.load_setup(name)
        fold, recipe = PRIOR_FOLDS[FOLD[name]]
        base = prior_without(fold, recipe=recipe)
        runs = [one_seed(s, base, seed, args.k1, args.k2) for seed in seeds]
        res = {
            w: {"mean": float(np.mean([r[w] for r in runs])), "sd": float(np.std([r[w] for r in runs], ddof=1))}
            for w in WAYS
        }
        out["setups"][name] = res
        print(name, "  ".join(f"{w}: {v['mean']:.3f}±{v['sd']:.3f}" for w, v in res.items()), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
