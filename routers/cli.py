"""``shunter`` router commands: train, score, eval, calibrate, profile, learn-curve.

The gateway's typer app gains them with ``routers.cli.register(app)``; standalone:
``python -m routers.cli --help``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

ROUTER_KINDS = ("mf", "cluster", "cascade", "answer-check", "cost", "knn", "random", "prior")
FORMATS = ("routellm", "routerbench", "llmrouter", "outcomes", "mixed")
SPLITS = ("group", "row")  # routers.data.SPLITS (kept here so --help imports nothing heavy)

TRAIN_EXTRA = "from the repository root, .venv/bin/pip install -e '.[train]' (or pip install '.[train]')"
DATA_HELP = "outcome data: file(s) or folder(s) in the --format layout; repeat --data for several"
FORMAT_HELP = (
    "layout of --data: routellm (CSVs, a correct/incorrect column per model), routerbench (wide CSV: "
    "score, cost and response per model), llmrouter (JSON list of {question, scores} + models.json), "
    "outcomes (the gateway's JSONL outcome rows), mixed (any of those at once, e.g. all of ../shared/data, "
    "each one's layout detected); details in routers/data.py"
)
PROMPTS_HELP = (
    'JSONL, one {"id", "prompt"} or {"id", "messages": [OpenAI messages]} object per line '
    "(a .jsonl/.json file, or lines that start with '{'); any other file: one prompt per line"
)


def _read_prompts(path: Path) -> tuple[list[str], list[str]]:
    """ids and texts from JSONL (``{"id","prompt"}`` or ``{"id","messages"}``) or plain lines."""
    from .encoder import select_text

    ids, texts = [], []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        if path.suffix in (".jsonl", ".json") or line.lstrip().startswith("{"):
            row = json.loads(line)
            text = row.get("prompt")
            if text is None and "messages" in row:
                text = select_text(row["messages"])
            ids.append(row.get("id", i))
            texts.append(text or "")
        else:
            ids.append(i)
            texts.append(line)
    return ids, texts


def _check(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{name} must be one of {', '.join(allowed)}")
    return value


def train_cmd(
    router: str = typer.Option(..., "--router", help="family: " + ", ".join(ROUTER_KINDS)),
    data: list[Path] = typer.Option(..., "--data", help=DATA_HELP, metavar="<path>"),
    fmt: str = typer.Option(..., "--format", help=FORMAT_HELP),
    out: Path = typer.Option(..., "--out", help="artifact folder to write"),
    holdout: float = typer.Option(0.0, "--holdout", help="share held out for router.json metrics"),
    split: str = typer.Option("group", "--split", help="hold out whole groups (group) or rows (row)"),
    seed: int = typer.Option(0, "--seed", help="seed of the hold-out split and of training"),
    models: str | None = typer.Option(None, "--models", help="comma-separated subset of models"),
    opt: list[str] = typer.Option([], "--opt", help="family option key=value (e.g. k=24, hidden=64)"),
    encoder: str = typer.Option(
        "accurate", "--encoder", help="embeddings to train on: accurate (MiniLM), fast (static table), both (tiered)"
    ),
) -> None:
    """Train a router on outcome data and export router.onnx + router.json."""
    from rich.console import Console

    from .data import load_table
    from .train import train_router

    _check(router, ROUTER_KINDS, "--router")
    _check(fmt, FORMATS, "--format")
    _check(split, SPLITS, "--split")
    _check(encoder, ("accurate", "fast", "both"), "--encoder")
    console = Console(stderr=True)
    table = load_table(data, fmt)
    if models:
        table = table.select_models([m.strip() for m in models.split(",")])
    opts: dict[str, Any] = {}
    for kv in opt:
        k, _, v = kv.partition("=")
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    console.print(f"[bold]{router}[/]: {len(table)} prompts x {len(table.models)} models from {fmt}")
    # progress bars (count, ETA) while embedding (cached afterwards) and fitting
    with _needs_train_extra(f"train --router {router}"):
        meta, _ = train_router(
            router,
            table,
            out,
            holdout=holdout,
            seed=seed,
            split=split,
            progress=True,
            log=console.print,
            encoder=encoder,
            **opts,
        )
    console.print_json(json.dumps(meta.get("metrics", {})))


TRAIN_MODULES = ("torch", "sklearn", "matplotlib", "onnx", "sentence_transformers")


@contextmanager
def _needs_train_extra(what: str) -> Iterator[None]:
    """A training dependency missing from a serving install: one line naming the extra, no traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        if module not in TRAIN_MODULES:
            raise
        typer.echo(f"{what} needs {module}, from the train extra; install it {TRAIN_EXTRA}", err=True)
        raise typer.Exit(1) from None


def score_cmd(
    router: Path = typer.Option(..., "--router", help="artifact folder"),
    input: Path = typer.Option(..., "--input", help="prompts to score: " + PROMPTS_HELP),
    output: Path = typer.Option(..., "--output", help='JSONL of {"id", "scores", ["strong_win"]}'),
    batch: int = typer.Option(64, "--batch", help="prompts embedded and scored per call"),
    encoder: str = typer.Option(
        "accurate", "--encoder", help="fast (static table), accurate (MiniLM) or tiered (fast, MiniLM when close)"
    ),
    fast_router: Path | None = typer.Option(None, "--fast-router", help="tiered: router for the fast tier"),
    threshold: float = typer.Option(0.5, "--threshold", help="tiered: the threshold the margin is measured from"),
    band: float = typer.Option(0.05, "--band", help="tiered: re-score with MiniLM when the margin is below this"),
) -> None:
    """Score prompts through the serving path (the encoder tier + load_router ONNX)."""
    from .base import load_router
    from .encoders.tiered import TieredScorer

    _check(encoder, ("fast", "accurate", "tiered"), "--encoder")
    r = load_router(router)
    scorer = TieredScorer(encoder, r, load_router(fast_router) if fast_router else r, threshold, band)
    ids, texts = _read_prompts(input)
    with output.open("w") as f:
        for s in range(0, len(texts), batch):
            sc = scorer.score(texts[s : s + batch])
            for i in range(len(sc.quality)):
                row: dict[str, Any] = {
                    "id": ids[s + i],
                    "scores": {m: round(float(sc.quality[i, j]), 6) for j, m in enumerate(sc.models)},
                }
                if sc.strong_win is not None:
                    row["strong_win"] = round(float(sc.strong_win[i]), 6)
                f.write(json.dumps(row) + "\n")
    tiers = f" ({scorer.counts['fast']} decided by the fast tier, {scorer.counts['accurate']} by MiniLM)"
    typer.echo(f"wrote {len(texts)} rows to {output}" + (tiers if encoder != "accurate" else ""), err=True)


def eval_cmd(
    router: Path = typer.Option(..., "--router", help="artifact folder"),
    data: list[Path] = typer.Option(..., "--data", help=DATA_HELP, metavar="<path>"),
    fmt: str = typer.Option(..., "--format", help=FORMAT_HELP),
    holdout: float = typer.Option(0.0, "--holdout", help="evaluate only the held-out part of this split"),
    split: str = typer.Option("group", "--split", help="the held-out part is whole groups (group) or rows (row)"),
    seed: int = typer.Option(0, "--seed", help="seed of the hold-out split (use the one the router was trained with)"),
    plot: Path | None = typer.Option(None, "--plot", help="write a PNG"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    in_sample: bool = typer.Option(
        False, "--in-sample", help="score rows the router was trained on anyway (figures marked IN-SAMPLE)"
    ),
) -> None:
    """Evaluate a router (APGR/CPT on pairs, AIQ with costs) beside baselines.

    Refuses (exit 2) when most of the evaluated rows are rows the router was trained on,
    unless --in-sample is given.
    """
    from .report import evaluate_artifact, render

    _check(fmt, FORMATS, "--format")
    _check(split, SPLITS, "--split")
    # InSampleError and NoMetricError are ValueErrors: one red line and exit 2 (``_input_errors``)
    report = evaluate_artifact(
        router, data, fmt, holdout=holdout, seed=seed, split=split, progress=True, in_sample=in_sample
    )
    if as_json:
        typer.echo(json.dumps({k: v for k, v in report.items() if k != "curve"}, indent=2, default=float))
    else:
        render(report)
    if plot:
        from .evaluate import plot as do_plot

        with _needs_train_extra("--plot"):
            do_plot(report, str(plot))
        typer.echo(f"wrote {plot}", err=True)


def calibrate_cmd(
    router: Path = typer.Option(..., "--router", help="artifact folder"),
    strong_share: float | None = typer.Option(
        None, "--strong-share", help="pair: share of prompts (0..1) to send to the strong model"
    ),
    strong: str | None = typer.Option(None, "--strong", help="many-model router: the pair's strong model"),
    weak: str | None = typer.Option(None, "--weak", help="many-model router: the pair's weak model"),
    mean_cost: float | None = typer.Option(
        None, "--mean-cost", help="many models: target mean expected cost per request (USD) -> cost_weight"
    ),
    top_share: float | None = typer.Option(
        None, "--top-share", help="many models: target share (0..1) of the most expensive model -> cost_weight"
    ),
    models: str | None = typer.Option(None, "--models", help="many models: comma-separated candidates"),
    prompts: Path | None = typer.Option(
        None,
        "--prompts",
        help="pair: your traffic's prompts, to set the threshold on: "
        + PROMPTS_HELP
        + ". Without it: the router's stored calibration quantiles",
    ),
) -> None:
    """Calibrate a policy objective on a router's reference prompts.

    Pair: the strong_win threshold sending --strong-share of prompts to strong (any pair of a
    many-model router with --strong/--weak). Many models: the cost_weight meeting --mean-cost
    or --top-share.
    """
    from .base import load_router
    from .calibration import check_share

    for name, v in (("--strong-share", strong_share), ("--top-share", top_share)):
        if v is not None:
            try:
                check_share(v, name)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=name) from None
    given = [
        n
        for n, v in (("--strong-share", strong_share), ("--mean-cost", mean_cost), ("--top-share", top_share))
        if v is not None
    ]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --strong-share, --mean-cost, --top-share")
    r = load_router(router)
    try:
        if strong_share is not None:
            out = _calibrate_share(r, strong_share, strong, weak, prompts)
        else:
            from .calibration import cost_weight_for

            cands = [m.strip() for m in models.split(",")] if models else None
            out = cost_weight_for(r.meta, mean_cost=mean_cost, top_share=top_share, models=cands)
            out["source"] = "router.json calibration.quality_sample"
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps(out))


def _calibrate_share(r: Any, share: float, strong: str | None, weak: str | None, prompts: Path | None) -> dict:
    import numpy as np

    from .calibration import quantiles, strong_share_threshold, threshold_for_share
    from .encoder import Encoder

    if not prompts:
        t = strong_share_threshold(r.meta, share, strong, weak)
        return {"threshold": t, "strong_share": share, "source": "router.json calibration"}
    _, texts = _read_prompts(prompts)
    sc = r.score(Encoder.default().embed(texts))
    s, w = strong or sc.strong, weak or sc.weak
    if s is None or w is None:
        raise ValueError("this router has no strong/weak pair: name one with --strong and --weak")
    if (s, w) == (sc.strong, sc.weak) and sc.strong_win is not None:
        sw = np.asarray(sc.strong_win)
    else:
        js, jw = sc.models.index(s), sc.models.index(w)
        sw = np.clip(0.5 + 0.5 * (sc.quality[:, js] - sc.quality[:, jw]), 0, 1)
    t = threshold_for_share(quantiles(sw), share)
    return {"threshold": t, "strong_share": float((sw >= t).mean()), "prompts": len(texts)}


def profile_cmd(
    router: Path = typer.Option(..., "--router", help="cluster or prior router folder (updated in place)"),
    model: str = typer.Option(..., "--model", help="name of the model to add"),
    data: list[Path] = typer.Option(..., "--data", help=DATA_HELP, metavar="<path>"),
    fmt: str = typer.Option(..., "--format", help=FORMAT_HELP),
    column: str | None = typer.Option(None, "--column", help="model column in the data (default: --model)"),
) -> None:
    """Add a model to a cluster or prior router by profiling it on a small labelled set (no retraining)."""
    import numpy as np

    from .cluster import profile
    from .data import load_table
    from .embed_cache import embed_texts

    table = load_table(data, fmt)
    col = column or model
    if col not in table.models:
        raise typer.BadParameter(f"model column {col!r} not in data ({table.models})")
    j = table.models.index(col)
    ok = np.isfinite(table.quality[:, j])
    emb = embed_texts([p for p, k in zip(table.prompts, ok) if k])
    with np.errstate(all="ignore"):
        cost = float(np.nanmean(table.cost[ok, j])) if np.isfinite(table.cost[ok, j]).any() else None
    if json.loads((router / "router.json").read_text()).get("kind") == "prior":
        from .prior import profile as profile_prior

        meta = profile_prior(router, model, emb, table.quality[ok, j], cost_usd=cost)
    else:
        meta = profile(router, model, None, table.quality[ok, j], embeddings=emb, cost_usd=cost)
    typer.echo(json.dumps({"model": model, "rows": int(ok.sum()), "models": meta["models"]}))


def learn_curve_cmd(
    router: Path = typer.Option(..., "--router", help="deployed router artifact folder"),
    data: list[Path] = typer.Option(..., "--data", help="data file(s) or folder(s)"),
    fmt: str = typer.Option(..., "--format", help="data format: routellm, routerbench, llmrouter"),
    budgets: str = typer.Option("0,100,200,400", "--budgets", help="comma-separated judged-prompt budgets"),
    seed: int = typer.Option(0, "--seed", help="seed of the stream/evaluation split"),
    out: Path = typer.Option(..., "--json", help="write the curve as JSON here"),
    plot: Path | None = typer.Option(None, "--plot", help="write a PNG"),
) -> None:
    """Adapt the router to the first k judged stream rows (as retrain does); score each on the evaluation half."""
    from .learncurve import learn_curve, plot_curve

    _check(fmt, FORMATS, "--format")
    try:
        ks = [int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter("--budgets must be comma-separated integers") from None
    if not ks:
        raise typer.BadParameter("--budgets needs at least one budget, e.g. 0,100,200,400")
    try:
        res = learn_curve(router, data, fmt, ks, seed=seed, log=lambda s: typer.echo(s, err=True))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    typer.echo(json.dumps(res))
    if plot:
        try:  # the curve is the result: without matplotlib (a serving install) the plot alone is skipped
            plot_curve(res, plot, f"{router.name} on {', '.join(p.name for p in data)}")
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "matplotlib":
                raise
            typer.echo(f"--plot skipped: it needs matplotlib, from the train extra; install it {TRAIN_EXTRA}", err=True)


def _input_errors(cmd: Callable[..., None]) -> Callable[..., None]:
    """A missing or unreadable input (a --data path, a router folder without router.json, a data
    file in another layout) is one red line and exit 2, not a traceback."""

    @functools.wraps(cmd)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            cmd(*args, **kwargs)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
            name = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            typer.secho(f"error: {exc.strerror or exc}{name}", fg="red", bold=True, err=True)
            raise typer.Exit(2) from None
        except ValueError as exc:  # the data and artifact readers name the file (and line) at fault
            typer.secho(f"error: {exc}", fg="red", bold=True, err=True)
            raise typer.Exit(2) from None

    return run


def register(app: typer.Typer) -> None:
    """Add the router commands to a typer app (the gateway's ``shunter``)."""
    for name, cmd in (
        ("train", train_cmd),
        ("score", score_cmd),
        ("eval", eval_cmd),
        ("calibrate", calibrate_cmd),
        ("profile", profile_cmd),
        ("learn-curve", learn_curve_cmd),
    ):
        app.command(name)(_input_errors(cmd))


app = typer.Typer(help="Shunter router tools", no_args_is_help=True, add_completion=False)
register(app)

if __name__ == "__main__":
    app(prog_name="shunter")
    sys.exit(0)
