"""Start, probe and stop the processes a benchmark compares: the fake upstream, Shunter, LiteLLM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fakes" / "fake_upstream.py"
BENCH_VENV = ROOT / ".bench-venv"
LITELLM_KEY = "sk-bench-master"
HEAVY_LIBS = ("torch", "sklearn", "sentence_transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail fast if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the process and its children, in MiB."""
        try:
            p = psutil.Process(self.proc.pid)
            procs = [p, *p.children(recursive=True)]
            return sum(q.memory_info().rss for q in procs) / 2**20
        except psutil.Error:
            return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children so far."""
        try:
            p = psutil.Process(self.proc.pid)
            return sum(t.user + t.system for t in (q.cpu_times() for q in [p, *p.children(recursive=True)]))
        except psutil.Error:
            return float("nan")

    def loaded_libs(self, names: tuple[str, ...] = HEAVY_LIBS) -> list[str]:
        """Which of the packages ``names`` have shared objects mapped in the process (Linux)."""
        try:
            maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            return []
        return [lib for lib in names if f"/{lib}/" in maps]

    def loaded_heavy_libs(self) -> list[str]:
        """Which of torch/sklearn/sentence-transformers are loaded (the gateway must load none)."""
        return self.loaded_libs(HEAVY_LIBS)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_http(p: Proc, path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(
                f"{p.name} exited with {p.proc.returncode}:\n{p.log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(p.url + path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{p.name} not ready after {timeout}s; log:\n{p.log.read_text(errors='replace')[-3000:]}")


def _spawn(name: str, cmd: list[str], workdir: Path, env: dict | None = None, port: int = 0) -> Proc:
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=open(log, "wb"), stderr=subprocess.STDOUT
    )
    return Proc(name, port, proc, log)


def start_fake(workdir: Path) -> Proc:
    port = free_port()
    p = _spawn(
        "upstream", [sys.executable, str(FAKE), "--port", str(port), "--model-id", "fake-model"], workdir, port=port
    )
    wait_http(p, "/v1/models", 60)
    return p


def shunter_config(upstream: Proc, workdir: Path, router: Path | None, fast_router: Path | None = None) -> Path:
    """A policy file with a pass-through upstream and, given a router artifact, a learned policy
    per encoder tier (``learned-fast``, ``learned-tiered``, ``learned-accurate``: half the
    calibration prompts to the strong model, the tiered band at its default). ``fast_router``:
    the ``learned-fast`` policy's own router (one trained on the fast tier alone), if given."""
    entry = {
        "base_url": upstream.url + "/v1",
        "model": "fake-model",
        "input_price": 0.15,
        "output_price": 0.6,
        "context_window": 16000,
        "max_concurrency": 256,
        "timeouts": {"connect": 5, "first_byte": 30, "total": 60, "idle": 30},
    }
    cfg: dict = {
        "server": {"outcomes_path": str(workdir / "outcomes.sqlite")},
        "upstreams": {"fake": entry, "fake-strong": {**entry, "input_price": 2.5, "output_price": 10.0}},
        "policies": {},
    }
    if router is not None:
        meta = yaml.safe_load((router / "router.json").read_text())
        models = meta["models"]
        strong, weak = meta.get("strong") or models[0], meta.get("weak") or models[1]
        for tier in ("fast", "tiered", "accurate"):  # the same router and objective in each encoder tier
            path = fast_router if tier == "fast" and fast_router is not None else router
            cfg["policies"][f"learned-{tier}"] = {
                "candidates": ["fake", "fake-strong"],
                "router": {
                    "path": str(path),
                    "model_map": {"fake": weak, "fake-strong": strong},
                    "strong": "fake-strong",
                    "weak": "fake",
                },
                "objective": {"target_strong_share": 0.5},
                "encoder": tier,
            }
    path = workdir / "shunter.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def start_shunter(config: Path, workdir: Path, workers: int = 1) -> Proc:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--no-watch",
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    p = _spawn("shunter", cmd, workdir, port=port)
    wait_http(p, "/readyz", 180)
    return p


def ensure_litellm() -> Path:
    """The LiteLLM proxy executable in its own venv (``.bench-venv``), created on first use."""
    exe = BENCH_VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"creating {BENCH_VENV} with litellm[proxy] (first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def start_litellm(upstream: Proc, workdir: Path) -> Proc:
    exe = ensure_litellm()
    cfg = {
        "model_list": [
            {
                "model_name": "fake",
                "litellm_params": {
                    "model": "openai/fake-model",
                    "api_base": upstream.url + "/v1",
                    "api_key": "sk-fake",
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"drop_params": True, "set_verbose": False},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    port = free_port()
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    }
    p = _spawn(
        "litellm",
        [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        workdir,
        env=env,
        port=port,
    )
    wait_http(p, "/health/liveliness", 240)
    return p
