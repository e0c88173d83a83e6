"""Serve-time modules must not pull in training dependencies."""

import subprocess
import sys

from tests.support.paths import ROOT

SERVE_MODULES = [
    "routers.base",
    "routers.encoder",
    "routers.decision",
    "routers.batching",
    "routers.runtime",
    "routers.calibration",
    "routers.mf",
    "routers.cluster",
    "routers.cascade",
    "routers.cost",
    "routers.random",
    "routers.knn",
    "routers.prior",
    "routers.identities",
]


def test_serve_imports_are_torch_free():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in SERVE_MODULES)
        + "from routers.base import _import_families; _import_families()\n"
        + "bad = [m for m in ('torch', 'sklearn', 'sentence_transformers', 'onnx', 'skl2onnx') if m in sys.modules]\n"
        + "assert not bad, bad\n"
        + "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_loading_a_shipped_artifact_is_torch_free():
    code = (
        "import sys, pathlib\n"
        "from routers.base import load_router\n"
        "import numpy as np\n"
        "arts = sorted(p for p in pathlib.Path('routers/artifacts').iterdir() if (p / 'router.json').exists())\n"
        "for p in arts:\n"
        "    import json\n"
        "    if json.loads((p / 'router.json').read_text())['kind'] == 'answer-check':\n"
        "        from routers.cascade import AnswerChecker; AnswerChecker.load(p).check(np.ones((1,384),np.float32)/20, np.ones((1,384),np.float32)/20)\n"
        "    else:\n"
        "        load_router(p).score(np.ones((2, 384), np.float32) / 20)\n"
        "bad = [m for m in ('torch', 'sklearn', 'sentence_transformers', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(len(arts))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
