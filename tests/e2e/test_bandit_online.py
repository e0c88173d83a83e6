"""The online (bandit) policy mode through running gateways: bounded exploration, learning from
feedback, the admin state view, and state shared by two replicas through a real redis-server."""

from __future__ import annotations

import httpx
import pytest

from tests.support.procs import upstream_entry

ADMIN = "bandit-admin-key"


def cfg(cheap, strong, mode: str = "epsilon_greedy", explore: float = 0.2, **server) -> dict:
    return {
        "server": {"admin_key": "os.environ/SHUNTER_ADMIN_KEY", **server},
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.1, output_price=0.1),
            "strong": upstream_entry(strong, input_price=1.0, output_price=1.0),
        },
        "policies": {
            "online": {
                "candidates": ["cheap", "strong"],
                "objective": {"cost_weight": 0.1},
                "online": {"mode": mode, "explore": explore, "cost_weight": 0.1, "prior_strength": 4},
            }
        },
    }


def ask(gw, i: int) -> tuple[str, str, str]:
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "router-online", "messages": [{"role": "user", "content": f"q{i}"}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.headers["x-shunter-request-id"], r.headers["x-shunter-model"], r.headers["x-shunter-reason"]


def rate(gw, rid: str, model: str) -> None:
    # the cheap model is always wrong here, the strong one always right
    r = httpx.post(
        f"{gw.url}/v1/feedback", json={"request_id": rid, "score": 1.0 if model == "strong" else 0.0}, timeout=10
    )
    assert r.status_code == 201 and r.json()["online_update"] is True


def state(gw) -> dict:
    r = httpx.get(f"{gw.url}/admin/policies/online/state", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("mode", ["epsilon_greedy", "thompson"])
def test_bandit_learns_from_feedback_with_bounded_exploration(gateway, fake_upstream, mode):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    gw = gateway(cfg(cheap, strong, mode=mode, explore=0.2), env={"SHUNTER_ADMIN_KEY": ADMIN})
    first = [ask(gw, i) for i in range(10)]
    assert [m for _, m, reason in first if reason == "online"] and all(
        m == "cheap" for _, m, r in first if r == "online"
    )  # equal priors: the cheaper model
    picks = []
    for i in range(80):
        rid, model, reason = ask(gw, i)
        picks.append((model, reason))
        rate(gw, rid, model)
    explored = sum(1 for _, r in picks if r == "explore") + sum(1 for _, _, r in first if r == "explore")
    st = state(gw)
    assert st["decisions"] == 90 and st["explored"] <= 0.2 * 90 + 1e-9 and st["explored_share"] <= 0.2
    assert explored >= 1  # it did explore, and so found the strong model
    late = [m for m, r in picks[-20:] if r == "online"]
    assert late and late.count("strong") == len(late), picks[-20:]  # learned: exploit the strong model
    arms = {a["model"]: a for a in st["arms"]}
    assert arms["cheap"]["mean_score"] == 0.0 and arms["strong"]["mean_score"] == 1.0
    assert st["feedback"] == 80 and st["backend"] == "InProcessState"
    assert arms["strong"]["reward"] < 1.0  # the cost term is in the reward
    lines = httpx.get(f"{gw.url}/metrics", timeout=5).text.splitlines()
    got = [
        float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith('shunter_bandit_explorations_total{policy="online"}')
    ]
    assert got == [float(explored)], [x for x in lines if "bandit" in x]


def test_zero_exploration_never_explores_and_state_needs_admin(gateway, fake_upstream):
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    gw = gateway(cfg(cheap, strong, mode="thompson", explore=0.0), env={"SHUNTER_ADMIN_KEY": ADMIN})
    reasons = {ask(gw, i)[2] for i in range(30)}
    assert reasons == {"online"}
    assert httpx.get(f"{gw.url}/admin/policies/online/state", timeout=5).status_code == 401
    assert (
        httpx.get(
            f"{gw.url}/admin/policies/nope/state", headers={"authorization": f"Bearer {ADMIN}"}, timeout=5
        ).status_code
        == 404
    )


def test_replicas_share_bandit_state_through_redis(gateway, fake_upstream, redis_server):
    import redis as redis_lib

    r = redis_lib.Redis.from_url(redis_server)
    for k in r.scan_iter("shunter:bandit:*"):
        r.delete(k)
    cheap, strong = fake_upstream("cheap-v1"), fake_upstream("strong-v1")
    c = cfg(cheap, strong, mode="epsilon_greedy", explore=0.3, redis_url="os.environ/TEST_REDIS_URL")
    env = {"SHUNTER_ADMIN_KEY": ADMIN, "TEST_REDIS_URL": redis_server}
    a, b = gateway(c, env=env), gateway(c, env=env)
    for i in range(60):  # replica a serves and learns
        rid, model, _ = ask(a, i)
        rate(b, rid, model)  # feedback lands on the other replica: records and arms are shared
    sa, sb = state(a), state(b)
    assert sa["backend"] == sb["backend"] == "RedisState"
    assert sa["feedback"] == sb["feedback"] == 60 and sa["arms"] == sb["arms"]
    assert sb["explored_share"] <= 0.3
    late = [ask(b, 100 + i) for i in range(10)]  # replica b never saw a decision, yet exploits what a learned
    assert [m for _, m, reason in late if reason == "online"] and all(
        m == "strong" for _, m, reason in late if reason == "online"
    )
