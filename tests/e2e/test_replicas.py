"""Two gateway replicas on different ports share one real redis-server (``server.redis_url``).

- a per-key rate limit of N requests per minute, and a USD budget, hold across both replicas combined;
- outcomes from both land in the one Redis stream, each request exactly once;
- the response cache and circuit-breaker openings are shared.
"""

from __future__ import annotations

import itertools

import httpx
import orjson
import pytest
import redis

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

ADMIN = "replica-admin-key"
_db = itertools.count(5)


@pytest.fixture
def redis_db(redis_server):
    """A Redis database of its own (flushed), so tests sharing the session's server don't mix."""
    url = redis_server.rsplit("/", 1)[0] + f"/{next(_db)}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url, r
    r.flushdb()
    r.close()


@pytest.fixture
def replicas(gateway, fake_upstream, redis_db):
    url, r = redis_db
    fake, flaky = fake_upstream("m-v1"), fake_upstream("flaky-v1")
    cfg = {
        "server": {"redis_url": url, "auth": True, "admin_key": "os.environ/SHUNTER_ADMIN_KEY"},
        "upstreams": {
            "a": upstream_entry(fake, input_price=0.15, output_price=0.6),
            "b": upstream_entry(fake, input_price=2.5, output_price=10.0),
            "flaky": upstream_entry(
                flaky, retry={"attempts": 1, "backoff": 0.01}, breaker={"consecutive_failures": 2, "open_for": 30}
            ),
        },
        "policies": {
            "p": {"candidates": ["a", "b"]},
            "cached": {"candidates": ["a", "b"], "cache": {"ttl": 60}},
        },
    }
    env = {"SHUNTER_ADMIN_KEY": ADMIN}
    one = gateway(cfg, env=env)
    two = gateway(one.config, env=env)  # the same policy file (and key store), another port
    return one, two, r, flaky


def _keys(gw) -> list[dict]:
    r = httpx.get(f"{gw.url}/admin/keys", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    return r.json()["data"]


def _spent(gw, key_id: str) -> float:
    return next(k["spent_usd"] for k in _keys(gw) if k["id"] == key_id)


def _key(gw, **spec) -> str:
    r = httpx.post(f"{gw.url}/admin/keys", json=spec, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["key"]


def _chat(gw, key: str, content: str, model: str = "router-p") -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_rate_limit_holds_across_both_replicas(replicas):
    one, two, _, _ = replicas
    n = 6
    key = _key(one, name="shared", rpm=n)
    codes = [_chat(gw, key, f"hello {i}").status_code for i, gw in zip(range(2 * n), itertools.cycle((one, two)))]
    assert codes.count(200) == n, codes
    assert codes.count(429) == n, codes
    # both replicas served some and refused some: the counter is the same one
    assert {codes[i] for i in range(0, 2 * n, 2)} == {200, 429} or {codes[i] for i in range(1, 2 * n, 2)} == {200, 429}
    assert codes[:n] == [200] * n


def test_outcomes_from_both_replicas_land_in_one_stream_exactly_once(replicas):
    one, two, r, _ = replicas
    key = _key(one, name="stream")
    sent: dict[str, str] = {}
    for i in range(10):
        gw = (one, two)[i % 2]
        resp = _chat(gw, key, f"record me {i}")
        assert resp.status_code == 200
        sent[resp.headers["x-shunter-request-id"]] = gw.url
    assert len(set(sent.values())) == 2
    # One last request through each replica: a recorder writes in order, so once both of these
    # are in the stream, any duplicate of an earlier record would be there too.
    last = {_chat(gw, key, f"last from {gw.url}").headers["x-shunter-request-id"] for gw in (one, two)}

    def stream_ids() -> list[str]:
        return [orjson.loads(fields[b"o"])["request_id"] for _, fields in r.xrange("shunter:outcomes")]

    wait_until(lambda: last <= set(stream_ids()), 15, 0.1, "both replicas' last records in the stream")
    entries = r.xrange("shunter:outcomes")
    ids = stream_ids()
    assert sorted(ids) == sorted([*sent, *last]), "each request exactly once in the shared stream"
    assert all(orjson.loads(f[b"o"])["served"] in ("a", "b") for _, f in entries)


def test_response_cache_is_shared(replicas):
    one, two, _, _ = replicas
    key = _key(one, name="cache")
    first = _chat(one, key, "cache me across replicas", model="router-cached")
    assert first.headers["x-shunter-cache"] == "miss"
    second = _chat(two, key, "cache me across replicas", model="router-cached")
    assert second.headers["x-shunter-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]


def test_circuit_opened_by_one_replica_is_open_on_the_other(replicas):
    one, two, _, flaky = replicas
    key = _key(one, name="breaker")
    flaky.control(fail_next=10, fail_status=500)
    for i in range(3):
        _chat(one, key, f"fail {i}", model="flaky")
    before = flaky.stats()["requests"]

    def state() -> float | None:
        text = httpx.get(f"{two.url}/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=5).text
        line = next((ln for ln in text.splitlines() if ln.startswith('shunter_circuit_state{upstream="flaky"}')), "")
        return float(line.split()[-1]) if line else None

    wait_until(lambda: state() == 2, 10, 0.2, "the second replica sees the circuit opened by the first")
    resp = _chat(two, key, "while open", model="flaky")
    assert resp.status_code == 503
    assert flaky.stats()["requests"] == before, "an open circuit sends nothing upstream"


def test_usd_budget_holds_across_both_replicas(replicas):
    one, two, _, _ = replicas
    # every request below costs the same: "Echo: same words here" = 3 prompt + 5 completion tokens on 'a'
    probe = _key(one, name="probe")
    r = _chat(one, probe, "same words here")
    usage = r.json()["usage"]
    cost = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.6) / 1e6
    key = _key(one, name="budget", budget_usd=2.5 * cost, budget_period="total")
    key_id = next(k["id"] for k in _keys(one) if k["name"] == "budget")
    codes = []
    for i in range(6):
        codes.append(_chat((one, two)[i % 2], key, "same words here").status_code)
        # the charge is added just after the response, off the request path; both replicas see it
        charged = codes.count(200) * cost - 1e-12
        wait_until(lambda c=charged: all(_spent(gw, key_id) >= c for gw in (one, two)), 10, 0.05, "charged")
    assert codes == [200, 200, 200, 402, 402, 402], codes  # 402: budget exhausted
