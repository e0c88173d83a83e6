"""Hand-built ONNX graphs for the router heads (export time only; imports ``onnx``).

Every graph takes ``embedding`` (float32 [N, dim]) and returns named float32 outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17


class GraphBuilder:
    """Tiny helper around ``onnx.helper`` for straight-line graphs."""

    def __init__(self, dim: int, input_name: str = "embedding") -> None:
        from onnx import TensorProto, helper

        self._h, self._tp = helper, TensorProto
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", dim])
        self.input_name = input_name
        self._n = 0

    def const(self, array: np.ndarray, name: str | None = None) -> str:
        from onnx import numpy_helper

        self._n += 1
        name = name or f"c{self._n}"
        arr = np.asarray(array)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        self._n += 1
        out = out or f"t{self._n}"
        self.nodes.append(self._h.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def dense(self, x: str, w: np.ndarray, b: np.ndarray | None = None) -> str:
        y = self.op("MatMul", [x, self.const(np.asarray(w, np.float32))])
        return self.op("Add", [y, self.const(np.asarray(b, np.float32))]) if b is not None else y

    def save(self, path: str | Path, outputs: Mapping[str, Sequence[Any]], doc: str = "") -> None:
        """``outputs``: name -> shape; the graph must have produced tensors with these names."""
        import onnx

        outs = [self._h.make_tensor_value_info(n, self._tp.FLOAT, list(shape)) for n, shape in outputs.items()]
        graph = self._h.make_graph(self.nodes, "shunter_router", [self.input], outs, self.inits)
        model = self._h.make_model(graph, opset_imports=[self._h.make_opsetid("", OPSET)], producer_name="shunter")
        model.ir_version = 8
        model.doc_string = doc
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def mlp_quality_graph(
    path: str | Path,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    pair: tuple[int, int] | None = None,
    doc: str = "",
) -> None:
    """``quality = sigmoid(MLP(embedding))`` with ReLU between layers; optional ``strong_win``.

    ``pair=(strong_col, weak_col)`` adds ``strong_win = sigmoid(logit_s - logit_w)``.
    """
    dim = np.asarray(layers[0][0]).shape[0]
    g = GraphBuilder(dim)
    x = g.input_name
    for i, (w, b) in enumerate(layers):
        x = g.dense(x, w, b)
        if i < len(layers) - 1:
            x = g.op("Relu", [x])
    logits = x
    g.op("Sigmoid", [logits], "quality")
    outputs: dict[str, Sequence[Any]] = {"quality": ["N", np.asarray(layers[-1][0]).shape[1]]}
    if pair is not None:
        m = np.asarray(layers[-1][0]).shape[1]
        diff = np.zeros(m, np.float32)
        diff[pair[0]], diff[pair[1]] = 1.0, -1.0
        g.op("Sigmoid", [g.op("MatMul", [logits, g.const(diff)])], "strong_win")
        outputs["strong_win"] = ["N"]
    g.save(path, outputs, doc)
