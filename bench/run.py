"""Shunter vs a direct call vs LiteLLM's proxy, side by side, in one run.

Starts the fake OpenAI-compatible upstream (``tests/fakes/fake_upstream.py``), Shunter
(``shunter serve``, one worker) and LiteLLM's proxy (one worker, its own venv
``.bench-venv``, created on first use), all pointing at the same upstream, then measures with
``wrk`` at fixed concurrency, interleaving the targets run by run and reporting medians:

- saturation: RPS and latency p50/p95/p99 at ``--connections`` (default 16) connections;
- paced: the same connections with think time (``--paced-delay-ms``), a load every target can
  carry, so the added latency is per-request overhead rather than queueing;
- streaming: RPS (wrk) and time to first SSE byte (a small asyncio client);
- memory: RSS of each process after the load, and whether torch/sklearn are mapped;
- the routing decision alone, in process (``bench.routing``).

Every target sends the same real, varied prompts sampled from ``../shared/data``
(``bench.prompts``: a third MMLU, a third RouterBench, a third LLMRouter), each request made
unique by a counter in the prompt. Shunter modes: ``pass-through`` (an explicit upstream model,
no routing), ``learned fast`` / ``learned tiered`` / ``learned accurate`` (the same router and
objective on each encoder tier: the static table, static then MiniLM inside the band, MiniLM;
``gateway.policy.tiers``) and ``learned (hit)`` (one repeated prompt on the tiered policy).

Writes ``bench/results/latest.json`` and ``latest.md`` and prints the Markdown.
Usage: ``.venv/bin/python bench/run.py [--runs 3] [--duration 5] [--quick] [--no-litellm]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import load, procs
from bench.prompts import real_prompts, unique_template
from bench.report import markdown
from bench.router_artifact import router_for_bench

RESULTS = Path(__file__).with_name("results")
PROMPT = "Explain in two sentences why the sky is blue during the day and red at sunset. Request {N}."
FIXED = PROMPT.replace("{N}", "0")
TIERS = ("fast", "tiered", "accurate")


def targets(
    up: procs.Proc,
    sw: procs.Proc,
    ll: procs.Proc | None,
    learned: bool,
    stream: bool,
    real: list[str],
) -> list[load.Target]:
    """Every target on the same real prompts, each request unique; ``learned (hit)`` repeats one."""

    def body(model: str, prompt: str) -> dict:
        b: dict = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
        if stream:
            b["stream"] = True
        return b

    def bodies(model: str) -> list[dict]:
        return [body(model, unique_template(p)) for p in real]

    sfx = " stream" if stream else ""
    h = "127.0.0.1"

    def target(name: str, port: int, model: str, meter: procs.Proc, **kw) -> load.Target:
        return load.Target(
            name + sfx,
            h,
            port,
            "/v1/chat/completions",
            body(model, FIXED),
            unique=True,
            meter=meter,
            bodies=bodies(model),
            **kw,
        )

    out = [target("direct", up.port, "fake-model", up), target("shunter pass-through", sw.port, "fake", sw)]
    if learned:
        out += [target(f"shunter learned {tier}", sw.port, f"router-learned-{tier}", sw) for tier in TIERS]
        out.append(
            load.Target(
                "shunter learned (hit)" + sfx,
                h,
                sw.port,
                "/v1/chat/completions",
                body("router-learned-tiered", FIXED),
                meter=sw,
            )
        )
    if ll is not None:
        out.append(target("litellm", ll.port, "fake", ll, auth=procs.LITELLM_KEY))
    return out


def median_of(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p95_ms", "p99_ms")
    out = {k: statistics.median(r[k] for r in runs) for k in keys} | {
        "errors": sum(r["errors"] for r in runs),
        "runs": len(runs),
    }
    cpu = [r["cpu_us_per_req"] for r in runs if r.get("cpu_us_per_req") is not None]
    out["cpu_us_per_req"] = statistics.median(cpu) if cpu else None
    return out


def sweep(
    ts: list[load.Target], runs: int, duration: float, connections: int, delay_ms: float = 0, label: str = ""
) -> dict:
    """Every target once per run, the order rotated each run; medians per target."""
    res: dict[str, list[dict]] = {t.name: [] for t in ts}
    for r in range(runs):
        order = ts[r % len(ts) :] + ts[: r % len(ts)]
        for t in order:
            m = load.run_wrk(t, duration, connections, seed=r + 1 + int(delay_ms) * 100, delay_ms=delay_ms)
            res[t.name].append(m)
            cpu = m.get("cpu_us_per_req")
            print(
                f"  [{label} run {r + 1}/{runs}] {t.name:34s} {m['rps']:8.0f} rps  p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:8.2f} ms  "
                f"cpu/req {cpu or 0:6.0f} us  errors {m['errors']}",
                flush=True,
            )
    return {name: {"median": median_of(rs), "runs": rs} for name, rs in res.items()}


def ttfb(ts: list[load.Target], requests: int, seed: int) -> dict:
    out = {}
    for t in ts:
        load.measure_ttfb(t, 10, 1, seed=seed + 50)  # warm the connection paths
        samples = load.measure_ttfb(t, requests, 1, seed=seed)
        first = sorted(s[0] * 1e3 for s in samples)
        total = sorted(s[1] * 1e3 for s in samples)
        q = statistics.quantiles(first, n=100)
        out[t.name] = {
            "ttfb_p50_ms": statistics.median(first),
            "ttfb_p95_ms": q[94],
            "ttfb_p99_ms": q[98],
            "total_p50_ms": statistics.median(total),
            "n": len(samples),
        }
        print(
            f"  [ttfb] {t.name:34s} p50 {out[t.name]['ttfb_p50_ms']:.2f} ms  p99 {out[t.name]['ttfb_p99_ms']:.2f} ms",
            flush=True,
        )
    return out


def prompt_tokens(texts: list[str]) -> dict[str, float]:
    """Word-piece counts of the benchmark's prompts: median, p90, max."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(procs.ROOT / "routers" / "assets" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    n = sorted(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return {"median": statistics.median(n), "p90": n[int(0.9 * (len(n) - 1))], "max": n[-1], "count": len(n)}


def tier_counts(sw: procs.Proc) -> dict[str, float]:
    """Learned decisions per encoder tier so far (``shunter_encoder_tier_total``), all policies."""
    import re

    import httpx

    text = httpx.get(sw.url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for m in re.finditer(r'^shunter_encoder_tier_total\{policy="([^"]+)",tier="([^"]+)"\} ([0-9.e+]+)$', text, re.M):
        out[f"{m.group(1)}/{m.group(2)}"] = float(m.group(3))
    return out


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per target (medians are reported)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--paced-delay-ms", type=int, default=200, help="think time per connection for the paced sweep (0: skip)"
    )
    ap.add_argument("--ttfb-requests", type=int, default=200)
    ap.add_argument("--routing-n", type=int, default=200, help="decisions per prompt length (0: skip)")
    ap.add_argument("--router", help="router artifact folder (default: shipped mf, else a synthetic one)")
    ap.add_argument("--workers", type=int, default=1, help="shunter worker processes")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-stream", action="store_true")
    ap.add_argument(
        "--quick", action="store_true", help="tiny settings: a smoke test of the harness, not a measurement"
    )
    ap.add_argument("--prompts", type=int, default=600, help="real prompts sampled from ../shared/data")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration, args.ttfb_requests, args.routing_n, args.paced_delay_ms = 1, 1, 20, 5, 0
        args.prompts = 60

    work = Path(tempfile.mkdtemp(prefix="shunter-bench-"))
    real = real_prompts(args.prompts)
    router, router_desc = router_for_bench(work, args.router, args.quick)
    shipped_fast = procs.ROOT / "routers" / "artifacts" / "prior-fast"  # the default policy's router
    fast_router = shipped_fast if not args.router and (shipped_fast / "router.onnx").exists() else None
    if fast_router is not None:
        router_desc += "; learned fast: routers/artifacts/prior-fast (trained on the fast tier alone)"
    load_before = os.getloadavg()
    print(f"bench workdir {work}; router: {router_desc}", flush=True)
    started: list[procs.Proc] = []
    result: dict = {}
    try:
        up = procs.start_fake(work)
        started.append(up)
        sw = procs.start_shunter(procs.shunter_config(up, work, router, fast_router), work, args.workers)
        started.append(sw)
        ll = None
        if not args.no_litellm:
            ll = procs.start_litellm(up, work)
            started.append(ll)
        plain = targets(up, sw, ll, True, False, real)
        for t in plain:  # warm up (imports, pools, ONNX sessions)
            load.run_wrk(t, 1, args.connections, seed=999)
        print("saturation sweep", flush=True)
        result["saturation"] = sweep(plain, args.runs, args.duration, args.connections, label="sat")
        if args.paced_delay_ms:
            print("paced sweep", flush=True)
            result["paced"] = sweep(
                plain, args.runs, args.duration, args.connections, args.paced_delay_ms, label="paced"
            )
        if not args.no_stream:
            streamed = [
                t
                for t in targets(up, sw, ll, True, True, real)
                if "fast" not in t.name and "accurate" not in t.name and "(hit)" not in t.name
            ]
            print("streaming sweep", flush=True)
            result["stream"] = sweep(streamed, args.runs, args.duration, args.connections, label="stream")
            result["ttfb"] = ttfb(streamed, args.ttfb_requests, seed=7)
        result["rss_mb"] = {p.name: p.rss_mb() for p in started}
        # seconds of load the gateway served before its RSS was read (every sweep, every shunter target)
        result["load_seconds"] = args.duration * sum(
            len(r["runs"])
            for key in ("saturation", "paced", "stream")
            for name, r in result.get(key, {}).items()
            if name.startswith("shunter")
        )
        result["encoder_tiers"] = tier_counts(sw)
        result["heavy_libs_loaded"] = {p.name: p.loaded_heavy_libs() for p in started if p.name == "shunter"}
        result["serving_stack"] = {
            p.name: p.loaded_libs(("uvloop", "httptools", "aiohttp", "onnxruntime"))
            for p in started
            if p.name == "shunter"
        }
    finally:
        for p in started:
            p.stop()
    if args.routing_n:
        print("routing decision (in process)", flush=True)
        out = work / "routing.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.routing",
                "--router",
                str(router),
                "--n",
                str(args.routing_n),
                "--concurrency",
                str(args.connections),
                "--json",
                str(out),
            ],
            cwd=procs.ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result["routing"] = json.loads(out.read_text())
    result["meta"] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_rev(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "router": router_desc,
        "prompt": f"{len(real)} real prompts from ../shared/data (bench.prompts), each request unique",
        "prompt_tokens": prompt_tokens(real),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "command": " ".join([".venv/bin/python bench/run.py", *sys.argv[1:]]),
    }
    if args.quick and args.out == RESULTS:  # a smoke run never replaces the published results
        args.out = work
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(result)
    name = "quick" if args.quick else "latest"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(md)
    print("\n" + md)
    print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.md')}")


if __name__ == "__main__":
    main()
