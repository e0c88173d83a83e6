"""Cost of auth + limits: the same load with ``server.auth`` off, then on with a key that has
rpm, tpm and a budget (all checked, never hit). Needs ``wrk``.

    python bench/auth_overhead.py --seconds 8 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

from bench.load import Target, run_wrk
from bench.procs import FAKE, ROOT, free_port, wait_ready

ADMIN = "bench-admin-key-0123456789"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--connections", type=int, default=8)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shunter-auth-"))
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--model-id", "a"], stdout=subprocess.DEVNULL
    )
    procs = [fake]
    out = {}
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", fake, 30)
        up = {"base_url": f"http://127.0.0.1:{port}/v1", "model": "a", "input_price": 0.15, "output_price": 0.6}
        for auth in (False, True):
            cfg = {
                "server": {"outcomes_path": str(tmp / f"o-{auth}.sqlite"), "auth": auth},
                "upstreams": {"a": up, "b": up},
                "policies": {"chat": {"candidates": ["a", "b"]}},
            }
            path = tmp / f"p-{auth}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            gp = free_port()
            gw = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--config",
                    str(path),
                    "--port",
                    str(gp),
                    "--no-watch",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env={**os.environ, "SHUNTER_ADMIN_KEY": ADMIN},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(gw)
            wait_ready(f"http://127.0.0.1:{gp}/readyz", gw)
            key = ""
            if auth:
                spec = {"rpm": 10**9, "tpm": 10**12, "budget_usd": 1e9}
                key = httpx.post(
                    f"http://127.0.0.1:{gp}/admin/keys",
                    json=spec,
                    headers={"Authorization": f"Bearer {ADMIN}"},
                    timeout=10,
                ).json()["key"]
            t = Target(
                "chat",
                "127.0.0.1",
                gp,
                "/v1/chat/completions",
                {"model": "router-chat", "messages": [{"role": "user", "content": "hello there"}]},
                auth=key,
            )
            run_wrk(t, 2, a.connections)  # warm-up
            out[f"auth_{'on' if auth else 'off'}"] = run_wrk(t, a.seconds, a.connections)
            gw.terminate()
            gw.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
