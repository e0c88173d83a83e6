"""``shunter serve --workers 2``: /metrics aggregates every worker (prometheus multiprocess)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import upstream_entry


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _metric_dirs(pid: int) -> set[Path]:
    """Folders of the prometheus ``*.db`` files a process has mapped (multiprocess mode)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return set()
    return {Path(line.split()[-1]).parent for line in maps if line.endswith(".db")}


def _requests_total(text: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name == "shunter_requests":
            total += sum(s.value for s in fam.samples if s.name == "shunter_requests_total")
    return total


def test_two_workers_share_one_metrics_view(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    cfg = {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, args=["--workers", "2"])
    # each worker maps its metric files from the one folder `shunter serve` made for this run
    workers = {c: dirs for c in _children(gw.proc.pid) if (dirs := _metric_dirs(c))}
    assert len(workers) >= 2, "expected two uvicorn workers in prometheus multiprocess mode"
    dirs = set().union(*workers.values())
    assert len(dirs) == 1 and dirs.pop().name.startswith("shunter-prom-")
    promdir = next(iter(workers.values())).pop()
    n = 24
    with httpx.Client(timeout=10) as http:
        for i in range(n):
            # a fresh connection per request so the kernel spreads them over both workers
            r = httpx.post(
                f"{gw.base_url}/chat/completions",
                json={"model": "router-p", "messages": [{"role": "user", "content": f"hi {i}"}]},
                timeout=10,
            )
            assert r.status_code == 200
        seen = {_requests_total(http.get(f"{gw.url}/metrics", headers={"connection": "close"}).text) for _ in range(8)}
    assert seen == {float(n)}, f"every scrape must report all {n} requests, got {seen}"
    pids = {f.stem.rsplit("_", 1)[-1] for f in promdir.glob("counter_*.db")}
    assert len(pids) >= 2, f"both workers should write metric files, got {sorted(pids)}"


def test_operator_set_multiproc_dir_is_emptied_at_start(gateway, fake_upstream, tmp_path):
    """Stale files from an earlier run in an operator-chosen folder must not be summed in."""
    import subprocess
    import sys

    promdir = tmp_path / "prom"
    promdir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(promdir)}
    # an "earlier run" that served 1000 requests
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from gateway import metrics; metrics.REQUESTS.labels('p', 'a', '2xx', 'static').inc(1000)",
        ],
        env={**__import__("os").environ, **env},
        check=True,
    )
    assert list(promdir.glob("counter_*.db"))
    fake = fake_upstream("m-v1")
    cfg = {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env=env)
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "router-p", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 200
    assert _requests_total(httpx.get(f"{gw.url}/metrics").text) == 1.0
