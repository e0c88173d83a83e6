"""A Kubernetes ConfigMap update reaches the running gateway (hot reload).

The kubelet does not edit a mounted ConfigMap file in place: ``policy.yaml`` is a symlink to
``..data/policy.yaml``, ``..data`` a symlink to a timestamped folder, and an update writes a
new folder, swaps ``..data`` atomically (rename) and deletes the old folder. This test builds
exactly that layout, starts a real gateway on it and performs the same swap.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import yaml

from tests.support.procs import upstream_entry

ADMIN = "cm-admin"


def _publish(mount: Path, cfg: dict, stamp: str) -> None:
    """What the kubelet's AtomicWriter does for one update."""
    new = mount / f"..{stamp}"
    new.mkdir()
    (new / "policy.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    tmp = mount / "..data_tmp"
    os.symlink(new.name, tmp)
    os.rename(tmp, mount / "..data")
    if not (mount / "policy.yaml").is_symlink():
        os.symlink("..data/policy.yaml", mount / "policy.yaml")
    if old:
        shutil.rmtree(mount / old)


def _policies(gw) -> set[str]:
    r = httpx.get(f"{gw.url}/v1/models", timeout=5)
    return {m["id"] for m in r.json()["data"]}


def test_configmap_swap_is_picked_up(gateway, fake_upstream, tmp_path):
    fake = fake_upstream("m-v1")
    cfg = {
        "server": {"outcomes_path": str(tmp_path / "o.sqlite"), "admin_key": "os.environ/SHUNTER_ADMIN_KEY"},
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"first": {"candidates": ["a", "b"]}},
    }
    mount = tmp_path / "etc-shunter"
    mount.mkdir()
    _publish(mount, cfg, "2026_01_01_00_00_00.000000001")
    gw = gateway(mount / "policy.yaml", env={"SHUNTER_ADMIN_KEY": ADMIN})
    assert "router-first" in _policies(gw)
    time.sleep(0.5)  # the watcher is running
    cfg["policies"]["second"] = {"candidates": ["a", "b"]}
    _publish(mount, cfg, "2026_01_01_00_01_00.000000002")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "router-second" not in _policies(gw):
        time.sleep(0.2)
    assert "router-second" in _policies(gw), "the ConfigMap update was not reloaded"
    # and a second update after the first swap still works (the watcher survived the swap)
    cfg["policies"]["third"] = {"candidates": ["a", "b"]}
    _publish(mount, cfg, "2026_01_01_00_02_00.000000003")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "router-third" not in _policies(gw):
        time.sleep(0.2)
    assert "router-third" in _policies(gw)
