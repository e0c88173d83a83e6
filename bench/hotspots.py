"""Profile the gateway under load: py-spy samples ``shunter serve`` while wrk drives one mode.

Prints the frames with the most samples (inclusive and self, main thread) and keeps the raw
py-spy output (``-f raw``, collapsed stacks, for flamegraph tools).

Usage: ``python bench/hotspots.py [--mode pass|miss|hit] [--stream] [--seconds 8] [--out prof.txt]``
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import load, procs
from bench.router_artifact import router_for_bench
from bench.run import FIXED, PROMPT


def summarise(raw: Path, top: int = 40) -> str:
    incl: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not any("Runner.run" in f or "Server.run" in f for f in frames):  # the event loop's thread only
            continue
        total += int(n)
        own[frames[-1]] += int(n)
        for f in set(frames):
            incl[f] += int(n)
    out = [f"event-loop samples: {total}", "--- inclusive"]
    out += [f"{n / total * 100:5.1f}% {f}" for f, n in incl.most_common(top * 2) if n < total][:top]
    out += ["--- self"] + [f"{n / total * 100:5.1f}% {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["pass", "miss", "hit"], default="pass")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    work = Path(tempfile.mkdtemp(prefix="shunter-profile-"))
    router, _ = router_for_bench(work)
    up = procs.start_fake(work)
    sw = procs.start_shunter(procs.shunter_config(up, work, router), work)
    try:
        model = "fake" if args.mode == "pass" else "router-learned-tiered"
        body = {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT if args.mode == "miss" else FIXED}],
            "max_tokens": 32,
            "stream": args.stream,
        }
        t = load.Target(
            args.mode, "127.0.0.1", sw.port, "/v1/chat/completions", body, unique=args.mode == "miss", meter=sw
        )
        load.run_wrk(t, 2, args.connections, seed=99)  # warm up: imports, pools, sessions
        rec = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(sw.proc.pid),
                "-o",
                str(args.out),
                "-f",
                "raw",
                "-d",
                str(args.seconds),
                "-r",
                "200",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
        )
        m = load.run_wrk(t, args.seconds - 1, args.connections, seed=1)
        rec.wait()
        print(
            f"{args.mode}{' stream' if args.stream else ''}: {m['rps']:.0f} rps, p50 {m['p50_ms']:.2f} ms, "
            f"{m['cpu_us_per_req']:.0f} µs CPU per request"
        )
        print(summarise(args.out))
        print(f"raw stacks: {args.out}")
    finally:
        sw.stop()
        up.stop()


if __name__ == "__main__":
    main()
