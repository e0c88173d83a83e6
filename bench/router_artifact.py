"""The router artifact the benchmark routes with.

The encoder tiers need a router trained on both encoders' embeddings (``routers.encoders``), so
the escalation share of the tiered policy is a real one: a shipped artifact under
``routers/artifacts`` that pins both (a pair router first) when there is one; else an ``mf``
router trained here with ``--encoder both`` on RouterBench's GPT-4 / Mixtral pair from
``../shared/data`` (cached under ``~/.cache/shunter/bench``); else a shipped artifact of any kind; else a randomly
initialised MF router of the same shape (384 -> 128 -> 2 models). Training and the random router
need the ``train`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ARTIFACTS = Path(__file__).resolve().parents[1] / "routers" / "artifacts"


def shipped_both() -> Path | None:
    """A shipped artifact trained on both encoder tiers (pair routers first)."""
    from routers.base import encoder_hashes

    found = []
    for p in sorted(ARTIFACTS.glob("*/router.json")):
        meta = json.loads(p.read_text())
        if len(encoder_hashes(meta)) >= 2 and (p.parent / "router.onnx").exists():
            found.append((meta.get("strong") is None, p.parent.name, p.parent))
    return min(found)[2] if found else None


def trained_both(quick: bool = False) -> Path | None:
    """``mf`` on MMLU with ``--encoder both``, trained once per encoder pair and cached.

    ``quick`` (the harness's smoke run): one MMLU subject, seconds to train.
    """
    import subprocess
    import sys

    from routers.data import default_paths
    from routers.settings import RouterSettings
    from routers.train import encoders_for

    # quick: one MMLU subject; else RouterBench's GPT-4 / Mixtral pair (ARC, MBPP, Winogrande)
    fmt, data, models = ("routellm", default_paths("routellm") / "mmlu_anatomy.csv", "")
    if not quick:
        fmt, data, models = (
            "routerbench",
            default_paths("routerbench"),
            "gpt-4-1106-preview,mistralai/mixtral-8x7b-chat",
        )
    if not data.exists():
        return None
    encs = encoders_for("both")
    name = "mf-anatomy-both-" if quick else "mf-routerbench-pair-both-"
    out = RouterSettings().cache_root() / "bench" / (name + "-".join(e.encoder_hash[:8] for e in encs))
    if not (out / "router.json").exists():
        print(f"training the benchmark's router into {out} (first run only) ...", flush=True)
        # a child process: torch stays out of the benchmark
        cmd = [sys.executable, "-m", "gateway", "train", "--router", "mf", "--encoder", "both"]
        cmd += ["--data", str(data), "--format", fmt, "--out", str(out)] + (["--models", models] if models else [])
        subprocess.run(cmd, cwd=ARTIFACTS.parents[1], check=True, stdout=subprocess.DEVNULL)
    return out


def shipped() -> Path | None:
    found = sorted(p.parent for p in ARTIFACTS.glob("*/router.json") if (p.parent / "router.onnx").exists())
    mf = [p for p in found if p.name.startswith("mf")]
    return (mf or found or [None])[0]


def synthetic(out: Path, dim: int = 128, seed: int = 0) -> Path:
    from routers.encoder import DIM
    from routers.mf import export

    rng = np.random.default_rng(seed)
    params = {
        "proj_w": rng.normal(0, 0.05, (DIM, dim)).astype(np.float32),
        "proj_b": np.zeros(dim, np.float32),
        "vw": rng.normal(0, 0.1, (dim, 2)).astype(np.float32),
        "b": np.zeros(2, np.float32),
        "c": np.zeros(2, np.float32),
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs = export(params, out, (0, 1))
    meta = {
        "kind": "mf",
        "version": 1,
        "models": ["strong-model", "weak-model"],
        "strong": "strong-model",
        "weak": "weak-model",
        "onnx_outputs": outputs,
        "note": "benchmark-only: random weights",
    }
    (out / "router.json").write_text(json.dumps(meta, indent=2))
    return out


def router_for_bench(workdir: Path, path: str | None = None, quick: bool = False) -> tuple[Path, str]:
    """(artifact folder, description)."""
    if path:
        return Path(path), f"given: {path}"
    both = shipped_both()
    if both is not None:
        return both, f"shipped: routers/artifacts/{both.name} (trained on both encoder tiers)"
    both = trained_both(quick)
    if both is not None:
        what = "one MMLU subject" if quick else "RouterBench's GPT-4 / Mixtral pair"
        return both, f"mf trained on {what} with --encoder both (bench.router_artifact.trained_both)"
    found = shipped()
    if found is not None:
        return found, f"shipped: routers/artifacts/{found.name}"
    return synthetic(workdir / "router-synthetic"), "synthetic mf (random weights, same shape as a trained mf router)"
