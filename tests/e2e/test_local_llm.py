"""A real LLM nobody here wrote: llama-cpp-python's OpenAI server with SmolLM2-135M, via the gateway.

The embedded default (``config/default.yaml``) starts the local model as a child process. With no
OPENAI_API_KEY the learned router still scores gpt-4o-mini vs gpt-4o, both are skipped as
unavailable, and the request falls back to the local model: what a newcomer sees.
"""

from __future__ import annotations

import os
import shutil

import httpx
import openai
import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory):
    import signal
    import subprocess
    import sys

    from tests.support.procs import free_port, stop
    from tests.support.wait import wait_http

    work = tmp_path_factory.mktemp("newcomer")
    cfg = work / "config"
    shutil.copytree(ROOT / "config", cfg)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    port = free_port()
    log = open(work / "gateway.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(cfg / "default.yaml"), "--port", str(port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 240, proc)
    except Exception:
        stop(proc, signal.SIGKILL)
        raise AssertionError((work / "gateway.log").read_text()[-4000:]) from None
    yield f"http://127.0.0.1:{port}", work
    stop(proc)
    print((work / "gateway.log").read_text()[-2000:])


def test_newcomer_gets_a_routed_answer_from_the_local_model(default_gateway):
    url, work = default_gateway
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    raw = c.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=16,
        temperature=0,
    )
    r = raw.parse()
    assert r.model == "local"
    assert r.choices[0].message.content.strip()
    assert r.usage.completion_tokens > 0
    h = raw.headers
    assert h["x-shunter-policy"] == "default"
    assert h["x-shunter-router"] == "prior"  # the default policy's universal prior
    assert h["x-shunter-reason"] == "fallback"
    assert set(h["x-shunter-scores"].split(",")[0].split("=")[0:1]) <= {"gpt-4o-mini", "gpt-4o"}
    assert (work / "var" / "outcomes.sqlite").exists()


def test_streaming_from_the_local_model(default_gateway):
    url, _ = default_gateway
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    chunks = list(
        c.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip()
    assert {ch.model for ch in chunks} == {"local"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_text_completion_and_models(default_gateway):
    url, _ = default_gateway
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    r = c.completions.create(model="local", prompt="The sky is", max_tokens=8)
    assert r.model == "local" and r.choices[0].text
    ids = {m.id for m in c.models.list()}
    assert {"router-default", "auto", "local", "gpt-4o", "gpt-4o-mini"} <= ids
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["upstreams"]["local"] == "ok"
    assert "OPENAI_API_KEY" in ready["upstreams"]["gpt-4o"]
