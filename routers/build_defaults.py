"""Build the shipped default routers under ``routers/artifacts/`` (one command)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m routers.build_defaults [--only NAME ...]

Reads the public outcome data from ``routers.data.shared_data_dir()`` (``../shared/data``).
Each recipe is first trained on the training split (MMLU: 80% of subjects; RouterBench: 80%
of sample_ids; seed 0) and evaluated on the held-out rest; then the shipped artifact is refit
with the same recipe on **all** rows (more data generalises better to unseen prompts), and
its router.json ``metrics.holdout`` records the held-out numbers of the 80% fit (``"recipe":
"fit on the 80% split, scored on the held-out 20%"``); ``metrics.train`` is the refit's.
These equal the seed-0 column of ``docs/eval.md``.

- ``mf-mmlu``: RouteLLM MF on gpt-4-1106-preview vs Mixtral-8x7B (routellm-mmlu);
- ``cascade-mmlu``: Hybrid-LLM classifier on the same pair;
- ``cluster-routerbench``: UniRoute clusters over RouterBench's 11 models;
- ``cost-routerbench``: CARROT per-model quality heads over the 11 models;
- ``answer-check``: FrugalGPT answer checker on RouterBench responses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, List, Optional

import typer

from .data import default_paths, load_table
from .runtime import write_meta

ARTIFACTS = Path(__file__).parent / "artifacts"
HOLDOUT = 0.2

DEFAULTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mf-mmlu": ("mf", "routellm", {}),
    "cascade-mmlu": ("cascade", "routellm", {}),
    "cluster-routerbench": ("cluster", "routerbench", {}),
    "cost-routerbench": ("cost", "routerbench", {}),
    "answer-check": ("answer-check", "routerbench", {}),
}


def build(only: Optional[List[str]] = None, out: Path = ARTIFACTS) -> None:
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
        with tempfile.TemporaryDirectory() as tmp:
            held, _ = train_router(kind, tables[fmt], Path(tmp), holdout=HOLDOUT, seed=0, progress=True, log=con.print, **opts)
        holdout = {**held["metrics"]["holdout"], "recipe": "fit on the 80% split, scored on the held-out 20%"}
        meta, _ = train_router(kind, tables[fmt], out / name, holdout=0.0, seed=0, log=con.print, **opts)
        meta["metrics"]["holdout"] = holdout
        write_meta(out / name, meta)
        con.print_json(data={k: v for k, v in holdout.items() if k in ("pair", "many", "auc")})


def main(only: Optional[List[str]] = typer.Option(None, "--only", help="artifact name(s) to rebuild")) -> None:
    build(only)


if __name__ == "__main__":
    typer.run(main)
