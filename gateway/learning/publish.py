"""Publishing a router artifact: point the policy file at the new versioned folder.

Artifacts are never overwritten: each retrain writes ``<out>/<policy>/<version>/`` and
publishing rewrites only the ``policies.<name>.router.path`` scalar of the policy file (found
by YAML node position, so comments and layout stay), via a temporary file and an atomic
rename. The running gateway's ``Reloader`` (file watch, SIGHUP or ``POST /admin/reload``)
then builds a new runtime with the new ONNX session and swaps it in one assignment; requests
in flight finish on the router they started with, so no request fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml


def _child(node: yaml.Node | None, key: str) -> yaml.Node:
    if not isinstance(node, yaml.MappingNode):
        raise KeyError(key)
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    raise KeyError(key)


def set_router_path(policy_file: Path, policy: str, new_path: str) -> str:
    """Rewrite ``policies.<policy>.router.path``; returns the old value."""
    text = policy_file.read_text()
    node = yaml.compose(text)
    try:
        scalar = _child(_child(_child(_child(node, "policies"), policy), "router"), "path")
    except KeyError as exc:
        raise ValueError(f"{policy_file}: no policies.{policy}.router.path to rewrite ({exc})") from None
    start, end = scalar.start_mark.index, scalar.end_mark.index
    new_text = text[:start] + json.dumps(new_path) + text[end:]
    tmp = policy_file.with_name(f".{policy_file.name}.publish.tmp")
    tmp.write_text(new_text)
    os.replace(tmp, policy_file)
    return scalar.value


def relative_to_policy(policy_file: Path, artifact: Path) -> str:
    try:
        return os.path.relpath(artifact.resolve(), policy_file.resolve().parent)
    except ValueError:  # another drive (Windows)
        return str(artifact.resolve())


def trigger_reload(url: str, admin_key: str | None) -> dict:
    """``POST <url>/admin/reload`` (when the gateway does not watch the file)."""
    import httpx

    headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
    r = httpx.post(url.rstrip("/") + "/admin/reload", headers=headers, timeout=60)
    r.raise_for_status()
    return r.json()
