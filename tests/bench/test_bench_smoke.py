"""The benchmark harness runs end to end (tiny settings; a smoke test, not a measurement)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_quick_run_writes_results(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--no-litellm", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads((tmp_path / "quick.json").read_text())
    sat = res["saturation"]
    names = ("direct", "shunter pass-through", "shunter learned (hit)")
    for name in names + tuple(f"shunter learned {tier}" for tier in ("fast", "tiered", "accurate")):
        assert sat[name]["median"]["rps"] > 0 and sat[name]["median"]["errors"] == 0, name
    assert res["heavy_libs_loaded"]["shunter"] == []  # torch/sklearn never mapped into the gateway
    assert set(res["routing"]["lengths"]) == {"10", "100", "256"}
    assert {"fast", "tiered", "accurate"} <= set(res["routing"]["real"])
    assert res["meta"]["prompt_tokens"]["count"] > 1  # real, varied prompts
    md = (tmp_path / "quick.md").read_text()
    assert "| shunter pass-through |" in md and "Targets (issue 15)" in md
