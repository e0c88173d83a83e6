"""Pass-through cost of two revisions of the gateway, side by side in one run.

Checks a base revision out into a temporary git worktree, starts one fake upstream and two
gateways (the base and this working tree) on the same pass-through policy, then loads them with
``wrk`` alternately, the order flipped every pair, on the same real, varied prompts
(``bench.prompts``), each request unique. Reports, per gateway, the median gateway CPU per request
(the figure a noisy machine moves least), the median RPS and p50, and how many pairs each won.

Usage: ``.venv/bin/python bench/revs.py --base a47f281 [--pairs 8] [--duration 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/revs.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import load, procs
from bench.prompts import real_prompts, unique_template

RESULTS = Path(__file__).with_name("results")


def start_gateway(name: str, tree: Path, config: Path, workdir: Path) -> procs.Proc:
    """``python -m gateway serve`` from ``tree`` (its own ``gateway`` package first on the path)."""
    port = procs.free_port()
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    cmd += ["--no-watch", "--log-level", "warning", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    p = procs.Proc(name, port, proc, log)
    procs.wait_http(p, "/readyz", 180)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare this working tree against")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=600)
    ap.add_argument("--out", type=Path, default=RESULTS / "revs.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-revs-"))
    base_tree = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base], cwd=procs.ROOT, check=True)
    up = procs.start_fake(work)
    config = procs.shunter_config(up, work, None)
    gws: list[procs.Proc] = []
    try:
        gws = [start_gateway("base", base_tree, config, work), start_gateway("head", procs.ROOT, config, work)]
        bodies = [
            {"model": "fake", "messages": [{"role": "user", "content": unique_template(p)}], "max_tokens": 32}
            for p in real_prompts(args.prompts)
        ]

        def target(g: procs.Proc) -> load.Target:
            return load.Target(g.name, "127.0.0.1", g.port, "/v1/chat/completions", bodies[0], bodies=bodies, meter=g)

        ts = [target(g) for g in gws]
        for t in ts:  # warm both: imports, connection pools, JIT-free but cache-warm
            load.run_wrk(t, 1, args.connections, seed=999)
        runs: dict[str, list[dict]] = {t.name: [] for t in ts}
        wins = {t.name: 0 for t in ts}
        for i in range(args.pairs):
            pair = ts if i % 2 == 0 else ts[::-1]
            got = {t.name: load.run_wrk(t, args.duration, args.connections, seed=i + 1) for t in pair}
            for name, m in got.items():
                runs[name].append(m)
                print(
                    f"  pair {i + 1}: {name:5s} {m['rps']:7.0f} rps  cpu/req {m['cpu_us_per_req']:6.0f} us", flush=True
                )
            wins[min(got, key=lambda n: got[n]["cpu_us_per_req"])] += 1
        summary = {
            name: {
                "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] for r in rs),
                "rps": statistics.median(r["rps"] for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "lower_cpu_pairs": wins[name],
            }
            for name, rs in runs.items()
        }
        summary["ratio_cpu_head_over_base"] = summary["head"]["cpu_us_per_req"] / summary["base"]["cpu_us_per_req"]
        out = {"base": args.base, "pairs": args.pairs, "duration": args.duration, "summary": summary, "runs": runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
        print(json.dumps(summary, indent=2))
    finally:
        for g in gws:
            g.stop()
        up.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=procs.ROOT, check=False)


if __name__ == "__main__":
    main()
