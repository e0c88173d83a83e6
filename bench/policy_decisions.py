"""Routing-decision time of semantic routes vs rules through a running gateway (fake upstream).

Usage: .venv/bin/python -m bench.policy_decisions
Output: mean shunter_routing_decision_seconds per policy over the labelled prompts x4, sequential.
"""

import json
import re
import tempfile
import time
from pathlib import Path

import httpx
import openai
import yaml

from tests.e2e.policy_util import processes

ROOT = Path(__file__).resolve().parents[1]

with tempfile.TemporaryDirectory() as tmp, processes(Path(tmp)) as (fake_upstream, gateway):
    fake = fake_upstream("any")
    cfg = yaml.safe_load((ROOT / "config" / "semantic.yaml").read_text())
    for up in cfg["upstreams"].values():
        up.update(base_url=fake.base_url)
        up.pop("api_key", None)
    cfg["policies"]["rules"] = {
        "candidates": ["gpt-4o-mini", "gpt-4o"],
        "rules": [
            {"name": "premium", "header": {"x-shunter-tier": "premium"}, "model": "gpt-4o"},
            {"name": "sql", "regex": r"(?i)\bselect\b.+\bfrom\b", "model": "codestral"},
            {"name": "kw", "keywords": ["python", "rust", "golang"], "model": "codestral"},
        ],
    }
    gw = gateway(cfg)
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    rows = [json.loads(l) for l in (ROOT / "config/semantic-examples.jsonl").read_text().splitlines() if l.strip()]

    def hist(policy):
        txt = httpx.get(f"{gw.url}/metrics").text
        s = float(re.search(rf'shunter_routing_decision_seconds_sum{{policy="{policy}"}} (\S+)', txt).group(1))
        n = float(re.search(rf'shunter_routing_decision_seconds_count{{policy="{policy}"}} (\S+)', txt).group(1))
        return s, n

    for policy in ("domains", "rules"):
        for i in range(5):  # warm-up
            c.chat.completions.create(model=f"router-{policy}", messages=[{"role": "user", "content": rows[i]["text"]}])
        s0, n0 = hist(policy)
        t0 = time.perf_counter()
        for rep in range(4):
            for r in rows:
                c.chat.completions.create(
                    model=f"router-{policy}", messages=[{"role": "user", "content": r["text"] + f" ({rep})"}]
                )
        wall = time.perf_counter() - t0
        s1, n1 = hist(policy)
        n = n1 - n0
        print(
            f"{policy}: {int(n)} requests, mean decision {1000 * (s1 - s0) / n:.2f} ms, mean request {1000 * wall / n:.1f} ms (sequential, fake upstream)"
        )
