"""Execution providers: a GPU setting on a machine without one falls back to the CPU, logged."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest

from routers import providers
from routers.encoder import Encoder


def test_parse_short_names_and_cpu_last():
    assert providers.parse("cuda, openvino") == [
        "CUDAExecutionProvider",
        "OpenVINOExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert providers.parse("cpu,rocm") == ["ROCMExecutionProvider", "CPUExecutionProvider"]
    assert providers.parse(["DmlExecutionProvider"]) == ["DmlExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown execution provider 'tpu'"):
        providers.parse("tpu")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_encoder_on_cuda_falls_back_to_cpu_with_a_log_line(caplog, monkeypatch):
    monkeypatch.setenv(providers.ENV, "cuda")
    with caplog.at_level(logging.WARNING, logger="shunter"):
        enc = Encoder()
    assert enc.session.get_providers() == ["CPUExecutionProvider"]
    lines = [r.getMessage() for r in caplog.records if "CUDAExecutionProvider" in r.getMessage()]
    assert lines, caplog.text
    assert "falling back to CPUExecutionProvider for minilm-l6-v2-int8pt.onnx" in lines[0]
    # and it still embeds, identically to a plain CPU session
    monkeypatch.delenv(providers.ENV)
    text = "What is the capital of France?"
    assert np.array_equal(enc.embed([text]), Encoder().embed([text]))


def test_router_session_falls_back_too(caplog, monkeypatch):
    from routers.base import load_router
    from routers.data import repo_root

    art = repo_root() / "routers" / "artifacts" / "mf-mmlu"
    monkeypatch.setenv(providers.ENV, "rocm,coreml")
    with caplog.at_level(logging.WARNING, logger="shunter"):
        router = load_router(art)
    assert router.session.get_providers() == ["CPUExecutionProvider"]
    missing = [
        p for p in ("ROCMExecutionProvider", "CoreMLExecutionProvider") if p not in ort.get_available_providers()
    ]
    for p in missing:
        assert any(p in r.getMessage() and "router.onnx" in r.getMessage() for r in caplog.records), caplog.text
