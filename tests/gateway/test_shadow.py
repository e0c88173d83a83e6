"""Judged shadow sampling (gateway.learning.shadow) against fake upstream processes and a fake judge:
the exact sampling rate, the budget stop (in process and in Redis), the order swap, eligibility,
and that nothing but feedback scores is stored."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client import REGISTRY

from gateway.learning.shadow import ShadowService, ineligible
from gateway.outcomes.record import Outcome
from gateway.outcomes.sqlite import SQLiteStore
from gateway.policy.schema import Config
from gateway.runtime import Runtime, build_clients, build_policies
from gateway.state import FailSoft, InProcessState, RedisState
from gateway.upstream.client import UpstreamClient
from tests.support.procs import free_port

QUESTION = "How many legs does a spider have?"


@pytest.fixture
def fakes(fake_upstream):
    cheap, strong, judge = fake_upstream("cheap-model"), fake_upstream("strong-model"), fake_upstream("judge-model")
    cheap.control(reply="cheap answer: six")
    strong.control(reply="strong answer: eight")
    judge.control(judge_prefers="strong answer")
    return cheap, strong, judge


def make_rt(tmp_path, fakes, reference: str | None = None, **shadow) -> Runtime:
    cheap, strong, judge = fakes
    price = {"input_price": 1.0, "output_price": 2.0}
    cfg = Config.model_validate(
        {
            "upstreams": {
                "cheap": {"base_url": cheap.base_url, "model": "cheap-model", **price},
                "strong": {"base_url": strong.base_url, "model": "strong-model", **price},
                "judge": {"base_url": judge.base_url, "model": "judge-model", **price},
            },
            "policies": {
                "chat": {
                    "candidates": ["cheap", "strong"],
                    "learning": {"shadow": {"rate": 1.0, "budget_usd_per_day": 100.0, "judge": "judge", **shadow}},
                    **({"reference_model": reference} if reference else {}),
                }
            },
        }
    )
    return Runtime(cfg, tmp_path / "p.yaml", build_clients(cfg, {}), build_policies(cfg, tmp_path))


def outcome(i: int, served: str = "cheap", **kw) -> Outcome:
    return Outcome(request_id=f"req_{i}", ts=time.time(), policy="chat", served=served, chosen=served, **kw)


def body(**kw) -> dict:
    return {"model": "chat", "messages": [{"role": "user", "content": QUESTION}], **kw}


async def drain(svc: ShadowService, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while svc.tasks and time.monotonic() < deadline:
        await asyncio.wait(set(svc.tasks), timeout=deadline - time.monotonic())
    assert not svc.tasks, "shadow tasks still running"


async def run_many(svc, rt, n: int, served: str = "cheap") -> list[str]:
    out = []
    for i in range(n):
        out.append(svc.submit(rt, outcome(i, served), body(), "cheap answer: six", {}))
    await drain(svc)
    for c in rt.clients.values():
        await c.aclose()
    return out


def test_exact_sampling_rate_and_judged_feedback(tmp_path, fakes):
    cheap, strong, judge = fakes
    rt = make_rt(tmp_path, fakes, rate=0.25)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())

    async def go():
        return await run_many(svc, rt, 40)

    started = asyncio.run(go())
    assert started == ["started"] * 40
    assert strong.stats()["requests"] == 10  # exactly floor(40 * 0.25) shadow calls
    assert judge.stats()["requests"] == 20  # two orders each
    assert cheap.stats()["requests"] == 0  # the served model is never called again
    judged = [i for i in range(40) if store.feedback(f"req_{i}")]
    assert len(judged) == 10
    items = {f.source: f for f in store.feedback(f"req_{judged[0]}")}
    assert set(items) == {"judge", "judge@strong"}
    assert items["judge"].score == 0.0 and items["judge@strong"].score == 1.0  # the judge prefers strong
    assert items["judge"].label == "agree"
    note = json.loads(items["judge"].comment)
    assert note["verdicts"] == {"strong": ["B", "A"]}  # served as A, then as B: strong won both orders
    assert QUESTION not in items["judge"].comment and "answer" not in note  # nothing of the prompt kept
    spend = store.spend("chat")  # every call's cost, for ``shunter report``
    assert sorted(s.kind for s in spend) == ["judge"] * 20 + ["shadow"] * 10
    assert {s.request_id for s in spend} == {f"req_{i}" for i in judged}
    assert {(s.kind, s.model) for s in spend} == {("shadow", "strong"), ("judge", "judge")}
    assert all(s.cost_usd > 0 for s in spend)
    store.close()


def test_judged_against_the_reference_model_is_counted(tmp_path, fakes):
    """The learning dashboard's quality panel: verdicts of the served answer against the reference's."""
    from prometheus_client import REGISTRY

    def count(result: str) -> float:
        v = REGISTRY.get_sample_value("shunter_judged_vs_reference_total", {"policy": "chat", "result": result})
        return v or 0.0

    before = {r: count(r) for r in ("better", "tie", "worse")}
    rt = make_rt(tmp_path, fakes, reference="strong")
    store = SQLiteStore(tmp_path / "o.sqlite")
    asyncio.run(run_many(ShadowService(store, InProcessState()), rt, 3))
    assert {r: count(r) - before[r] for r in before} == {"better": 0, "tie": 0, "worse": 3}  # judge prefers strong
    store.close()


def test_position_biased_judge_is_a_tie_by_order_swap(tmp_path, fakes):
    _, _, judge = fakes
    judge.control(judge_prefers=None, reply="Assistant A is clearly better. [[A]]")
    rt = make_rt(tmp_path, fakes)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())
    asyncio.run(run_many(svc, rt, 1))
    items = {f.source: f for f in store.feedback("req_0")}
    assert items["judge"].score == 0.5 and items["judge@strong"].score == 0.5
    assert items["judge"].label == "disagree"
    store.close()


def test_unparsable_verdict_stores_nothing(tmp_path, fakes):
    _, _, judge = fakes
    judge.control(judge_prefers=None, reply="I cannot decide.")
    rt = make_rt(tmp_path, fakes)
    store = SQLiteStore(tmp_path / "o.sqlite")
    asyncio.run(run_many(ShadowService(store, InProcessState()), rt, 2))
    assert store.feedback("req_0") == [] and store.feedback("req_1") == []
    store.close()


@pytest.mark.parametrize("where", ["process", "redis"])
def test_budget_is_never_exceeded(tmp_path, fakes, where, request):
    """Each call reserves its worst case before it is made; once the next reservation would pass
    the budget, no further call is made (the counter lives in Redis when configured)."""
    cheap, strong, judge = fakes
    # worst case per call: (len(messages json)/2 + 64) tokens in + max_tokens out, at $100/M here
    rt = make_rt(tmp_path, fakes, budget_usd_per_day=0.1, max_tokens=16, judge_max_tokens=16)
    for c in rt.clients.values():
        c.cfg = c.cfg.model_copy(update={"input_price": 100.0, "output_price": 100.0})
    if where == "redis":
        url = request.getfixturevalue("redis_server")
        state = RedisState(url, prefix=f"test-{time.time_ns()}:")
    else:
        state = InProcessState()
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, state, max_inflight=1)

    async def go():
        await run_many(svc, rt, 6)
        key = svc._day_key("chat")
        spent = float(await state.get(key) or 0)
        if where == "redis":
            await state.close()
        return spent

    spent = asyncio.run(go())
    calls = strong.stats()["requests"] + judge.stats()["requests"]
    assert 0 < calls < 18  # 6 sampled requests would need 18 calls
    # the real spend never passes the budget, and calls stopped only when the next worst case
    # (a judge call: ~700 prompt tokens + 16 out at $100/M, about $0.073) no longer fitted
    assert 0.1 - 0.08 < spent <= 0.1


def shadow_calls(result: str) -> float:
    labels = {"policy": "chat", "model": "strong", "result": result}
    return REGISTRY.get_sample_value("shunter_shadow_calls_total", labels) or 0.0


@pytest.mark.parametrize(
    ("fault", "result", "billed"),
    [
        ({"fail_next": 1, "fail_status": 503}, "status_5xx", False),  # refused: nothing generated
        ({"body_fault": "reset_mid_body", "body_fault_count": 1}, "body_reset", True),
        ({"body_fault": "string_usage", "body_fault_count": 1}, "bad_response", True),
    ],
)
def test_a_failed_shadow_call_settles_its_reservation(tmp_path, fakes, fault, result, billed):
    """An upstream that refuses the shadow call with an error status generated nothing: its
    reservation is given back. A call cut mid-body, or a body that is not a completion (token
    counts as strings), may have been billed: the reserved worst case stays counted. Either
    way no judge is asked and the service does not fail."""
    cheap, strong, judge = fakes
    strong.control(**fault)
    rt = make_rt(tmp_path, fakes, max_tokens=16)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())
    before = shadow_calls(result)

    async def go():
        await run_many(svc, rt, 1)
        return float(await svc.shared.get(svc._day_key("chat")) or 0)

    spent = asyncio.run(go())
    assert judge.stats()["requests"] == 0 and store.feedback("req_0") == []
    [row] = store.spend("chat")
    assert (row.kind, row.model) == ("shadow", "strong")
    assert row.cost_usd == pytest.approx(spent)
    if billed:  # the worst case: (prompt bytes / 2 + 64) tokens in at $1/M, 16 out at $2/M
        assert 64e-6 < spent < 200e-6
    else:
        assert spent == 0.0
    assert shadow_calls(result) == before + 1
    store.close()


def test_no_shadow_call_while_the_shared_budget_cannot_be_read(tmp_path, fakes):
    """While Redis is away the gateway's shared state falls back softly (counts answer as new,
    checks as passed); the shadow service reads the strict state instead, so no replica samples or
    spends past a budget it cannot see: each request is skipped as ``state_unavailable``."""
    cheap, strong, judge = fakes
    rt = make_rt(tmp_path, fakes)  # rate 1.0: every eligible request would be shadowed
    store = SQLiteStore(tmp_path / "o.sqlite")
    state = FailSoft(RedisState(f"redis://127.0.0.1:{free_port()}/0"))
    svc = ShadowService(store, state)
    labels = {"policy": "chat", "reason": "state_unavailable"}
    before = REGISTRY.get_sample_value("shunter_shadow_skipped_total", labels) or 0.0

    async def go():
        out = await run_many(svc, rt, 3)
        await state.close()
        return out

    assert asyncio.run(go()) == ["started"] * 3
    assert strong.stats()["requests"] == 0 and judge.stats()["requests"] == 0
    assert REGISTRY.get_sample_value("shunter_shadow_skipped_total", labels) == before + 3
    assert store.spend("chat") == [] and store.feedback("req_0") == []
    store.close()


def test_an_anthropic_upstream_is_called_through_messages(tmp_path, fakes, monkeypatch):
    """A compared model of ``kind: anthropic`` gets the shadow call as Anthropic's Messages API
    (``/v1/messages``, ``x-api-key``), as on the request path, and its answer is judged like any
    other (it used to be posted to ``/chat/completions``, which Anthropic does not serve)."""
    cheap, strong, judge = fakes
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    rt = make_rt(tmp_path, fakes)
    up = rt.cfg.upstreams["strong"].model_copy(update={"kind": "anthropic", "api_key": "os.environ/TEST_ANTHROPIC_KEY"})
    rt.clients["strong"] = UpstreamClient("strong", up, strong.base_url)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())
    asyncio.run(run_many(svc, rt, 1))
    paths = strong.stats()["by_path"]
    assert paths.get("/v1/messages") == 1 and "/v1/chat/completions" not in paths
    items = {f.source: f.score for f in store.feedback("req_0")}
    assert items == {"judge": 0.0, "judge@strong": 1.0}  # the Messages answer reached the judge
    [row] = [x for x in store.spend("chat") if x.kind == "shadow"]
    assert row.cost_usd > 0  # priced from the Messages usage, translated
    store.close()


def test_no_shadow_call_queues_ahead_of_clients(tmp_path, fakes):
    """When every concurrency slot of the compared model is serving clients, the shadow call is
    skipped (``busy``) rather than queued ahead of the next client request; nothing is spent."""
    cheap, strong, judge = fakes
    rt = make_rt(tmp_path, fakes)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())
    before = shadow_calls("busy")

    async def go():
        slots = rt.clients["strong"].slots
        while not slots.locked():  # the clients hold every slot
            await slots.acquire()
        await run_many(svc, rt, 2)

    asyncio.run(go())
    assert shadow_calls("busy") == before + 2
    assert strong.stats()["requests"] == 0 and judge.stats()["requests"] == 0
    assert store.spend("chat") == [] and store.feedback("req_0") == []
    store.close()


def test_eligibility_rules():
    compare = ["cheap", "strong"]
    ok = outcome(1)
    assert ineligible(ok, body(), "a", {}, compare) is None
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert ineligible(ok, body(tools=tools), "a", {}, compare) == "tools"
    tool_msg = {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r", "tool_call_id": "1"}]}
    assert ineligible(ok, tool_msg, "a", {}, compare) == "tools"
    assert ineligible(ok, body(store=False), "a", {}, compare) == "opt_out"
    assert ineligible(ok, body(), "a", {"x-shunter-shadow": "off"}, compare) == "opt_out"
    assert ineligible(ok, body(n=2), "a", {}, compare) == "n"
    assert ineligible(ok, body(), None, {}, compare) == "no_answer"
    assert ineligible(outcome(1, status=502), body(), "a", {}, compare) == "failed"
    assert ineligible(outcome(1, reason="cache"), body(), "a", {}, compare) == "cache"
    assert ineligible(outcome(1, served="other"), body(), "a", {}, compare) == "served_not_compared"
    assert ineligible(outcome(1, endpoint="completions"), body(), "a", {}, compare) == "endpoint"
    assert ineligible(outcome(1, endpoint="embeddings"), body(), "a", {}, compare) == "endpoint"
    for translated in ("messages", "responses"):  # judged as the chat request made of them
        assert ineligible(outcome(1, endpoint=translated), body(), "a", {}, compare) is None


def test_submit_returns_at_once_while_shadow_calls_are_slow(tmp_path, fakes):
    _, strong, _ = fakes
    strong.control(delay=3.0)
    rt = make_rt(tmp_path, fakes)
    store = SQLiteStore(tmp_path / "o.sqlite")
    svc = ShadowService(store, InProcessState())

    async def go():
        t = time.perf_counter()
        svc.submit(rt, outcome(0), body(), "cheap answer: six", {})
        took = time.perf_counter() - t
        await drain(svc)
        for c in rt.clients.values():
            await c.aclose()
        return took

    assert asyncio.run(go()) < 0.05
    assert store.feedback("req_0")  # and the judged result still arrived later
    store.close()
