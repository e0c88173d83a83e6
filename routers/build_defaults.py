"""Build the shipped default routers under ``routers/artifacts/`` (one command)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m routers.build_defaults [--only NAME ...]

Reads the public outcome data from ``routers.data.shared_data_dir()`` (``../shared/data``).
Each recipe is first trained on the training split (seed 0) and evaluated on the held-out
rest, for each split of its data (MMLU: 20% of rows, and 20% of whole subjects; RouterBench:
20% of sample_ids); then the shipped artifact is refit with the same recipe on **all** rows
(more data generalises better to unseen prompts). Its router.json ``metrics.holdout``
records the held-out numbers of the 80% fit on whole groups and ``metrics.holdout_row`` on
rows (``"recipe": "fit on the 80% split, scored on the held-out 20%"``); ``metrics.train``
is the refit's. ``docs/eval.md`` (``routers.eval_report``) cross-validates the same recipes.

- ``mf-mmlu``: RouteLLM MF on gpt-4-1106-preview vs Mixtral-8x7B (routellm-mmlu);
- ``knn-mmlu``: kNN smoothed towards linear heads on the same pair (the best pair router on
  held-out MMLU rows);
- ``cascade-mmlu``: Hybrid-LLM classifier on the same pair;
- ``cluster-routerbench``: UniRoute clusters over RouterBench's 11 models;
- ``cost-routerbench``: CARROT per-model quality heads over the 11 models;
- ``answer-check``: FrugalGPT answer checker on RouterBench responses;
- ``prior``: the universal prior (``routers.prior``) on every data set in ``../shared/data``
  at once. It has no 80/20 check: its router.json ``metrics.lodo`` holds the
  leave-one-data-set-out folds of ``routers.lodo`` for the same recipe (each fold trained on
  the rest of the data), and its calibration is on the reference mix (``reference_mix``: up
  to 1,000 prompts of each data set, scored on both encoders). It is trained on both encoder
  tiers' embeddings (``encoder="both"``), so one artifact serves fast, accurate and tiered
  policies; ``metrics.lodo`` scores the held-out folds on the fast tier's embeddings.
- ``prior-fast``: the same recipe on the fast tier's embeddings alone (``encoder="fast"``), the
  default policy's router: leaving one data set out it ranks held-out prompts better on the fast
  tier than ``prior`` does there (mean GPT-4 / Mixtral APGR 0.534 against 0.518; the MiniLM ridge
  baseline 0.528), because none of its capacity goes to MiniLM's space.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from .data import default_paths, load_table
from .runtime import write_meta

ARTIFACTS = Path(__file__).parent / "artifacts"
HOLDOUT = 0.2
# Held-out splits recorded in router.json: (split, metrics key) per data format.
SPLITS = {
    "routellm": [("group", "holdout"), ("row", "holdout_row")],
    "routerbench": [("group", "holdout")],
    "mixed": [],  # checked by leaving each data set / task out instead (routers.lodo)
}

DEFAULTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mf-mmlu": ("mf", "routellm", {}),
    "knn-mmlu": ("knn", "routellm", {}),
    "cascade-mmlu": ("cascade", "routellm", {}),
    "cluster-routerbench": ("cluster", "routerbench", {}),
    "cost-routerbench": ("cost", "routerbench", {}),
    "answer-check": ("answer-check", "routerbench", {}),
    "prior": ("prior", "mixed", {"encoder": "both"}),
    "prior-fast": ("prior", "mixed", {"encoder": "fast"}),
}


def build(only: list[str] | None = None, out: Path = ARTIFACTS) -> None:
    from rich.console import Console

    from .train import train_router

    con = Console(stderr=True)
    tables: dict[str, Any] = {}
    for name, (kind, fmt, opts) in DEFAULTS.items():
        if only and name not in only:
            continue
        if fmt not in tables:
            tables[fmt] = load_table(default_paths(fmt), fmt)
        con.print(f"[bold]{name}[/]: {kind} on {fmt}")
        held_out: dict[str, Any] = {}
        for split, key in SPLITS[fmt]:
            with tempfile.TemporaryDirectory() as tmp:
                held, _ = train_router(
                    kind,
                    tables[fmt],
                    Path(tmp),
                    holdout=HOLDOUT,
                    seed=0,
                    split=split,
                    progress=True,
                    log=con.print,
                    **opts,
                )
            held_out[key] = {**held["metrics"]["holdout"], "recipe": "fit on the 80% split, scored on the held-out 20%"}
        meta, _ = train_router(kind, tables[fmt], out / name, holdout=0.0, seed=0, log=con.print, **opts)
        meta["metrics"].update(held_out)
        if fmt == "mixed":
            meta["metrics"]["lodo"] = _lodo_metrics(opts, con.print)
        write_meta(out / name, meta)
        for key, h in held_out.items():
            con.print(key)
            con.print_json(data={k: v for k, v in h.items() if k in ("pair", "many", "auc")})


def _lodo_metrics(opts: dict[str, Any], log: Any) -> dict[str, Any]:
    """Each ``routers.lodo`` fold for the same recipe: held-out APGR / AIQ of the prior."""
    from .lodo import run

    out = {}
    for r in run(log=lambda s: log(s), baselines=False, **opts):
        p = r["prior"]
        out[r["fold"]] = {
            "rows": p["rows"],
            **({"apgr": round(p["pair"]["apgr"], 4)} if "pair" in p else {}),
            **({"aiq": round(p["many"]["aiq"], 4)} if "many" in p else {}),
            **({"gap_kept_at": {k: round(v, 4) for k, v in p["pair"]["pgr_at"].items()}} if "pair" in p else {}),
        }
    scored = "the fast tier's embeddings" if opts.get("encoder") in ("both", "fast") else "MiniLM embeddings"
    return {
        "recipe": f"trained on every other data set / task, scored on the held-out one ({scored})",
        "folds": out,
    }


def main(only: list[str] | None = typer.Option(None, "--only", help="artifact name(s) to rebuild")) -> None:
    build(only)


if __name__ == "__main__":
    typer.run(main)
