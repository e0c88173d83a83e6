"""Hot reload through a running gateway: no request lost under load, broken files rejected.

Policy A sends everything to fake upstream X, policy B to Y. While 3 openai-SDK clients send a
steady stream, the file is swapped between A and B. Every response must be 200 and served by
the policy in force when the request arrived: the outcome record's arrival time is compared with
the reload times reported by GET /admin/config (the swap and its timestamp happen in one
event-loop step, so there is no ambiguous window).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.policies import chat, outcome
from tests.support.wait import holds_for, wait_until

ADMIN = "reload-admin-key"
AUTH = {"authorization": f"Bearer {ADMIN}"}


def policy_text(x, y, first: str, outcomes: Path) -> str:
    """A valid policy file whose `chat` policy serves `first` (policy order, no router)."""
    second = "y" if first == "x" else "x"
    return f"""\
# yaml-language-server: $schema=./schema.json
server:
  outcomes_path: {outcomes}
upstreams:
  x:
    base_url: {x.base_url}
    model: {x.model_id}
  y:
    base_url: {y.base_url}
    model: {y.model_id}
policies:
  chat:
    candidates:
    - {first}
    - {second}
"""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def admin_config(gw) -> dict:
    return httpx.get(f"{gw.url}/admin/config", headers=AUTH, timeout=5).json()


def wait_reload(gw, since: float, timeout: float = 10.0) -> dict:
    """Wait until a reload newer than ``since`` is reported (accepted or rejected)."""

    def reported() -> dict | None:
        last = admin_config(gw).get("last_reload") or {}
        return last if last.get("at", 0) > since else None

    return wait_until(reported, timeout, 0.02, "a reload reported")


def watcher_armed(gw, path: Path, text: str) -> None:
    """Until the file watcher reacts: it starts with the app and may not be armed the instant
    /readyz answers, so rewrite the file (same policy) until a reload is reported."""

    def rewritten_and_reloaded() -> bool:
        before = admin_config(gw)["loaded_at"]
        write_atomic(path, text)
        try:
            return bool(wait_reload(gw, before, 1.0))
        except TimeoutError:
            return False

    wait_until(rewritten_and_reloaded, 30, 0, "the file watcher reacts")


def reload_counter(gw, result: str) -> float:
    for line in httpx.get(f"{gw.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("shunter_config_reloads_total{") and f'result="{result}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def setup(gateway, fake_upstream, tmp_path):
    x, y = fake_upstream("x-v1"), fake_upstream("y-v1")
    db = tmp_path / "out.sqlite"
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(x, y, "x", db))

    def start(args=None):
        return gateway(path, env={"SHUNTER_ADMIN_KEY": ADMIN}, args=args)

    return start, path, x, y, db


def test_reload_under_load_loses_no_request(setup):
    start, path, x, y, db = setup
    gw = start()
    texts = {"x": policy_text(x, y, "x", db), "y": policy_text(x, y, "y", db)}
    watcher_armed(gw, path, texts["x"])
    timeline = [(admin_config(gw)["loaded_at"], "x")]
    results: list[tuple[int, str, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker():
        c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=10)
        while not stop.is_set():
            try:
                raw = c.chat.completions.with_raw_response.create(
                    model="router-chat", messages=[{"role": "user", "content": "hi"}]
                )
                results.append((raw.status_code, raw.parse().model, raw.headers["x-shunter-request-id"]))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            seen = len(results)  # some requests on each policy before the next swap
            wait_until(lambda seen=seen: len(results) >= seen + 8 or errors, 30, 0.02, "requests served")
            target = "y" if i % 2 == 0 else "x"
            before = timeline[-1][0]
            write_atomic(path, texts[target])
            last = wait_reload(gw, before)
            assert last["ok"] and last["trigger"] == "file", last
            timeline.append((admin_config(gw)["loaded_at"], target))
        seen = len(results)
        wait_until(lambda: len(results) >= seen + 8 or errors, 30, 0.02, "requests served")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors[:3]
    assert len(results) >= 30 and {s for s, _, _ in results} == {200}
    assert len(timeline) == 7 and all(a < b for (a, _), (b, _) in zip(timeline, timeline[1:]))
    served = {"x": 0, "y": 0}
    for _status, model, rid in results:
        row = outcome(db, rid)
        in_force = [p for at, p in timeline if at <= row["ts"]][-1]
        assert model == in_force == row["served"], (row["ts"], timeline, model)
        served[model] += 1
    assert served["x"] > 5 and served["y"] > 5
    print(f"reload under load: {len(results)} requests, 6 reloads, 0 lost; served x={served['x']} y={served['y']}")


def test_broken_file_keeps_old_policy_and_reports_why(setup):
    start, path, x, y, db = setup
    gw = start()
    watcher_armed(gw, path, policy_text(x, y, "x", db))
    assert chat(gw, "hi")[0].model == "x"
    rejected0 = reload_counter(gw, "rejected")
    before = admin_config(gw)["loaded_at"]
    broken = policy_text(x, y, "y", db).replace("    - x\n", "    - x\n    - gpt4\n")
    assert broken.splitlines()[15] == "    - gpt4"
    write_atomic(path, broken)
    last = wait_reload(gw, before)
    expected = f"{path}:16:5 policies.chat.candidates[2]: unknown upstream 'gpt4' (known: x, y)"
    assert last["ok"] is False and last["trigger"] == "file"
    assert last["errors"] == [expected]
    cfg = admin_config(gw)
    assert cfg["loaded_at"] == before and cfg["config"]["policies"]["chat"]["candidates"] == ["x", "y"]
    assert chat(gw, "hi")[0].model == "x"  # the old policy is still in force
    assert reload_counter(gw, "rejected") == rejected0 + 1
    wait_until(lambda: expected in gw.output(), 5, 0.05, "the rejection logged with its reason")


def test_sighup_and_admin_reload(setup):
    start, path, x, y, db = setup
    gw = start(args=["--no-watch"])
    assert chat(gw, "hi")[0].model == "x"
    # the file changes, nothing watches it
    before = admin_config(gw)["loaded_at"]
    write_atomic(path, policy_text(x, y, "y", db))
    holds_for(lambda: chat(gw, "hi")[0].model == "x", 0.6, 0.1, "no reload without the watcher")
    gw.proc.send_signal(signal.SIGHUP)
    last = wait_reload(gw, before)
    assert last["ok"] and last["trigger"] == "sighup"
    assert last["changes"] == ["policies changed: chat (candidates)"]
    assert chat(gw, "hi")[0].model == "y"
    logged = f"policy file {path} reloaded (sighup): policies changed: chat (candidates)"
    wait_until(lambda: logged in gw.output(), 5, 0.05, "the reload logged with what changed")
    # POST /admin/reload needs the admin key
    write_atomic(path, policy_text(x, y, "x", db))
    r = httpx.post(f"{gw.url}/admin/reload", timeout=10)
    assert r.status_code == 401
    r = httpx.post(f"{gw.url}/admin/reload", headers={"authorization": "Bearer wrong"}, timeout=10)
    assert r.status_code == 401
    assert chat(gw, "hi")[0].model == "y"
    r = httpx.post(f"{gw.url}/admin/reload", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["trigger"] == "admin"
    assert chat(gw, "hi")[0].model == "x"
    # a broken file through the admin endpoint: 400 with the errors, old policy kept
    write_atomic(path, "upstreams: {}\npolicies: [\n")
    r = httpx.post(f"{gw.url}/admin/reload", headers=AUTH, timeout=10)
    assert r.status_code == 400 and r.json()["ok"] is False
    assert r.json()["errors"] == [f"{path}:2:11 YAML syntax error: the '[' that opens here is not closed"]
    assert chat(gw, "hi")[0].model == "x"


def test_reload_to_semantic_routes_starts_the_encoder(setup):
    """A file with no router reloaded into one with semantic routes: the encoder is started then."""
    start, path, x, y, db = setup
    gw = start()
    assert chat(gw, "write a python function")[0].model == "x"
    before = admin_config(gw)["loaded_at"]
    text = policy_text(x, y, "x", db) + (
        "    semantic_routes:\n"
        "    - name: code\n      model: y\n      threshold: 0.4\n"
        "      utterances: [write a python function that sorts a list]\n"
    )
    write_atomic(path, text)
    last = wait_reload(gw, before, timeout=60)
    assert last["ok"], last
    resp, h = chat(gw, "write a python function that reverses a list")
    assert (resp.model, h["x-shunter-reason"]) == ("y", "semantic")
    assert chat(gw, "what is the capital of peru")[0].model == "x"


def test_in_flight_stream_finishes_on_the_old_policy(setup):
    """A stream that started under policy A completes after B (with a rebuilt client for X) is swapped in."""
    start, path, x, y, db = setup
    gw = start()
    x.control(chunk_delay=0.6)
    c = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=30)
    stream = c.chat.completions.create(
        model="router-chat", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    it = iter(stream)
    first = next(it)
    assert first.model == "x"
    before = admin_config(gw)["loaded_at"]
    # B puts y first and changes x's settings, so x's connection pool is replaced
    write_atomic(
        path,
        policy_text(x, y, "y", db).replace(
            f"    model: {x.model_id}\n", f"    model: {x.model_id}\n    max_concurrency: 7\n"
        ),
    )
    assert wait_reload(gw, before)["ok"]
    assert chat(gw, "new request")[0].model == "y"
    swapped = time.monotonic()
    rest = []
    for ch in it:
        rest.append((time.monotonic(), ch))
    assert rest[-1][0] > swapped + 0.2  # the stream really was still running under the new policy
    rest = [ch for _, ch in rest]
    text = (first.choices[0].delta.content or "") + "".join(
        ch.choices[0].delta.content or "" for ch in rest if ch.choices
    )
    assert text == "Echo: one two three four" and {ch.model for ch in rest} == {"x"}
    assert rest[-1].choices[0].finish_reason == "stop"
