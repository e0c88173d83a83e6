"""Leave-one-dataset-out learning curves for ``docs/learning.md`` (one command)::

    SHUNTER_DATA_DIR=../shared/data .venv/bin/python -m routers.learning_report [--seeds 0,1,2] [--only NAME]

For each setup a router is trained **without** a data set (the shipped recipe of its family),
then ``routers.learncurve.learn_curve`` adapts it to that data set: seeded stream/evaluation
halves, the first k stream rows judged, APGR (pairs) or AIQ (many models) on the evaluation
half. Writes ``bench/results/learning_curves.json`` and ``docs/img/learn-<setup>.png``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .data import load_table, shared_data_dir
from .learncurve import learn_curve, plot_curve
from .train import train_router

ROOT = Path(__file__).resolve().parent.parent
MATH = (
    "elementary_mathematics",
    "high_school_mathematics",
    "college_mathematics",
    "abstract_algebra",
    "high_school_statistics",
)
BUDGETS = [0, 50, 100, 200, 400]


def _mmlu(math: bool) -> list[Path]:
    d = shared_data_dir() / "routellm-mmlu"
    return [f for f in sorted(d.glob("mmlu_*.csv")) if (f.stem.removeprefix("mmlu_") in MATH) == math]


def _rb(names: tuple[str, ...]) -> list[Path]:
    return [shared_data_dir() / "routerbench" / f"{n}_train.csv" for n in names]


# name -> (family, train format, train files, target format, target files, description)
SETUPS: dict[str, tuple[str, str, Any, str, Any, str]] = {
    "mmlu-math-knn": (
        "knn",
        "routellm",
        lambda: _mmlu(False),
        "routellm",
        lambda: _mmlu(True),
        "kNN pair router (GPT-4 vs Mixtral) trained on MMLU without its 5 math subjects, adapting to them",
    ),
    "mmlu-math-mf": (
        "mf",
        "routellm",
        lambda: _mmlu(False),
        "routellm",
        lambda: _mmlu(True),
        "MF pair router (GPT-4 vs Mixtral) trained on MMLU without its 5 math subjects, adapting to them",
    ),
    "rb-winogrande-cost": (
        "cost",
        "routerbench",
        lambda: _rb(("arc_challenge", "mbpp")),
        "routerbench",
        lambda: _rb(("winograde",)),
        "11-model quality heads (CARROT) trained on RouterBench ARC+MBPP, adapting to Winogrande",
    ),
    "rb-mbpp-cluster": (
        "cluster",
        "routerbench",
        lambda: _rb(("arc_challenge", "winograde")),
        "routerbench",
        lambda: _rb(("mbpp",)),
        "11-model cluster router (UniRoute) trained on RouterBench ARC+Winogrande, adapting to MBPP",
    ),
}


def run_setup(name: str, seeds: list[int], work: Path, log=print) -> dict[str, Any]:
    family, tfmt, tfiles, dfmt, dfiles, desc = SETUPS[name]
    base = work / name
    train_router(family, load_table(tfiles(), tfmt), base, seed=0)
    runs = []
    for s in seeds:
        log(f"{name} seed {s}")
        runs.append(learn_curve(base, dfiles(), dfmt, BUDGETS, seed=s, log=log))
    vals = np.array([r["values"] for r in runs])
    return {
        "description": desc,
        "family": family,
        "metric": runs[0]["metric"],
        "budgets": BUDGETS,
        "mean": vals.mean(0).round(4).tolist(),
        "sd": vals.std(0, ddof=1).round(4).tolist() if len(seeds) > 1 else None,
        "baseline_random": float(np.mean([r["baseline_random"] for r in runs])),
        "rows": runs[0]["rows"],
        "seeds": {str(s): r["values"] for s, r in zip(seeds, runs)},
    }


def main(
    seeds: str = typer.Option("0,1,2", "--seeds"),
    only: list[str] | None = typer.Option(None, "--only"),
    out: Path = typer.Option(ROOT / "bench/results/learning_curves.json", "--out"),
    img: Path = typer.Option(ROOT / "docs/img", "--img"),
) -> None:
    ss = [int(s) for s in seeds.split(",")]
    results = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="learning-report-") as tmp:
        for name in SETUPS:
            if only and name not in only:
                continue
            res = run_setup(name, ss, Path(tmp), log=lambda s: typer.echo(s, err=True))
            results[name] = res
            plot_curve(
                {"metric": res["metric"], "budgets": res["budgets"], "values": res["mean"], **res},
                img / f"learn-{name}.png",
                res["description"] + f" (mean of {len(ss)} seeds)",
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2) + "\n")
            typer.echo(f"{name}: {res['metric']} {res['mean']} (sd {res['sd']})", err=True)


if __name__ == "__main__":
    typer.run(main)
