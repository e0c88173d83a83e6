"""onnxruntime execution providers for the encoder and the routers, with a logged fallback to CPU.

The setting is a comma-separated list of short names, in order of preference, from
``SHUNTER_EXECUTION_PROVIDERS`` (default ``cpu``)::

    SHUNTER_EXECUTION_PROVIDERS=cuda          # NVIDIA (pip install 'shunter[gpu]')
    SHUNTER_EXECUTION_PROVIDERS=rocm          # AMD
    SHUNTER_EXECUTION_PROVIDERS=openvino      # Intel (onnxruntime-openvino)
    SHUNTER_EXECUTION_PROVIDERS=coreml        # Apple
    SHUNTER_EXECUTION_PROVIDERS=directml      # Windows (onnxruntime-directml)
    SHUNTER_EXECUTION_PROVIDERS=tensorrt,cuda # the first one that works wins per graph

CPU is always appended last. A provider the installed onnxruntime build lacks, or one that
fails to start a session (missing CUDA libraries, no device), is dropped with one warning on
the ``shunter`` logger naming the provider, the graph and the reason, and the graph runs on
the CPU: a misconfigured GPU never stops the gateway from routing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger("shunter")

ENV = "SHUNTER_EXECUTION_PROVIDERS"
CPU = "CPUExecutionProvider"
PROVIDERS = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}


def parse(spec: str | Sequence[str] | None) -> list[str]:
    """onnxruntime provider names for ``spec`` (short names or full names; CPU last)."""
    if spec is None:
        from .settings import RouterSettings

        spec = RouterSettings().execution_providers
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    out: list[str] = []
    for item in items:
        if not item:
            continue
        full = PROVIDERS.get(item.lower(), item)
        if full not in PROVIDERS.values():
            raise ValueError(f"unknown execution provider {item!r}; choose from {', '.join(PROVIDERS)}")
        if full not in out:
            out.append(full)
    if CPU in out:
        out.remove(CPU)
    return [*out, CPU]


def available(wanted: list[str], graph: str) -> list[str]:
    """``wanted`` less what this onnxruntime build lacks (each dropped one is logged)."""
    have = set(ort.get_available_providers())
    keep = []
    for p in wanted:
        if p in have:
            keep.append(p)
        else:
            log.warning(
                "execution provider %s is not available in this onnxruntime build (available: %s); "
                "falling back to %s for %s",
                p,
                ", ".join(sorted(have)),
                CPU,
                graph,
            )
    return keep if CPU in keep else [*keep, CPU]


def session(
    path: str | Path,
    opts: ort.SessionOptions,
    providers: str | Sequence[str] | None = None,
) -> ort.InferenceSession:
    """An ``InferenceSession`` on the preferred providers; CPU when they cannot start (logged)."""
    graph = Path(path).name
    wanted = available(parse(providers), graph)
    try:
        sess = ort.InferenceSession(str(path), opts, providers=wanted)
    except Exception as exc:  # a provider's library or device missing at session start
        if wanted == [CPU]:
            raise
        log.warning("execution providers %s failed for %s (%s); falling back to %s", wanted[:-1], graph, exc, CPU)
        return ort.InferenceSession(str(path), opts, providers=[CPU])
    got = sess.get_providers()
    dropped = [p for p in wanted if p not in got]
    if dropped:  # onnxruntime drops a provider it cannot start with only its own stderr message
        log.warning("execution providers %s did not start for %s; running on %s", dropped, graph, ", ".join(got))
    return sess
