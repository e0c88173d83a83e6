"""Every Grafana panel query returns data from a real Prometheus scraping a real gateway.

The gateway, three fake upstreams and Debian's ``prometheus`` (scrape interval 1 s) run on free
loopback ports. Traffic goes through the gateway in two rounds (so every rate window holds an
increase): routed plain and streamed requests, cache hits, failures that retry and fall back, a
config reload and feedback. Then every panel's PromQL, with the dashboard variables set to
"All", is run against Prometheus's HTTP API and must return at least one finite sample.

Set ``SHUNTER_DASHBOARD_PNG=docs/img/dashboard.png`` to also render the picture used in the
README from the same Prometheus (``deploy/grafana/render_png.py``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.paths import ROOT
from tests.support.procs import free_port, stop, upstream_entry
from tests.support.wait import wait_http, wait_until

DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ADMIN_KEY = "dash-admin-key"
# Panels whose series exist only when an optional part can run here.
NEEDS_ENCODER = {"Embedding time (per batch)", "Embedding batch size", "Semantic cache similarity (p50)"}
NEEDS_CHECKER = {"Cascade escalations"}


def substitute(expr: str, rate: str = "1m", rng: str = "5m") -> str:
    """Grafana's template variables as Grafana would expand them with 'All' selected."""
    for name, value in (
        ("$__rate_interval", rate),
        ("$__range", rng),
        ("$__interval", "5s"),
        ("$policy", ".*"),
        ("$upstream", ".*"),
    ):
        expr = expr.replace(name, value)
    return expr


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for p in json.loads(path.read_text())["panels"]:
            for t in p.get("targets", []):
                out.append((path.stem, p["title"], t["expr"]))
    return out


class Prometheus:
    def __init__(self, tmp: Path, target: str) -> None:
        exe = shutil.which("prometheus")
        if not exe:
            pytest.fail("prometheus is not installed (scripts/setup.sh test installs Debian's package)")
        self.port = free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: shunter\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.url}/-/ready", 60, self.proc)

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def scrapes(self) -> float:
        res = self.query("sum(prometheus_tsdb_head_samples_appended_total) or vector(0)")
        return float(res[0]["value"][1]) if res else 0.0

    def value(self, expr: str) -> float | None:
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def wait_for(self, expr: str, want: float, timeout: float = 30) -> None:
        def reached() -> bool:
            got = self.value(expr)
            assert got is not None and got >= want, f"{expr} is at {got}, wanted {want}"
            return True

        wait_until(reached, timeout, 0.5, expr)

    def close(self) -> None:
        stop(self.proc)
        self.log.close()


def encoder_available() -> bool:
    return importlib.util.find_spec("routers.batching") is not None


def answer_checker() -> Path | None:
    """A shipped answer-check artifact (for a cascade policy), if there is one."""
    for meta in sorted((ROOT / "routers" / "artifacts").glob("*/router.json")):
        try:
            if json.loads(meta.read_text()).get("kind") == "answer-check":
                return meta.parent
        except ValueError:
            continue
    return None


def _chat(
    http: httpx.Client, gw, model: str, content: str, stream: bool = False, headers: dict | None = None
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    r = http.post(f"{gw.base_url}/chat/completions", json=body, headers=headers)
    r.read()
    return r


def drive(http: httpx.Client, gw, flaky, round_: int, policies: dict) -> int:
    """One round of mixed traffic; returns how many requests the gateway answered."""
    n = 0
    ids = []
    for i in range(6):
        # one in three asks for the strong model only (a per-request candidates override)
        hdrs = {"x-shunter-candidates": "strong"} if i % 3 == 2 else None
        r = _chat(http, gw, "router-chat", f"round {round_} question {i}", stream=i % 2 == 1, headers=hdrs)
        assert r.status_code == 200
        ids.append(r.headers["x-shunter-request-id"])
        n += 1
    for _ in range(3):  # the same question: response-cache hits after the first
        assert _chat(http, gw, "router-chat", "what is the capital of France?").status_code == 200
        n += 1
    if "semantic" in policies:  # a paraphrase: a semantic response-cache hit (embeddings batched)
        assert _chat(http, gw, "router-semantic", "What is the capital city of Italy?").status_code == 200
        assert _chat(http, gw, "router-semantic", f"what's the capital of Italy ({round_})").status_code == 200
        n += 2
    if "learned" in policies:  # the learned router decides (reason "router")
        for q in (
            "Prove that there are infinitely many primes.",
            "hi",
            "Explain the Krebs cycle step by step.",
            "What is 2+2?",
        ):
            assert _chat(http, gw, "router-learned", f"{q} ({round_})").status_code == 200
            n += 1
    if "cascade" in policies:  # threshold 1.0: the cheap answer is always escalated
        assert _chat(http, gw, "router-cascade", f"cascade {round_}").status_code == 200
        n += 1
    # shadow-sampled and judged; the opted-out one is skipped (reason on the learning dashboard)
    assert _chat(http, gw, "router-judged", f"round {round_}: name a prime").status_code == 200
    opt_out = {"x-shunter-shadow": "off"}
    assert _chat(http, gw, "router-judged", f"round {round_}: private", headers=opt_out).status_code == 200
    n += 2
    flaky.control(fail_next=3, fail_status=503)  # retries, then a fallback to 'cheap'
    r = _chat(http, gw, "router-flaky", f"round {round_} flaky")
    assert r.status_code == 200 and r.headers["x-shunter-model"] == "cheap"
    n += 1
    flaky.control(fail_next=2, fail_status=400)  # a client error the upstream refuses: 4xx
    # 400 from the upstream; 503 once many failures opened the circuit (long picture runs)
    assert _chat(http, gw, "flaky", "bad request").status_code in (400, 503)
    n += 1
    for rid in ids[:3]:
        fb = http.post(f"{gw.base_url}/feedback", json={"request_id": rid, "thumbs": "up"})
        assert fb.status_code in (200, 201, 202), fb.text
    return n


def test_every_panel_query_returns_data(gateway, fake_upstream, tmp_path):
    cheap, strong, flaky = fake_upstream("cheap-v1"), fake_upstream("strong-v1"), fake_upstream("flaky-v1")
    judge = fake_upstream("judge-v1")  # the shadow sampler's judge (learning dashboard)
    judge.control(judge_prefers="strong-v1")
    strong.control(reply="strong-v1 answer")
    cfg = {
        "server": {"admin_key": "os.environ/SHUNTER_ADMIN_KEY"},
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10.0),
            "flaky": upstream_entry(flaky, input_price=0.5, output_price=1.5, retry={"attempts": 2, "backoff": 0.01}),
            "judge": upstream_entry(judge, input_price=2.5, output_price=10.0),
        },
        "policies": {
            "chat": {"candidates": ["cheap", "strong"], "reference_model": "strong", "cache": {"ttl": 120}},
            "flaky": {"candidates": ["flaky", "cheap"], "fallbacks": ["strong"]},
            "judged": {  # judged shadow sampling: every eligible request, the other candidate + the judge
                "candidates": ["cheap", "strong"],
                "reference_model": "strong",
                "rules": [{"name": "all-cheap", "min_tokens": 0, "model": "cheap"}],
                "learning": {"shadow": {"rate": 1.0, "budget_usd_per_day": 1.0, "judge": "judge"}},
            },
        },
    }
    skip: set[str] = set()
    if encoder_available():
        cfg["policies"]["semantic"] = {
            "candidates": ["cheap", "strong"],
            "cache": {"ttl": 120, "semantic": True, "similarity": 0.75},
        }
    else:
        skip |= NEEDS_ENCODER
    mf = ROOT / "routers" / "artifacts" / "mf-mmlu"
    if encoder_available() and (mf / "router.json").exists():  # the shipped learned router
        cfg["policies"]["learned"] = {
            "candidates": ["cheap", "strong"],
            "router": {
                "path": str(mf),
                "model_map": {"cheap": "mistralai/Mixtral-8x7B-Instruct-v0.1", "strong": "gpt-4-1106-preview"},
                "strong": "strong",
                "weak": "cheap",
            },
            "objective": {"threshold": 0.5},
            "reference_model": "strong",
        }
    checker = answer_checker() if encoder_available() else None
    if checker:
        cfg["policies"]["cascade"] = {
            "candidates": ["cheap", "strong"],
            "cascade": {"checker": str(checker), "threshold": 1.0},
        }
    else:
        skip |= NEEDS_CHECKER
    gw = gateway(cfg, env={"SHUNTER_ADMIN_KEY": ADMIN_KEY})
    prom = Prometheus(tmp_path, f"127.0.0.1:{gw.port}")
    try:
        prom.wait_for('up{job="shunter"}', 1)
        total = 0
        out = os.environ.get("SHUNTER_DASHBOARD_PNG")
        rounds = 40 if out else 2  # a longer run only for the README picture
        with httpx.Client(timeout=20) as http:
            for round_ in range(1, rounds + 1):
                total += drive(http, gw, flaky, round_, cfg["policies"])
                r = http.post(f"{gw.url}/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
                assert r.status_code == 200, r.text
                prom.wait_for("sum(shunter_requests_total)", total)
                if out and round_ % 10 == 0:
                    strong.control(delay=0.05 * (round_ // 10))  # some variety for the picture
        # shadow calls and their judging run after the answers: wait until the judge has ruled
        wait_until(lambda: (prom.value("sum(shunter_judge_preferences_total)") or 0) > 0, 60, 0.5, "a judged pair")
        done = time.time()  # one more scrape of the gateway, so gauges set by the last requests are in
        scraped = 'timestamp(up{job="shunter"})'
        wait_until(lambda: (prom.value(scraped) or 0) > done, 30, 0.5, "a gateway scrape after the last request")
        if skip:
            print(f"panels not checked (optional part missing here): {sorted(skip)}")
        empty = []
        checked = 0
        for dash, title, expr in panel_queries():
            if title in skip:
                continue
            res = prom.query(substitute(expr))
            values = [float(s["value"][1]) for s in res]
            checked += 1
            if not any(math.isfinite(v) for v in values):
                empty.append(f"{dash} / {title}: {expr} -> {res}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
        assert checked >= 30
        for var in ("policy", "upstream"):
            vals = httpx.get(f"{prom.url}/api/v1/label/{var}/values").json()["data"]
            assert vals, var
        # the figures are the ones we sent: requests, cache hits, cost saved
        assert float(prom.query("sum(shunter_requests_total)")[0]["value"][1]) == total
        assert float(
            prom.query('sum(shunter_cache_requests_total{cache="response",result="hit"})')[0]["value"][1]
        ) >= 2 + 3 * (rounds - 1)
        assert float(prom.query("sum(shunter_cost_saved_usd_total)")[0]["value"][1]) > 0
        # each path the issue names really increments its metric (not just a primed zero)
        must_move = [
            "shunter_request_duration_seconds_count",
            "shunter_time_to_first_token_seconds_count",
            "shunter_routing_decision_seconds_count",
            "shunter_upstream_duration_seconds_count",
            "shunter_upstream_errors_total",
            "shunter_retries_total",
            "shunter_fallbacks_total",
            "shunter_tokens_total",
            "shunter_cost_usd_total",
            "shunter_outcomes_written_total",
            "shunter_feedback_total",
            'shunter_config_reloads_total{result="success"}',
            'shunter_requests_total{status="4xx"}',
        ]
        if encoder_available():
            must_move += [
                "shunter_embedding_batch_size_count",
                "shunter_embedding_seconds_count",
                "shunter_cache_similarity_count",
            ]
        for m in must_move:
            got = prom.query(f"sum({m})")
            assert got and float(got[0]["value"][1]) > 0, m
        if out:
            spec = importlib.util.spec_from_file_location("render_png", ROOT / "deploy" / "grafana" / "render_png.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
            mod.render(prom.url, ROOT / out)
    finally:
        prom.close()
