"""``shunter_retrain_runs_total`` counts the retrain reports on disk, in every worker."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import upstream_entry


def _retrains(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "shunter_retrain_runs":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[(s.labels["policy"], s.labels["decision"])] = s.value
    return out


def test_reports_written_by_retrain_show_up_as_counters(gateway, fake_upstream, tmp_path):
    fake = fake_upstream("m-v1")
    reports = tmp_path / "routers"
    cfg = {
        "upstreams": {"a": upstream_entry(fake), "b": upstream_entry(fake)},
        "policies": {"p": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg, env={"SHUNTER_RETRAIN_DIR": str(reports)}, args=["--workers", "2"])
    got = _retrains(httpx.get(f"{gw.url}/metrics").text)
    assert got == {("p", "published"): 0.0, ("p", "refused"): 0.0}
    # the layout and fields gateway.learning.retrain writes: <out>/<policy>/<version>/report.json
    for version, decision in (
        ("20260101-000000-aaaaaa", "refused"),
        ("20260102-000000-bbbbbb", "refused"),
        ("20260103-000000-cccccc", "published"),
    ):
        d = reports / "p" / version
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps({"policy": "p", "decision": decision, "reason": "test"}))
    (reports / "p" / "half-written").mkdir()
    (reports / "p" / "half-written" / "report.json").write_text("{not json")
    for _ in range(4):  # whichever worker answers
        got = _retrains(httpx.get(f"{gw.url}/metrics", headers={"connection": "close"}).text)
        assert got == {("p", "published"): 1.0, ("p", "refused"): 2.0}
