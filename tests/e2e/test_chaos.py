"""Chaos: random upstream faults under concurrent load, one healthy fallback (bench/chaos.py).

Bounded: a few hundred requests at concurrency 8, ~10 s each run on 2 cores.
"""

from __future__ import annotations

import json

import pytest

from bench.chaos import run

CHAOS = {"500": 0.1, "429": 0.08, "timeout": 0.05, "reset": 0.06, "midstream": 0.1}
BODY_CHAOS = {
    "non_json": 0.05,
    "json_list": 0.03,
    "wrong_choices": 0.03,
    "string_usage": 0.03,
    "reset_mid_body": 0.06,
    "bad_chunk": 0.04,
    "non_json_chunk": 0.04,
}


def _check(rep: dict) -> None:
    print(json.dumps(rep, indent=2))
    fails = rep["client_visible_failures"]
    assert fails["before_first_byte"] == 0, rep["examples"]  # every fault before the first byte was absorbed
    assert fails["unclean"] == 0, rep["examples"]  # mid-stream failures end in a clean error event
    assert fails["midstream_clean_error"] <= rep["stream_faults_after_first_byte"]
    assert rep["ok"] + fails["midstream_clean_error"] == rep["requests_sent"]
    assert rep["records"]["lost"] == 0 and rep["records"]["request_ids_seen"] == rep["requests_sent"]
    assert rep["records"]["integrity"] == "ok"


@pytest.mark.timeout(180)
def test_chaos_without_breaker_every_fault_is_exercised(tmp_path):
    rep = run(requests=400, concurrency=8, chaos=CHAOS, seed=3, retry_after=None, workdir=tmp_path)
    _check(rep)
    for kind in CHAOS:  # the breaker is off so the faulty upstream keeps taking traffic
        assert rep["faults_injected"].get(kind, 0) > 0, rep["faults_injected"]
    assert rep["client_visible_failures"]["midstream_clean_error"] > 0


@pytest.mark.timeout(180)
def test_chaos_with_breaker_and_retry_after(tmp_path):
    rep = run(requests=300, concurrency=8, chaos=CHAOS, seed=5, breaker=True, retry_after=0.2, workdir=tmp_path)
    _check(rep)
    assert rep["faults_injected"]["total"] > 0


@pytest.mark.timeout(240)
def test_chaos_through_a_redis_outage(tmp_path):
    """Shared state in a redis-server that is frozen, then stopped and restarted, mid-load: every
    request still answered, every record in the stream (spilled while Redis was away, replayed)."""
    rep = run(
        requests=300,
        concurrency=8,
        chaos=CHAOS,
        seed=7,
        retry_after=None,
        workdir=tmp_path,
        body_chaos=BODY_CHAOS,
        redis_outage=True,
    )
    _check(rep)
    assert [e.split(" ")[0] for e in rep["redis_outage"]] == ["freeze", "thaw", "stop", "start"], rep["redis_outage"]


@pytest.mark.timeout(180)
def test_chaos_with_malformed_200s_and_mid_body_resets(tmp_path):
    """Malformed 200s (non-JSON, a list, choices a string, usage strings) and bodies reset half way
    are failed attempts that fall back: no client sees them unless a stream had already started."""
    rep = run(requests=400, concurrency=8, chaos={}, seed=11, retry_after=None, workdir=tmp_path, body_chaos=BODY_CHAOS)
    _check(rep)
    for kind in BODY_CHAOS:
        assert rep["faults_injected"].get(kind, 0) > 0, rep["faults_injected"]
