"""Runtime building: target_strong_share resolves to a threshold for pair and many-model routers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.policy.schema import Config
from gateway.runtime import build_policies
from routers.base import load_router
from tests.support.paths import ROOT

ART = ROOT / "routers" / "artifacts"


def _cfg(router: str, share: float, model_map: dict) -> Config:
    return Config.model_validate(
        {
            "upstreams": {
                "strong": {"base_url": "http://127.0.0.1:9/v1", "input_price": 10, "output_price": 30},
                "weak": {"base_url": "http://127.0.0.1:9/v1", "input_price": 0.6, "output_price": 0.6},
            },
            "policies": {
                "p": {
                    "candidates": ["strong", "weak"],
                    "objective": {"target_strong_share": share},
                    "router": {"path": str(ART / router), "model_map": model_map, "strong": "strong", "weak": "weak"},
                }
            },
        }
    )


@pytest.mark.parametrize(
    "router,model_map",
    [
        ("mf-mmlu", {"strong": "gpt-4-1106-preview", "weak": "mistralai/Mixtral-8x7B-Instruct-v0.1"}),
        ("cluster-routerbench", {"strong": "gpt-4-1106-preview", "weak": "mistralai/mixtral-8x7b-chat"}),
    ],
)
def test_target_strong_share_resolves_and_is_monotone(router, model_map):
    lo = build_policies(_cfg(router, 0.2, model_map), Path("."))["p"].objective
    hi = build_policies(_cfg(router, 0.6, model_map), Path("."))["p"].objective
    assert lo.kind == hi.kind == "threshold"
    assert 0.0 <= hi.value < lo.value <= 1.0  # more strong traffic needs a lower threshold


def test_many_model_calibration_matches_the_engine_mapping():
    """The share computed on the router's own calibration sample is what the threshold delivers."""
    r = load_router(ART / "cluster-routerbench")
    cal = np.asarray(r.meta["calibration"]["quality_sample"], dtype=np.float64)
    i, j = r.models.index("gpt-4-1106-preview"), r.models.index("mistralai/mixtral-8x7b-chat")
    sw = np.clip(0.5 + 0.5 * (cal[:, i] - cal[:, j]), 0, 1)  # gateway.policy.engine's mapping
    thr = build_policies(
        _cfg("cluster-routerbench", 0.3, {"strong": "gpt-4-1106-preview", "weak": "mistralai/mixtral-8x7b-chat"}),
        Path("."),
    )["p"].objective.value
    assert abs(float(np.mean(sw >= thr)) - 0.3) < 0.05


def test_router_trained_on_another_encoder_is_flagged(tmp_path, caplog):
    import json
    import shutil

    art = tmp_path / "mf-mmlu"
    shutil.copytree(ART / "mf-mmlu", art)
    meta = json.loads((art / "router.json").read_text())
    meta["encoder"]["hash"] = "0" * 64
    (art / "router.json").write_text(json.dumps(meta))
    mm = {"strong": "gpt-4-1106-preview", "weak": "mistralai/Mixtral-8x7B-Instruct-v0.1"}
    cfg = _cfg("mf-mmlu", 0.3, mm)
    cfg.policies["p"].router.path = str(art)
    with caplog.at_level("WARNING", logger="shunter"):
        build_policies(cfg, Path("."))
    assert any("serving encoder" in r.message and "retrained" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="shunter"):
        build_policies(_cfg("mf-mmlu", 0.3, mm), Path("."))  # the shipped one matches
    assert not [r for r in caplog.records if "serving encoder" in r.message]
