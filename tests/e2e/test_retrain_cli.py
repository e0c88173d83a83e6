"""``shunter retrain`` as a process on a store filled with real RouterBench prompts: an
LLM-judge file as the only labels, --no-publish, the minimum-rows refusal, unknown policy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import replay as R
from gateway.outcomes.record import Outcome
from gateway.outcomes.sqlite import SQLiteStore
from tests.support.paths import DATA, ROOT
from tests.support.procs import free_port

pytestmark = pytest.mark.skipif(not (DATA / "routerbench").exists(), reason="shared RouterBench data not present")


def retrain(config, *args):
    return subprocess.run(
        [sys.executable, "-m", "gateway", "retrain", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_retrain_with_judge_file_no_publish_and_refusals(tmp_path):
    d = R.load_data()
    start, live, _ = R.split(d, n_start=300, n_live=200, n_eval=10, seed=3)
    start_dir = R.train_start_router(d, start, tmp_path / "start")
    db = tmp_path / "o.sqlite"
    fakes = {n: "http://127.0.0.1:9/v1" for n in R.MODELS}
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(R.policy_config(fakes, start_dir, db), sort_keys=False))
    before = config.read_text()
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
                cost_usd=0.001,
            )
            for k in range(len(live))
        ]
    )
    store.close()
    judge = tmp_path / "judge.jsonl"
    judge.write_text(
        "".join(
            json.dumps({"request_id": f"req_{k}", "score": float(d.quality[i, 1])}) + "\n" for k, i in enumerate(live)
        )
    )

    r = retrain(
        config,
        "--policy",
        "replay",
        "--judge",
        str(judge),
        "--no-publish",
        "--out",
        str(tmp_path / "routers"),
        "--margin",
        "0",
    )
    assert r.returncode == 3, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] == "refused" and out["reason"].endswith("--no-publish")
    report = json.loads(open(out["report_file"]).read())
    assert report["data"]["judge"] == {"file": str(judge), "items": len(live)}
    assert report["data"]["usable"] == len(live) and report["data"]["holdout_rows"] == 40
    # the default adapts the deployed router: a prior strength chosen among the grid, base kept inside
    from routers.adapt import GRID

    assert report["family"] == "adapt" and len(report["selection"]["tried"]) == len(GRID)
    cand = json.loads(open(report["candidate"] + "/router.json").read())
    assert cand["kind"] == "adapted" and cand["base_kind"] == "cluster"
    assert cand["adaptation"]["judged_rows"] == report["data"]["train_rows"]
    assert (tmp_path / "routers" / "replay").exists() and config.read_text() == before
    # the candidate remembers which requests it learnt from; deployed and retrained on the same
    # store, it is refitted from its original base with every row instead of corrected again
    learnt = json.loads(open(report["candidate"] + "/judged_ids.json").read())["ids"]
    assert len(learnt) == report["data"]["train_rows"] and set(learnt) <= {f"req_{k}" for k in range(len(live))}
    deployed = tmp_path / "deployed.yaml"
    deployed.write_text(yaml.safe_dump(R.policy_config(fakes, Path(report["candidate"]), db), sort_keys=False))
    again = retrain(deployed, "--policy", "replay", "--no-publish", "--out", str(tmp_path / "r3"), "--margin", "0")
    assert again.returncode == 3, again.stderr
    cand2 = json.loads(
        open(json.loads(open(json.loads(again.stdout)["report_file"]).read())["candidate"] + "/router.json").read()
    )
    assert cand2["adaptation"]["rows"] == {"mode": "refit from the original base", "judged": len(learnt)}
    assert cand2["base_kind"] == "cluster"
    scratch = retrain(
        config, "--policy", "replay", "--family", "cluster", "--no-publish", "--out", str(tmp_path / "r2")
    )
    assert scratch.returncode == 3, scratch.stderr
    report2 = json.loads(open(json.loads(scratch.stdout)["report_file"]).read())
    assert report2["selection"]["chosen"]["k"] == 8 and len(report2["selection"]["tried"]) == 5
    assert SQLiteStore(db).feedback("req_0")[0].source == "judge"
    # a cascade candidate's quality is relative (strong = 1): its Brier is not compared; with no
    # judged requests for the A/B, it is refused and says why
    cascade = retrain(
        config, "--policy", "replay", "--family", "cascade", "--margin", "0", "--out", str(tmp_path / "r4")
    )
    assert cascade.returncode == 3, cascade.stderr
    why = json.loads(cascade.stdout)["reason"]
    assert why.startswith("brier not comparable: the candidate router scores relative quality"), why
    assert "A/B not applied" in why and config.read_text() == before

    few = retrain(config, "--policy", "replay", "--min-rows", "100000", "--out", str(tmp_path / "routers"))
    assert few.returncode == 3 and "only 200 labelled requests" in json.loads(few.stdout)["reason"]
    assert retrain(config, "--policy", "nope").returncode == 2
    old = retrain(config, "--policy", "replay", "--since", "1m", "--out", str(tmp_path / "routers"))
    assert old.returncode == 3 and "only 0 labelled requests" in json.loads(old.stdout)["reason"]
    missing = retrain(config, "--policy", "replay", "--db", str(tmp_path / "typo.sqlite"))
    assert missing.returncode == 2 and f"no outcome store at {tmp_path / 'typo.sqlite'}" in missing.stderr
    assert not (tmp_path / "typo.sqlite").exists()
    # the policy file keeps its outcomes in a Redis that is down: one line saying so, nothing created
    down = yaml.safe_load(config.read_text())
    down.setdefault("server", {})["redis_url"] = f"redis://127.0.0.1:{free_port()}/0"
    (tmp_path / "down.yaml").write_text(yaml.safe_dump(down, sort_keys=False))
    unreachable = retrain(tmp_path / "down.yaml", "--policy", "replay", "--db", str(tmp_path / "fresh.sqlite"))
    assert unreachable.returncode == 2 and "Traceback" not in unreachable.stderr
    assert "retrain: Redis at 127.0.0.1:" in unreachable.stderr and "is unreachable" in unreachable.stderr
    assert not (tmp_path / "fresh.sqlite").exists()
