"""Every way a request ends finishes it exactly once: the whole app in process, fake upstream processes.

``Services.finish_hooks`` (the post-answer hook point) sees each finished outcome; every response
names its request id, and each id must be finished once and only once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.paths import ROOT
from tests.support.procs import upstream_entry

CHECKER = ROOT / "routers" / "artifacts" / "answer-check"


@asynccontextmanager
async def in_process(cfg: dict, tmp: Path):
    path = tmp / "policy.yaml"
    cfg.setdefault("server", {})["outcomes_path"] = str(tmp / "outcomes.sqlite")
    path.write_text(yaml.safe_dump(cfg))
    app = create_app(Settings(config=path, watch=False))
    async with app.router.lifespan_context(app):
        svc = app.state.services
        seen: list[Any] = []
        svc.finish_hooks.append(lambda _svc, outcome, _ctx: seen.append(outcome))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client, svc, seen


def chat(model: str = "router-chat", text: str = "hi", **extra: Any) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_every_exit_finishes_exactly_once(ab, tmp_path):
    a, b = ab
    cfg = {
        "upstreams": {"primary": upstream_entry(a), "backup": upstream_entry(b)},
        "policies": {
            "chat": {"candidates": ["primary", "backup"]},
            "cached": {"candidates": ["primary", "backup"], "cache": {"ttl": 60}},
        },
    }

    async def go():
        async with in_process(cfg, tmp_path) as (c, svc, seen):
            rs = [
                await c.post("/v1/chat/completions", json=chat()),  # plain
                await c.post("/v1/chat/completions", json=chat(stream=True)),  # stream
                await c.post("/v1/completions", json={"model": "router-chat", "prompt": "p"}),  # text
                await c.post("/v1/chat/completions", json=chat("router-cached", "same")),  # cache miss
                await c.post("/v1/chat/completions", json=chat("router-cached", "same", stream=True)),  # hit
                await c.post("/v1/chat/completions", json=chat("no-such-model")),  # 404 rejected
                await c.post(
                    "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
                ),
            ]
            a.control(body_fault="wrong_choices", body_fault_count=2)
            rs.append(await c.post("/v1/chat/completions", json=chat()))  # malformed: fallback
            a.control(fail_next=10, fail_status=500)
            b.control(fail_next=10, fail_status=500)
            rs.append(await c.post("/v1/chat/completions", json=chat()))  # 502: every attempt failed
            a.control(fail_next=0, die_after_chunks=1)
            b.control(fail_next=0)
            rs.append(await c.post("/v1/chat/completions", json=chat("primary", stream=True)))  # midstream reset
            await asyncio.sleep(0)
            free = all(cl.slots._value == cl.cfg.max_concurrency for cl in svc.runtime.clients.values())
            return rs, list(seen), free

    rs, seen, free = asyncio.run(go())
    assert [r.status_code for r in rs] == [200, 200, 200, 200, 200, 404, 400, 200, 502, 200]
    ids = [r.headers["x-shunter-request-id"] for r in rs]
    counts = Counter(o.request_id for o in seen)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    by_id = {o.request_id: o for o in seen}
    assert [by_id[i].reason for i in ids[3:7]] == ["static", "cache", "rejected", "rejected"]
    assert by_id[ids[7]].reason == "fallback" and by_id[ids[8]].error_type == "upstream_failed"
    assert by_id[ids[9]].error_type == "midstream_disconnected" and "failed after it started" in rs[9].text
    assert free


def test_cascade_escalates_within_candidates_applies_effort_and_falls_back_only_on_failure(ab, tmp_path):
    a, b = ab
    reasoning = ["streaming", "reasoning"]
    cfg = {
        "upstreams": {
            "cheap": upstream_entry(
                a, input_price=0.1, output_price=0.2, capabilities=reasoning, retry={"attempts": 1}
            ),
            "strong": upstream_entry(b, input_price=5, output_price=15, capabilities=reasoning, retry={"attempts": 1}),
            "mid": upstream_entry(b, input_price=1, output_price=2),
        },
        "policies": {
            "frugal": {
                "candidates": ["strong", "cheap"],
                "fallbacks": ["mid"],
                "cascade": {"checker": str(CHECKER), "threshold": 1.0},
                "rules": [{"name": "think", "keywords": ["think"], "reasoning_effort": "high"}],
            }
        },
    }

    async def go():
        async with in_process(cfg, tmp_path) as (c, svc, seen):
            a.control(body_fault="non_json", body_fault_count=1)
            broken = await c.post("/v1/chat/completions", json=chat("router-frugal", "think hard"))
            last_strong = b.last()
            healthy = await c.post("/v1/chat/completions", json=chat("router-frugal", "think again"))
            a.control(fail_next=1)
            b.control(fail_next=1)
            failed_over = await c.post("/v1/chat/completions", json=chat("router-frugal", "x", stream=True))
            free = all(cl.slots._value == cl.cfg.max_concurrency for cl in svc.runtime.clients.values())
            return broken, last_strong, healthy, failed_over, free, list(seen)

    broken, last_strong, healthy, failed_over, free, seen = asyncio.run(go())
    assert broken.status_code == 200 and broken.json()["model"] == "strong"
    assert broken.headers["x-shunter-cascade"] == "cheap(upstream_bad_response)->strong(final)"
    assert last_strong["reasoning_effort"] == "high"  # the cascade sends the decided effort
    assert healthy.headers["x-shunter-cascade"].endswith("->strong(final)")  # never into the fallback
    assert failed_over.status_code == 200 and failed_over.headers["x-shunter-model"] == "mid"
    assert failed_over.text.rstrip().endswith("data: [DONE]")
    assert free and len(seen) == 3
