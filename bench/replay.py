"""Replay real RouterBench prompts through a running gateway as live traffic, with real feedback.

Each candidate model is a fake upstream process whose model id is the RouterBench model name;
the "feedback" for a request is the recorded correctness of the model the gateway chose for
that prompt, and its cost is the recorded USD cost of that call. Scenario:

1. a *stale* starting router: the cluster family trained on ARC-Challenge prompts only;
2. phase A: the evaluation prompts (a mix of ARC, Winogrande and MBPP) through the starting
   router (no feedback): quality and cost;
3. phase B: live prompts (a different mix) with feedback;
4. ``shunter retrain`` publishes (or refuses) and the gateway hot-swaps the artifact under load;
5. phase C: the evaluation prompts again. The online (bandit) policy runs phases B and C on
   its own policy, separately.

"Equal cost": the starting router's quality-cost frontier on the evaluation prompts (the same
``choose`` with every cost weight, offline) interpolated at the new cost.

Usage: ``python -m bench.replay --live 600 --eval 300 [--family cluster|adapt] [--out bench/results/replay.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from bench.procs import FAKE, ROOT, free_port, wait_ready

# upstream name -> (RouterBench model, input $/M, output $/M)
MODELS = {
    "gpt-4": ("gpt-4-1106-preview", 10.0, 30.0),
    "claude-instant": ("claude-instant-v1", 0.8, 2.4),
    "mistral-7b": ("mistralai/mistral-7b-chat", 0.2, 0.2),
}
# GPT-4 beats Claude Instant by ~0.13 on ARC but by ~0.35 on Winogrande; with this cost weight
# ARC -> Claude Instant and Winogrande -> GPT-4 is the best split, which an ARC-trained router cannot see.
COST_WEIGHT = 0.25
ONLINE_COST_WEIGHT = COST_WEIGHT
ADMIN_KEY = "replay-admin"
GATEWAY_ENV = {"SHUNTER_ADMIN_KEY": ADMIN_KEY, "SHUNTER_BANDIT_SEED": "7", "SHUNTER_BANDIT_CACHE_S": "0"}


@dataclass
class Data:
    prompts: list[str]
    task: np.ndarray
    quality: np.ndarray  # (n, 3) in MODELS order
    cost: np.ndarray  # (n, 3) USD
    table: Any

    def row_of(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.prompts)}


def load_data() -> Data:
    from routers.data import default_paths, load_table

    t = load_table(default_paths("routerbench"), "routerbench")
    t = t.select_models([m for m, _, _ in MODELS.values()])
    seen: set[str] = set()
    keep = []
    for i, p in enumerate(t.prompts):
        if p not in seen and np.isfinite(t.quality[i]).all() and np.isfinite(t.cost[i]).all():
            seen.add(p)
            keep.append(i)
    t = t.subset(keep)
    task = np.array([i.split(".")[0] for i in t.ids])
    return Data(t.prompts, task, t.quality, t.cost, t)


def split(d: Data, n_start: int, n_live: int, n_eval: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start: ARC only. Live and eval: disjoint stratified mixes of every task, no start prompts."""
    rng = np.random.default_rng(seed)
    arc = rng.permutation(np.flatnonzero(d.task == "arc-challenge"))
    start = arc[:n_start]
    rest = np.setdiff1d(np.arange(len(d.prompts)), start)
    rest = rng.permutation(rest)
    shares = {t: (d.task[rest] == t).mean() for t in np.unique(d.task)}
    live, ev = [], []
    for t, s in shares.items():
        pool = [i for i in rest if d.task[i] == t]
        a, b = int(round(s * n_live)), int(round(s * n_eval))
        live += pool[:a]
        ev += pool[a : a + b]
    return start, rng.permutation(np.array(live)), rng.permutation(np.array(ev))


def train_start_router(d: Data, idx: np.ndarray, out: Path, k: int = 8) -> Path:
    from routers.train import train_router

    train_router("cluster", d.table.subset(idx), out, seed=0, k=k)
    return out


def worse_artifact(src: Path, out: Path) -> Path:
    """A deliberately worse candidate: the cluster quality table turned upside down (1 - q)."""
    shutil.copytree(src, out, dirs_exist_ok=True)
    meta = json.loads((out / "router.json").read_text())
    meta["cluster_quality"] = {m: [1.0 - v for v in col] for m, col in meta["cluster_quality"].items()}
    (out / "router.json").write_text(json.dumps(meta))
    return out


def unlabelled_centroids(d: Data, exclude: list[np.ndarray], out: Path, k: int = 8, seed: int = 0) -> Path:
    """k-means centroids of prompts outside every phase: clusters fitted on earlier traffic,
    which needs embeddings only (no labels). The online policy's ``clusters``."""
    from sklearn.cluster import KMeans

    pool = np.setdiff1d(np.arange(len(d.prompts)), np.concatenate(exclude))
    x = embeddings(pool, d)
    cents = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x).cluster_centers_.astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, cents)
    return out


def policy_config(
    fakes: dict[str, str], router: Path, outcomes: Path, online: dict | None = None, clusters: Path | None = None
) -> dict:
    ups = {
        name: {
            "base_url": url,
            "model": MODELS[name][0],
            "input_price": MODELS[name][1],
            "output_price": MODELS[name][2],
            "context_window": 32000,
            "typical_output_tokens": 64,
            "timeouts": {"connect": 2, "first_byte": 30, "total": 60, "idle": 30},
        }
        for name, url in fakes.items()
    }
    router_ref = {"path": str(router), "model_map": {n: MODELS[n][0] for n in MODELS}}
    pol = {
        "candidates": list(MODELS),
        "router": router_ref,
        "objective": {"cost_weight": COST_WEIGHT},
        "reference_model": "gpt-4",
    }
    policies = {"replay": pol}
    online_pol = {
        **pol,
        "router": dict(router_ref),
        "objective": {"cost_weight": ONLINE_COST_WEIGHT},
        "online": online or {"mode": "thompson", "explore": 0.05, "cost_weight": ONLINE_COST_WEIGHT},
    }
    if clusters is not None:
        online_pol["online"] = {**online_pol["online"], "clusters": str(clusters)}
    policies["online"] = online_pol
    return {
        "server": {"outcomes_path": str(outcomes), "admin_key": "os.environ/SHUNTER_ADMIN_KEY"},
        "upstreams": ups,
        "policies": policies,
    }


@dataclass
class Result:
    served: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def quality_cost(self, d: Data) -> tuple[float, float]:
        col = {n: j for j, n in enumerate(MODELS)}
        js = np.array([col[s] for s in self.served])
        r = np.array(self.rows)
        return float(d.quality[r, js].mean()), float(d.cost[r, js].mean())

    def share(self) -> dict[str, float]:
        return {n: self.served.count(n) / max(1, len(self.served)) for n in MODELS}


async def replay(base: str, policy: str, d: Data, rows: np.ndarray, feedback: bool, concurrency: int = 8) -> Result:
    """Send each prompt as a chat request; optionally post the real correctness as feedback."""
    import openai

    res = Result()
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
    http = httpx.AsyncClient(base_url=base, timeout=30)
    sem = asyncio.Semaphore(concurrency)
    col = {n: j for j, n in enumerate(MODELS)}

    async def one(i: int) -> None:
        async with sem:
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model=f"router-{policy}", messages=[{"role": "user", "content": d.prompts[i]}], max_tokens=16
                )
            except Exception:
                res.failed += 1
                return
            served = raw.headers["x-shunter-model"]
            rid = raw.headers["x-shunter-request-id"]
            reason = raw.headers.get("x-shunter-reason", "")
            res.reasons[reason] = res.reasons.get(reason, 0) + 1
            res.served.append(served)
            res.rows.append(int(i))
            res.ids.append(rid)
            if feedback:
                r = await http.post(
                    "/v1/feedback",
                    json={"request_id": rid, "score": float(d.quality[i, col[served]]), "source": "replay"},
                )
                r.raise_for_status()

    await asyncio.gather(*(one(int(i)) for i in rows))
    await client.close()
    await http.aclose()
    return res


def frontier(
    router_path: Path, d: Data, rows: np.ndarray, emb: np.ndarray, lambdas: np.ndarray | None = None
) -> np.ndarray:
    """(cost, quality) of a router on ``rows`` for every cost weight, through ``choose``."""
    from routers.base import load_router
    from routers.decision import Objective, choose

    r = load_router(router_path)
    q = r.score(emb).quality
    names = list(MODELS)
    inner = [r.models.index(MODELS[n][0]) for n in names]
    exp = np.array([expected_cost(n) for n in names])
    lambdas = np.concatenate([[0.0], np.geomspace(1e-3, 10, 80)]) if lambdas is None else lambdas
    pts = []
    for lam in lambdas:
        obj = Objective("cost_weight", float(lam))
        picks = np.array(
            [
                names.index(
                    choose({n: float(q[k, inner[j]]) for j, n in enumerate(names)}, dict(zip(names, exp)), obj).model
                )
                for k in range(len(rows))
            ]
        )
        pts.append((float(d.cost[rows, picks].mean()), float(d.quality[rows, picks].mean())))
    return np.array(pts)


def expected_cost(name: str, prompt_tokens: int = 60, out_tokens: int = 64) -> float:
    _, pin, pout = MODELS[name]
    return (prompt_tokens * pin + out_tokens * pout) / 1e6


def quality_at(points: np.ndarray, cost: float) -> float:
    """The frontier's quality at ``cost``: its upper convex hull, interpolated (mixing two
    operating points at random reaches any point on the segment between them)."""
    from routers.evaluate import upper_hull

    h = upper_hull(points)
    return float(np.interp(cost, h[:, 0], h[:, 1]))


def embeddings(rows: np.ndarray, d: Data) -> np.ndarray:
    from routers.embed_cache import embed_texts

    return embed_texts([d.prompts[i] for i in rows])


# ------------------------------------------------------------------------ processes (bench)
def wait_router(base: str, policy: str, path: str, timeout: float = 30) -> float:
    """Poll /admin/config until the policy's router path is ``path``; returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        cfg = httpx.get(base + "/admin/config", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5).json()
        if cfg["config"]["policies"][policy]["router"]["path"] == path:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"policy {policy} still not on {path}")


class Background:
    """Steady load on a policy while something happens (the hot swap); counts failures."""

    def __init__(self, base: str, policy: str, prompts: list[str]) -> None:
        self.base, self.policy, self.prompts = base, policy, prompts
        self.ok = self.failed = 0
        self.models: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(4)]

    def _run(self, k: int) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            i = k
            while not self._stop.is_set():
                r = c.post(
                    "/v1/chat/completions",
                    json={
                        "model": f"router-{self.policy}",
                        "messages": [{"role": "user", "content": self.prompts[i % len(self.prompts)]}],
                    },
                )
                if r.status_code == 200:
                    self.ok += 1
                    self.models.add(r.headers.get("x-shunter-scores", ""))
                else:
                    self.failed += 1
                i += 4
                time.sleep(0.02)  # steady, not saturating: the retrain shares the CPU

    def __enter__(self) -> Background:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def retrain_cmd(config: Path, policy: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "retrain",
            "--config",
            str(config),
            "--policy",
            policy,
            "--out",
            str(out),
            "--since",
            "0",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SHUNTER_ADMIN_KEY": ADMIN_KEY},
    )


def run_scenario(
    base: str,
    config: Path,
    workdir: Path,
    d: Data,
    start_dir: Path,
    live: np.ndarray,
    ev: np.ndarray,
    log: Callable[[str], None] = print,
    family: str = "cluster",
) -> dict[str, Any]:
    """Phases A, B, retrain + hot swap under load, C, worse-candidate gate, and the online policy.

    ``family``: what ``retrain`` fits (``cluster``: from scratch, the figures in docs/learning.md's
    replay table; ``adapt``: retrain's default, the starting router adapted to the feedback)."""
    out: dict[str, Any] = {
        "family": family,
        "cost_weight": COST_WEIGHT,
        "online_cost_weight": ONLINE_COST_WEIGHT,
        "live": len(live),
        "eval": len(ev),
        "models": {n: m[0] for n, m in MODELS.items()},
    }
    emb_ev = embeddings(ev, d)
    start_front = frontier(start_dir, d, ev, emb_ev)
    a = asyncio.run(replay(base, "replay", d, ev, feedback=False))
    qa, ca = a.quality_cost(d)
    out["start"] = {"quality": qa, "cost_usd": ca, "share": a.share(), "failed": a.failed}
    log(f"A start router on eval: quality {qa:.3f} cost ${ca * 1e3:.3f}/1k-req-units share {a.share()}")
    b = asyncio.run(
        replay(base, "replay", d, live, feedback=True, concurrency=1)
    )  # in order: a deterministic time split
    out["live_phase"] = {"requests": len(b.served), "failed": b.failed, "quality": b.quality_cost(d)[0]}
    # a deliberately worse candidate is refused by the gate
    worse = worse_artifact(start_dir, workdir / "worse")
    rw = retrain_cmd(config, "replay", workdir / "routers", "--candidate", str(worse))
    out["worse_candidate"] = {"exit": rw.returncode, **json.loads(rw.stdout)}
    log(f"worse candidate: exit {rw.returncode} {out['worse_candidate']['reason']}")
    # retrain and publish under load
    with Background(base, "replay", [d.prompts[i] for i in ev[:40]]) as bg:
        rr = retrain_cmd(config, "replay", workdir / "routers", *(["--family", family] if family != "adapt" else []))
        rep = json.loads(rr.stdout)
        out["retrain"] = {"exit": rr.returncode, **rep}
        if rr.returncode == 0:
            new_path = yaml.safe_load(config.read_text())["policies"]["replay"]["router"]["path"]
            out["retrain"]["swap_seconds"] = wait_router(base, "replay", new_path)
            time.sleep(0.5)
    out["hot_swap_load"] = {"ok": bg.ok, "failed": bg.failed, "distinct_score_headers": len(bg.models)}
    log(f"retrain: exit {rr.returncode} {rep.get('reason')}; load during swap ok={bg.ok} failed={bg.failed}")
    if rr.returncode == 0:  # RouterBench AIQ of both routers on the eval prompts (the routers' own metric)
        from routers.evaluate import aiq

        new_dir = Path(out["retrain"]["report_file"]).parent
        singles = d.cost[ev].mean(0)
        lo, hi = float(singles.min()), float(singles.max())
        out["aiq"] = {"start": aiq(start_front, lo, hi), "retrained": aiq(frontier(new_dir, d, ev, emb_ev), lo, hi)}
    c = asyncio.run(replay(base, "replay", d, ev, feedback=False))
    qc, cc = c.quality_cost(d)
    out["retrained"] = {
        "quality": qc,
        "cost_usd": cc,
        "share": c.share(),
        "failed": c.failed,
        "start_frontier_quality_at_same_cost": quality_at(start_front, cc),
    }
    log(
        f"C retrained on eval: quality {qc:.3f} cost {cc:.6f} (start frontier at that cost: {quality_at(start_front, cc):.3f})"
    )
    # online policy: learns from the same live traffic, then the eval prompts
    ob = asyncio.run(replay(base, "online", d, live, feedback=True, concurrency=1))
    oc = asyncio.run(replay(base, "online", d, ev, feedback=False))
    qo, co = oc.quality_cost(d)
    state = httpx.get(
        base + "/admin/policies/online/state", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ).json()
    out["online"] = {
        "quality": qo,
        "cost_usd": co,
        "share": oc.share(),
        "failed": oc.failed + ob.failed,
        "start_frontier_quality_at_same_cost": quality_at(start_front, co),
        "explored_share": state["explored_share"],
        "feedback": state["feedback"],
        "reasons_eval": oc.reasons,
    }
    log(
        f"online on eval: quality {qo:.3f} cost {co:.6f} (start frontier at that cost: {quality_at(start_front, co):.3f}); explored {state['explored_share']:.3f}"
    )
    out["start_frontier"] = start_front.tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", type=int, default=300)
    ap.add_argument("--live", type=int, default=600)
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replay.json")
    ap.add_argument("--family", default="cluster", help="what retrain fits: cluster (from scratch) or adapt")
    args = ap.parse_args()
    d = load_data()
    start, live, ev = split(d, args.start, args.live, args.eval, args.seed)
    work = Path(tempfile.mkdtemp(prefix="replay-"))
    procs: list[subprocess.Popen] = []
    try:
        start_dir = train_start_router(d, start, work / "start")
        fakes = {}
        for name, (model_id, _, _) in MODELS.items():
            port = free_port()
            p = subprocess.Popen(
                [sys.executable, str(FAKE), "--port", str(port), "--model-id", model_id],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/v1/models", p)
            fakes[name] = f"http://127.0.0.1:{port}/v1"
        config = work / "policy.yaml"
        cents = unlabelled_centroids(d, [start, live, ev], work / "centroids.npy")
        config.write_text(
            yaml.safe_dump(policy_config(fakes, start_dir, work / "outcomes.sqlite", clusters=cents), sort_keys=False)
        )
        port = free_port()
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **GATEWAY_ENV},
            stdout=open(work / "gateway.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(gw)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/readyz", gw)
        res = run_scenario(base, config, work, d, start_dir, live, ev, family=args.family)
        res["split"] = {"start_arc_only": len(start), "seed": args.seed}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps({k: v for k, v in res.items() if k != "start_frontier"}, indent=2))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
