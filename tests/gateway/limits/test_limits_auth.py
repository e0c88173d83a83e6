"""Virtual keys, rate limits and budgets through a running gateway (auth on)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.support.paths import ROOT
from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

ADMIN = "admin-secret-for-tests-123"


def _cfg(a, b, tmp_path, **server) -> dict:
    return {
        "server": {"auth": True, "outcomes_path": str(tmp_path / "gw.sqlite"), **server},
        "upstreams": {
            # expensive prices so a few requests exhaust a small budget
            "cheap": upstream_entry(a, input_price=1000.0, output_price=1000.0),
            "strong": upstream_entry(b, input_price=2000.0, output_price=2000.0),
        },
        "policies": {
            "chat": {"candidates": ["cheap", "strong"], "max_prompt_tokens": 50},
            "code": {"candidates": ["strong", "cheap"]},
        },
    }


def _client(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _create(gw, **spec) -> dict:
    r = httpx.post(f"{gw.url}/admin/keys", json=spec, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def _spent(gw, key_id: str) -> float:
    listed = httpx.get(f"{gw.url}/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).json()
    return next(k["spent_usd"] for k in listed["data"] if k["id"] == key_id)


def _ask(c: openai.OpenAI, model: str = "router-chat", text: str = "hi"):
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


@pytest.fixture
def gw(gateway, fake_upstream, tmp_path):
    a, b = fake_upstream("a"), fake_upstream("b")
    return gateway(_cfg(a, b, tmp_path), env={"SHUNTER_ADMIN_KEY": ADMIN})


def test_auth_required_and_keys_are_stored_hashed(gw, tmp_path):
    with pytest.raises(openai.AuthenticationError) as ei:
        _ask(_client(gw, "sk-sy-nope"))
    assert ei.value.body["code"] == "invalid_api_key"
    r = httpx.get(f"{gw.base_url}/models", timeout=5)
    assert r.status_code == 401 and "Missing API key" in r.json()["error"]["message"]
    # admin endpoints need the admin key, not a virtual key
    assert httpx.post(f"{gw.url}/admin/keys", json={}, timeout=5).status_code == 401
    made = _create(gw, name="team-a", policies=["chat"])
    key = made["key"]
    assert key.startswith("sk-sy-") and made["id"].startswith("key_")
    r = _client(gw, key).chat.completions.with_raw_response.create(
        model="router-chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert r.parse().choices[0].message.content == "Echo: hello"
    # only the hash is on disk; the plain key appears nowhere in the file
    raw = (tmp_path / "gw.sqlite").read_bytes()
    assert key.encode() not in raw
    db = sqlite3.connect(tmp_path / "gw.sqlite")
    assert (
        db.execute("SELECT hash FROM api_keys WHERE id=?", (made["id"],)).fetchone()[0]
        == hashlib.sha256(key.encode()).hexdigest()
    )
    # the outcome record carries the key id
    rid = r.headers["x-shunter-request-id"]
    row = wait_until(
        lambda: db.execute("SELECT key_id FROM outcomes WHERE request_id=?", (rid,)).fetchone(), 10, 0.1, "outcome"
    )
    assert row == (made["id"],)
    # listing never shows the key; revoking takes effect at once
    listed = httpx.get(f"{gw.url}/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5).json()["data"]
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    assert (
        httpx.delete(
            f"{gw.url}/admin/keys/{made['id']}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
        ).status_code
        == 200
    )
    with pytest.raises(openai.AuthenticationError):
        _ask(_client(gw, key))


def test_allowed_policies_and_models(gw):
    key = _create(gw, policies=["chat"])["key"]
    c = _client(gw, key)
    assert _ask(c).model == "cheap"
    with pytest.raises(openai.PermissionDeniedError) as ei:
        _ask(c, "router-code")
    assert ei.value.body["code"] == "policy_not_allowed" and "'code'" in ei.value.message
    with pytest.raises(openai.PermissionDeniedError) as ei:  # a policy-limited key cannot bypass routing
        _ask(c, "strong")
    assert ei.value.body["code"] == "model_not_allowed"
    direct = _client(gw, _create(gw, policies=["chat"], models=["strong"])["key"])
    assert _ask(direct, "strong").model == "strong"


def test_rpm_limit_returns_429_with_retry_after(gw):
    c = _client(gw, _create(gw, rpm=3)["key"])
    for _ in range(3):
        _ask(c)
    with pytest.raises(openai.RateLimitError) as ei:
        _ask(c)
    assert ei.value.body["code"] == "rate_limit_exceeded"
    ra = int(ei.value.response.headers["retry-after"])
    assert 1 <= ra <= 60
    # another key is not affected
    _ask(_client(gw, _create(gw, rpm=3)["key"]))


def test_tpm_limit_counts_prompt_and_completion_tokens(gw):
    c = _client(gw, _create(gw, tpm=40)["key"])
    text = " ".join(["word"] * 20)  # ~25 prompt tokens (len/4 estimate) + ~22 completion tokens
    _ask(c, text=text)
    with pytest.raises(openai.RateLimitError) as ei:
        _ask(c, text=text)
    assert "tokens per minute" in ei.value.message and ei.value.response.headers["retry-after"]


def test_budget_exhausted_is_402_with_clear_message(gw):
    made = _create(gw, budget_usd=0.02, budget_period="day")
    c = _client(gw, made["key"])
    # each call costs (5 prompt + 6 completion tokens) * $1000/M = $0.011 on 'cheap'; the charge
    # is added just after the response, off the request path
    for n in (1, 2):
        _ask(c, text="a b c d e")
        wait_until(lambda n=n: _spent(gw, made["id"]) >= n * 0.011 - 1e-9, 10, 0.05, f"call {n} charged")
    with pytest.raises(openai.APIStatusError) as ei:
        _ask(c)
    assert ei.value.status_code == 402
    assert ei.value.body["code"] == "budget_exceeded"
    assert "Budget exhausted" in ei.value.message and "$0.02" in ei.value.message


def test_max_prompt_tokens_per_policy(gw):
    c = _client(gw, _create(gw)["key"])
    with pytest.raises(openai.BadRequestError) as ei:
        _ask(c, text="x" * 400)  # ~100 tokens > 50
    assert ei.value.body["code"] == "prompt_too_long" and "at most 50" in ei.value.message
    assert _ask(c, "router-code", text="x" * 400).model == "strong"  # no limit on that policy


def test_cli_creates_a_key_the_running_gateway_accepts(gw):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "keys",
            "create",
            "--config",
            str(gw.config),
            "--budget",
            "20",
            "--rpm",
            "60",
            "--tpm",
            "100000",
            "--policies",
            "chat,code",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-sy-") and "shown once" in out.stderr
    assert _ask(_client(gw, key)).model == "cheap"
    listed = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "list", "--config", str(gw.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"rpm": 60' in listed.stdout and key not in listed.stdout


def test_metrics_can_require_the_admin_key(gateway, fake_upstream, tmp_path):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(_cfg(a, b, tmp_path, metrics_auth=True), env={"SHUNTER_ADMIN_KEY": ADMIN})
    assert httpx.get(f"{gw.url}/metrics", timeout=5).status_code == 401
    r = httpx.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
    assert r.status_code == 200 and "shunter_requests_total" in r.text


def test_auth_off_prints_how_to_turn_it_on(gateway, fake_upstream):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(
        {
            "upstreams": {"cheap": upstream_entry(a), "strong": upstream_entry(b)},
            "policies": {"chat": {"candidates": ["cheap", "strong"]}},
        }
    )
    assert _ask(_client(gw, "anything")).model == "cheap"
    wait_until(lambda: "auth is off" in gw.output(), 5, 0.1, "the auth warning in the log")
    log = gw.output()
    assert "auth is off" in log and "shunter keys create" in log and "auth: true" in log


def test_keys_and_limits_are_shared_across_replicas_through_redis(gateway, fake_upstream, tmp_path, redis_server):
    a, b = fake_upstream("a"), fake_upstream("b")
    env = {"SHUNTER_ADMIN_KEY": ADMIN}
    # separate SQLite files: replicas share only Redis (keys mirrored, counters shared)
    gw1 = gateway(_cfg(a, b, tmp_path, redis_url=redis_server, outcomes_path=str(tmp_path / "r1.sqlite")), env=env)
    gw2 = gateway(_cfg(a, b, tmp_path, redis_url=redis_server, outcomes_path=str(tmp_path / "r2.sqlite")), env=env)
    # rpm counts per wall-clock minute: a sequence that straddles a minute boundary starts a
    # new window halfway, so it is run again with a fresh key (the second run takes seconds)
    for _attempt in range(2):
        minute = int(time.time() // 60)
        key = _create(gw1, rpm=4)["key"]
        for gw in (gw1, gw2, gw1, gw2):
            _ask(_client(gw, key))
        limited = []
        for gw in (gw1, gw2):
            try:
                _ask(_client(gw, key))
                limited.append(False)
            except openai.RateLimitError:
                limited.append(True)
        if int(time.time() // 60) == minute:
            break
    assert limited == [True, True]
    # a key made by the CLI into yet another file is accepted by both replicas
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "keys",
            "create",
            "--config",
            str(gw1.config),
            "--db",
            str(tmp_path / "cli.sqlite"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    cli_key = out.stdout.strip().splitlines()[-1]
    assert _ask(_client(gw1, cli_key)).model == "cheap" and _ask(_client(gw2, cli_key)).model == "cheap"
    # revoking on one replica refuses the key on the other
    other = _create(gw1)
    assert _ask(_client(gw2, other["key"])).model == "cheap"
    assert (
        httpx.delete(
            f"{gw1.url}/admin/keys/{other['id']}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
        ).status_code
        == 200
    )
    with pytest.raises(openai.AuthenticationError):
        _ask(_client(gw2, other["key"]))
