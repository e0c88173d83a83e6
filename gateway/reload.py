"""Reload the policy file: validate, build a new runtime, swap it atomically, or keep the old one.

Requests capture the holder's ``current`` runtime when they arrive, so in-flight requests finish
on the policy they started with. Triggers: file changes (watchfiles), SIGHUP, ``POST /admin/reload``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway import metrics
from gateway.policy.loader import ConfigError, load_config
from gateway.policy.schema import Config
from gateway.runtime import Encoders, Runtime, RuntimeHolder, build_clients, build_policies

log = logging.getLogger("shunter.reload")


class Reloader:
    """Swaps ``holder.current``; ``make_embedder(cfg)`` starts the encoder on the first reload that needs one."""

    def __init__(
        self,
        holder: RuntimeHolder,
        path: Path,
        launched: dict[str, str],
        encoders: Encoders,
        make_embedder: Callable[[Any], Any],
    ) -> None:
        self.holder = holder
        self.encoders = encoders
        self.path = path
        self.launched = launched
        self.make_embedder = make_embedder
        self.on_swap: list[Callable[[Runtime], None]] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._closing: set[asyncio.Future] = set()  # replaced connection pools being closed

    async def reload(self, trigger: str) -> dict:
        async with self._lock:
            st = self.holder
            old: Runtime = st.current
            try:
                cfg = await asyncio.to_thread(load_config, self.path)
                policies = await asyncio.to_thread(build_policies, cfg, self.path.parent, {}, self.encoders)
            except ConfigError as exc:
                return self._rejected(trigger, [str(p) for p in exc.problems])
            except Exception as exc:  # a router that fails to load, for instance
                return self._rejected(trigger, [f"{self.path}: {type(exc).__name__}: {exc}"])
            clients = build_clients(cfg, self.launched, old.clients)
            new = Runtime(cfg, self.path, clients, policies, old.embedder or self.make_embedder(cfg))
            st.current = new  # atomic swap: one reference assignment
            for hook in self.on_swap:
                hook(new)
            for name, c in old.clients.items():
                if clients.get(name) is not c:
                    asyncio.get_running_loop().call_later(old_client_grace(c), self._close, c)
            st.loaded_at = time.time()
            changes = config_changes(old.cfg, cfg)
            st.last_reload = {"ok": True, "trigger": trigger, "at": st.loaded_at, "errors": [], "changes": changes}
            metrics.CONFIG_RELOADS.labels("success").inc()
            export_objectives(new)
            log.info("policy file %s reloaded (%s): %s", self.path, trigger, "; ".join(changes))
            return st.last_reload

    def _close(self, client: Any) -> None:
        closing = asyncio.ensure_future(client.aclose())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _rejected(self, trigger: str, errors: list[str]) -> dict:
        st = self.holder
        st.last_reload = {"ok": False, "trigger": trigger, "at": time.time(), "errors": errors}
        metrics.CONFIG_RELOADS.labels("rejected").inc()
        log.error("policy file %s rejected, keeping the running policy:\n%s", self.path, "\n".join(errors))
        return st.last_reload

    async def watch(self) -> None:
        from watchfiles import awatch

        # Watch the folder the file is named in (recursively), not only where a symlink points: a
        # Kubernetes ConfigMap mount swaps a `..data` symlink to a new folder on every update and
        # deletes the old folder, which would end a watch on the resolved parent after one update.
        dirs = {self.path.parent.absolute()}
        if not self.path.resolve().parent.is_relative_to(self.path.parent.resolve()):
            dirs.add(self.path.resolve().parent)  # a policy file symlinked from elsewhere
        names = {self.path.name, "..data"}
        async for changes in awatch(*dirs, debounce=200, step=50):
            target = self.path.resolve()
            if any(Path(p).name in names or Path(p).resolve() == target for _, p in changes):
                await self.reload("file")

    def start(self) -> None:
        self._task = asyncio.create_task(self.watch(), name="policy-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None


def config_changes(old: Config, new: Config) -> list[str]:
    """What a reload changed, by name: sections, entries and field names (never values: keys are secrets).

    ``["policies changed: chat (objective, rules)", "upstreams added: gpt-4.1"]``, or
    ``["no changes"]`` when the file was saved unchanged.
    """
    out: list[str] = []
    for section in ("upstreams", "policies"):
        before, after = getattr(old, section), getattr(new, section)
        added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
        if added:
            out.append(f"{section} added: {', '.join(added)}")
        if removed:
            out.append(f"{section} removed: {', '.join(removed)}")
        changed = [
            f"{name} ({', '.join(fields)})"
            for name in sorted(set(before) & set(after))
            if (fields := _changed_fields(before[name], after[name]))
        ]
        if changed:
            out.append(f"{section} changed: {'; '.join(changed)}")
    if fields := _changed_fields(old.server, new.server):
        out.append(f"server changed: {', '.join(fields)}")
    return out or ["no changes"]


def _changed_fields(before: BaseModel, after: BaseModel) -> list[str]:
    return [f for f in type(before).model_fields if getattr(before, f) != getattr(after, f)]


def old_client_grace(client: Any) -> float:
    """Close replaced connection pools only after in-flight calls could have finished."""
    return float(client.cfg.timeouts.total) + 1.0


def export_objectives(rt: Runtime) -> None:
    metrics.prime(rt)
    for name, p in rt.policies.items():
        metrics.THRESHOLD.labels(name, p.objective.kind).set(p.objective.value)
