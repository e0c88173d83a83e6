"""A Kubernetes ConfigMap update reaches the running gateway (hot reload).

The kubelet does not edit a mounted ConfigMap file in place: ``policy.yaml`` is a symlink to
``..data/policy.yaml``, ``..data`` a symlink to a timestamped folder, and an update writes a
new folder, swaps ``..data`` atomically (rename) and deletes the old folder. This test builds
exactly that layout, starts a real gateway on it and performs the same swap.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import httpx
import yaml

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until

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
    cfg["policies"]["second"] = {"candidates": ["a", "b"]}
    stamps = (f"2026_01_01_00_01_{i:02d}.000000002" for i in itertools.count())

    def publish_until_seen() -> bool:
        # The watcher starts with the app and may not be armed the instant /readyz answers: publish
        # again (as the kubelet would on the next update) until the gateway has the new policy.
        _publish(mount, cfg, next(stamps))
        try:
            return wait_until(lambda: "router-second" in _policies(gw), 2, 0.1)
        except TimeoutError:
            return False

    wait_until(publish_until_seen, 30, 0, "the ConfigMap update is reloaded")
    # and an update after the first swap works at once (the watcher survived the swap)
    cfg["policies"]["third"] = {"candidates": ["a", "b"]}
    _publish(mount, cfg, "2026_01_01_00_02_00.000000003")
    wait_until(lambda: "router-third" in _policies(gw), 10, 0.1, "the second ConfigMap update is reloaded")
