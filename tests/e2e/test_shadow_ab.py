"""The shadow A/B of ``shunter retrain --dry-run`` on judged requests (real RouterBench prompts, the
data set's own per-model outcomes as the judge's scores), then the same comparison from a running
gateway's ``GET /admin/policies/{name}/learning``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import yaml

from bench import replay as R
from gateway.outcomes.record import Outcome
from gateway.outcomes.sqlite import SQLiteStore
from tests.support.paths import DATA, ROOT

pytestmark = pytest.mark.skipif(not (DATA / "routerbench").exists(), reason="shared RouterBench data not present")
NAMES = list(R.MODELS)


def fill_store(db, d, live) -> None:
    emb = R.embeddings(live, d)
    now = time.time()
    store = SQLiteStore(db)
    store.write_batch(
        [
            Outcome(
                request_id=f"req_{k}",
                ts=now - 1000 + k,
                policy="replay",
                served="claude-instant",
                chosen="claude-instant",
                embedding=emb[k].astype(np.float16).tobytes(),
                prompt_tokens=200,
                completion_tokens=40,
            )
            for k in range(len(live))
        ]
    )
    store.close()


def judge_file(path, d, live) -> None:
    """Every model's score on every request, as shadow sampling stores them (judge / judge@model)."""
    lines = []
    for k, i in enumerate(live):
        for j, name in enumerate(NAMES):
            row = {"request_id": f"req_{k}", "score": float(d.quality[i, j])}
            if name != "claude-instant":
                row["model"] = name
            lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))


def test_dry_run_prints_the_ab_table_and_the_admin_endpoint_serves_it(tmp_path, gateway, fake_upstream):
    d = R.load_data()
    start, live, _ = R.split(d, n_start=300, n_live=200, n_eval=10, seed=3)
    start_dir = R.train_start_router(d, start, tmp_path / "start")
    db = tmp_path / "o.sqlite"
    fake = fake_upstream("m-v1")
    config = tmp_path / "policy.yaml"
    config.write_text(
        yaml.safe_dump(R.policy_config({n: fake.base_url for n in NAMES}, start_dir, db), sort_keys=False)
    )
    before = config.read_text()
    fill_store(db, d, live)
    judge_file(tmp_path / "judge.jsonl", d, live)
    out = tmp_path / "routers"
    plot = tmp_path / "ab.png"
    cmd = ["--policy", "replay", "--judge", str(tmp_path / "judge.jsonl"), "--out", str(out), "--margin", "0"]
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "retrain", "--config", str(config), *cmd, "--dry-run", "--plot", str(plot)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert r.returncode in (0, 3), r.stderr
    assert config.read_text() == before  # a dry run never publishes
    (report_file,) = out.glob("replay/*/report.json")
    report = json.loads(report_file.read_text())
    ab = report["shadow_ab"]
    assert report["dry_run"] is True and report["decision"] == "refused" and report["reason"].endswith("--dry-run")
    assert (r.returncode == 0) == report["would_publish"]
    # every held-back request is judged for all three models: the A/B covers the whole slice
    assert ab["requests"] == report["data"]["holdout_rows"] == 40
    for side in ("current", "candidate"):
        assert sum(ab["routers"][side]["picks"].values()) == 40
        assert 0.0 <= ab["routers"][side]["quality"] <= 1.0 and ab["routers"][side]["cost_usd"] > 0
    q = ab["quality_diff"]
    assert q["lower"] <= q["mean"] <= q["upper"]
    assert q["mean"] == pytest.approx(ab["routers"]["candidate"]["quality"] - ab["routers"]["current"]["quality"])
    assert ("A/B: " + ab["reason"]) in report["reason"]
    assert "shadow A/B on 40 judged requests" in r.stdout and "candidate - current" in r.stdout
    verdict = "would publish" if report["would_publish"] else "would not publish"
    assert f"dry run: {verdict}: " in r.stdout and str(report_file.name) in r.stdout
    print(r.stdout)  # the table, for `pytest -s` (the replay figures in docs/learning.md)
    assert plot.stat().st_size > 0

    gw = gateway(config, env={"SHUNTER_ADMIN_KEY": R.ADMIN_KEY, "SHUNTER_RETRAIN_DIR": str(out)})
    url = f"{gw.url}/admin/policies/replay/learning"
    assert httpx.get(url).status_code == 401
    got = httpx.get(url, headers={"authorization": f"Bearer {R.ADMIN_KEY}"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["shadow_ab"] == ab and body["report"]["would_publish"] == report["would_publish"]
    assert body["live_router"] == str(start_dir)
    missing = httpx.get(f"{gw.url}/admin/policies/nope/learning", headers={"authorization": f"Bearer {R.ADMIN_KEY}"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "policy_not_found"

    # a cascade candidate: its relative quality (strong = 1) has no comparable Brier, so the A/B
    # on the 40 judged requests decides alone
    cas = subprocess.run(
        [sys.executable, "-m", "gateway", "retrain", "--config", str(config), *cmd[:4], "--family", "cascade"]
        + ["--out", str(tmp_path / "cascade"), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cas.returncode in (0, 3), cas.stderr
    (cas_file,) = (tmp_path / "cascade").glob("replay/*/report.json")
    cas_report = json.loads(cas_file.read_text())
    assert cas_report["metrics"]["comparable"] is False and cas_report["shadow_ab"]["requests"] == 40
    assert (
        "brier not comparable: the candidate router scores relative quality, the A/B decides: " in cas_report["reason"]
    )
    assert cas_report["would_publish"] == cas_report["shadow_ab"]["passed"] == (cas.returncode == 0)
