"""``shunter_retrain_runs_total`` from the retrain reports on disk.

``shunter retrain`` runs outside the gateway and writes
``<out>/<policy>/<version>/report.json`` with ``"decision": "published" | "refused"``
(``gateway.learning.retrain``; ``<out>`` defaults to ``var/routers``). This collector counts
those reports when Prometheus scrapes, so refused runs show up too, the count survives gateway
restarts, and every replica that mounts the same folder reports the same numbers.
``create_app`` points it at ``Settings.retrain_dir`` (``SHUNTER_RETRAIN_DIR``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

NAME = "shunter_retrain_runs"
DECISIONS = ("published", "refused")


class RetrainReports(Collector):
    """Counts ``report.json`` files per (policy, decision); known policies start at zero."""

    def __init__(self, root: Path = Path("var/routers")) -> None:
        self.root = root
        self.policies: set[str] = set()
        self._seen: dict[Path, tuple[float, str, str]] = {}

    def counts(self) -> dict[tuple[str, str], int]:
        out = {(p, d): 0 for p in self.policies for d in DECISIONS}
        root = self.root
        if root.is_dir():
            for path in root.glob("*/*/report.json"):
                try:
                    mtime = path.stat().st_mtime
                    cached = self._seen.get(path)
                    if cached is None or cached[0] != mtime:
                        rep = json.loads(path.read_text())
                        cached = (mtime, str(rep.get("policy") or path.parent.parent.name), str(rep.get("decision")))
                        self._seen[path] = cached
                except (OSError, ValueError):
                    continue
                _, policy, decision = cached
                if decision in DECISIONS:
                    out[(policy, decision)] = out.get((policy, decision), 0) + 1
        return out

    def latest(self, policy: str) -> dict | None:
        """The newest readable ``report.json`` of ``policy`` (by its ``created`` time), or None."""
        best: tuple[float, dict] | None = None
        root = self.root / policy
        if not root.is_dir():
            return None
        for path in root.glob("*/report.json"):
            try:
                rep = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            created = float(rep.get("created") or path.stat().st_mtime)
            if best is None or created > best[0]:
                best = (created, {**rep, "report_file": str(path)})
        return best[1] if best else None

    def describe(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(
            NAME, "Retrain runs by policy and gate decision (published, refused).", labels=["policy", "decision"]
        )

    def collect(self) -> Iterable[CounterMetricFamily]:
        fam = CounterMetricFamily(
            NAME, "Retrain runs by policy and gate decision (published, refused).", labels=["policy", "decision"]
        )
        for (policy, decision), n in sorted(self.counts().items()):
            fam.add_metric([policy, decision], n)
        yield fam


COLLECTOR = RetrainReports()
