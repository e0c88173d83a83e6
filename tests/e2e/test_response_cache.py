"""The opt-in response cache against a running gateway: exact hits, TTL, streams, opt-out policies."""

from __future__ import annotations

import time

import httpx
import openai

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until


def _cfg(fake, cache: dict | None) -> dict:
    pol = {"candidates": ["a", "b"]}
    if cache is not None:
        pol["cache"] = cache
    return {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"cached": {**pol}, "plain": {"candidates": ["a", "b"]}},
    }


def _chat(gw, content: str, model: str = "router-cached", **kw) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **kw}
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=10)


def test_exact_hit_skips_the_upstream_and_says_so(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    gw = gateway(_cfg(fake, {"ttl": 60}))
    first = _chat(gw, "what is a cache?")
    assert first.status_code == 200
    assert first.headers["x-shunter-cache"] == "miss"
    before = fake.stats()["requests"]
    # whitespace around the text and the 'user' field do not change the key
    second = _chat(gw, "  what is a cache?\n", user="someone")
    assert second.status_code == 200
    assert second.headers["x-shunter-cache"] == "hit"
    assert second.headers["x-shunter-cache-similarity"] == "1.0000"
    assert second.headers["x-shunter-reason"] == "cache"
    assert second.json()["choices"] == first.json()["choices"]
    assert fake.stats()["requests"] == before, "a hit must not reach the upstream"
    # different parameters are a different key
    third = _chat(gw, "what is a cache?", temperature=0.3)
    assert third.headers["x-shunter-cache"] == "miss"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'shunter_cache_requests_total{cache="response",result="hit"} 1.0' in metrics
    assert 'reason="cache"' in metrics


def test_stream_request_is_served_from_cache_as_sse(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    gw = gateway(_cfg(fake, {"ttl": 60}))
    assert _chat(gw, "stream me").headers["x-shunter-cache"] == "miss"
    before = fake.stats()["requests"]
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="router-cached",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-shunter-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me"
    assert chunks[-1].usage is not None
    assert fake.stats()["requests"] == before


def test_ttl_expires_and_policies_without_cache_are_untouched(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    gw = gateway(_cfg(fake, {"ttl": 1}))
    assert _chat(gw, "short lived").headers["x-shunter-cache"] == "miss"
    stored = time.monotonic()
    assert _chat(gw, "short lived").headers["x-shunter-cache"] == "hit"
    # a hit does not extend the entry: poll until the 1 s TTL has run out
    wait_until(lambda: _chat(gw, "short lived").headers["x-shunter-cache"] == "miss", 10, 0.1, "the entry expires")
    assert time.monotonic() - stored >= 0.9
    r1, r2 = _chat(gw, "no cache here", model="router-plain"), _chat(gw, "no cache here", model="router-plain")
    assert "x-shunter-cache" not in r1.headers and "x-shunter-cache" not in r2.headers


def test_semantic_hit_for_a_paraphrase_and_miss_for_another_question(gateway, fake_upstream):
    fake = fake_upstream("m-v1")
    gw = gateway(_cfg(fake, {"ttl": 60, "semantic": True, "similarity": 0.8}))
    first = _chat(gw, "What is the capital city of France?")
    assert first.headers["x-shunter-cache"] == "miss"
    before = fake.stats()["requests"]
    para = _chat(gw, "what's the capital of France")
    assert para.headers["x-shunter-cache"] == "hit", para.headers
    sim = float(para.headers["x-shunter-cache-similarity"])
    assert 0.8 <= sim < 1.0
    assert para.json()["choices"] == first.json()["choices"]
    assert fake.stats()["requests"] == before
    other = _chat(gw, "How do I bake sourdough bread at home?")
    assert other.headers["x-shunter-cache"] == "miss"
    assert float(other.headers["x-shunter-cache-similarity"]) < 0.8
    # a different parameter set is a different semantic scope: no hit even for the same text
    assert _chat(gw, "what's the capital of France", temperature=0.9).headers["x-shunter-cache"] == "miss"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert "shunter_cache_similarity_bucket" in metrics and "shunter_embedding_batch_size_count" in metrics
