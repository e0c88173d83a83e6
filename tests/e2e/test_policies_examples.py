"""Each shipped example through a running gateway, upstreams pointed at a fake.

The shipped router artifacts are used when they exist; one not built yet is stood in for by a
``random`` router trained here on the same data family (same model names). Every other line of
the example is used as written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from gateway.policy.loader import load_config
from tests.support.paths import DATA
from tests.support.policies import chat

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "routellm": DATA / "routellm-mmlu" / "mmlu_anatomy.csv",
    "routerbench": DATA / "routerbench" / "mbpp_train.csv",
}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """fmt -> a random router trained on that data family, built on first use."""
    built: dict[str, Path] = {}

    def get(fmt: str) -> Path:
        if fmt not in built:
            src = SOURCES[fmt]
            if not src.exists():
                pytest.skip(f"shared data not found at {src}")
            d = tmp_path_factory.mktemp("routers") / fmt
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "train",
                    "--router",
                    "random",
                    "--data",
                    str(src),
                    "--format",
                    fmt,
                    "--out",
                    str(d),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            built[fmt] = d
        return built[fmt]

    return get


def localised(name: str, fake, stand_ins, tmp_path: Path, keep_keys: bool = False) -> Path:
    """The example with upstreams pointed at the fake; a router artifact not built yet is stood in for.

    ``keep_keys``: leave the ``api_key: os.environ/...`` references (the caller sets the variables)."""
    text = (ROOT / "config" / name).read_text()
    fmt = "routerbench" if name == "multi-model.yaml" else "routellm"

    def artifact(m: re.Match) -> str:
        real = ROOT / "routers" / "artifacts" / m.group(1)
        return str(real if (real / "router.onnx").exists() else stand_ins(fmt))

    text = re.sub(r"(?:\.\./)?routers/artifacts/([\w-]+)", artifact, text)
    cfg = yaml.safe_load(text)
    for up in cfg["upstreams"].values():
        up.pop("launch", None)
        if not keep_keys:
            up.pop("api_key", None)
        up["base_url"] = fake.base_url
    cfg["server"]["outcomes_path"] = str(tmp_path / "o.sqlite")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    load_config(path)
    return path


def test_openai_example(gateway, fake_upstream, stand_ins, tmp_path):
    gw = gateway(localised("openai.yaml", fake_upstream("any"), stand_ins, tmp_path))
    resp, h = chat(gw, "What is the capital of France?", model="auto")
    assert resp.model in ("gpt-4o-mini", "gpt-4o") and h["x-shunter-reason"] == "router"
    assert chat(gw, "hi", model="auto", headers={"x-shunter-tier": "premium"})[1]["x-shunter-reason"] == "rule"
    assert chat(gw, "hi", model="router-chat-0.1")[1]["x-shunter-reason"] == "router"
    with pytest.raises(openai.BadRequestError, match=r"outside policy 'chat' allowed range \[0.1, 0.9\]"):
        chat(gw, "hi", model="router-chat-0")
    assert chat(gw, "hi", model="router-premium")[0].model == "gpt-4o"


def test_multi_model_example(gateway, fake_upstream, stand_ins, tmp_path):
    gw = gateway(localised("multi-model.yaml", fake_upstream("any"), stand_ins, tmp_path))
    seen = set()
    for q in [
        "Write a function that reverses a string.",
        "What is 2+2?",
        "Explain quantum tunnelling.",
        "Name a prime > 100.",
    ]:
        resp, h = chat(gw, q, model="auto")
        assert h["x-shunter-reason"] == "router" and len(h["x-shunter-scores"].split(",")) == 11
        seen.add(resp.model)
    # cost weight 0: the best predicted quality, whatever it costs; the largest allowed weight: cheaper
    prices = {
        n: u["output_price"]
        for n, u in yaml.safe_load((ROOT / "config" / "multi-model.yaml").read_text())["upstreams"].items()
    }
    best, h = chat(gw, "What is 2+2?", model="auto", headers={"x-shunter-cost-weight": "0"})
    scores = dict(kv.rsplit("=", 1) for kv in h["x-shunter-scores"].split(","))
    assert best.model == max(scores, key=lambda m: float(scores[m]))
    thrifty, _ = chat(gw, "What is 2+2?", model="auto", headers={"x-shunter-cost-weight": "10"})
    assert prices[thrifty.model] <= prices[best.model]
    with pytest.raises(openai.BadRequestError, match="outside policy 'balanced' allowed range"):
        chat(gw, "What is 2+2?", model="auto", headers={"x-shunter-cost-weight": "11"})
    resp, h = chat(gw, "What is 2+2?", model="router-budget")
    assert h["x-shunter-policy"] == "budget" and h["x-shunter-reason"] == "router"
    assert resp.model not in ("gpt-4-1106-preview", "claude-v2", "claude-v1")  # over $0.002 per request


def test_semantic_example_validates(stand_ins, fake_upstream, tmp_path):
    localised("semantic.yaml", fake_upstream("any"), stand_ins, tmp_path)


def test_default_example_validates(stand_ins, fake_upstream, tmp_path):
    localised("default.yaml", fake_upstream("any"), stand_ins, tmp_path)


def test_default_policy_sends_an_easy_question_to_the_cheap_model(gateway, fake_upstream, stand_ins, tmp_path):
    """The default policy with OPENAI_API_KEY set: its learned router, calibrated to a low strong
    share, answers an easy factual question with gpt-4o-mini and a hard coding task with gpt-4o
    (the router is the committed routers/artifacts/prior-fast, on the fast tier)."""
    path = localised("default.yaml", fake_upstream("any"), stand_ins, tmp_path, keep_keys=True)
    gw = gateway(path, env={"OPENAI_API_KEY": "sk-test-not-a-real-key"})
    resp, h = chat(gw, "What is the capital of France?", model="auto")
    assert h["x-shunter-reason"] == "router" and resp.model == "gpt-4o-mini", dict(h)
    hard = "Implement a thread-safe LRU cache in C++ with O(1) get and put, and explain its memory ordering."
    resp, h = chat(gw, hard, model="auto")
    assert h["x-shunter-reason"] == "router" and resp.model == "gpt-4o", dict(h)


def test_llmrouter_example(gateway, fake_upstream, stand_ins, tmp_path):
    """LLMRouter's nine models behind the universal prior: every answer is a router decision over
    nine scores; cost weight 0 takes the best predicted quality, the default weight saves."""
    if not (ROOT / "routers" / "artifacts" / "prior" / "router.onnx").exists():
        pytest.skip("prior artifact not built")
    gw = gateway(localised("llmrouter.yaml", fake_upstream("any"), stand_ins, tmp_path))
    prices = {
        n: u["input_price"]
        for n, u in yaml.safe_load((ROOT / "config" / "llmrouter.yaml").read_text())["upstreams"].items()
    }
    q = "What is the capital of France?"
    resp, h = chat(gw, q, model="auto")
    assert h["x-shunter-reason"] == "router" and len(h["x-shunter-scores"].split(",")) == 9
    best, h0 = chat(gw, q, model="auto", headers={"x-shunter-cost-weight": "0"})
    scores = dict(kv.rsplit("=", 1) for kv in h0["x-shunter-scores"].split(","))
    assert best.model == max(scores, key=lambda m: float(scores[m]))
    assert prices[resp.model] <= prices[best.model]
