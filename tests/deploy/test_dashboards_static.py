"""Dashboards and alert rules reference only metrics the gateway exports; the JSON is current."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import gateway.metrics  # noqa: F401  (registers every metric)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
METRIC = re.compile(r"\b(shunter_[a-z0-9_]+)\b")


def exported() -> set[str]:
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        for fam in collector.describe() if hasattr(collector, "describe") else []:
            if not fam.name.startswith("shunter_"):
                continue
            if fam.type == "counter":
                names |= {fam.name + "_total", fam.name + "_created"}
            elif fam.type == "histogram":
                names |= {fam.name + s for s in ("_bucket", "_sum", "_count", "_created")}
            else:
                names.add(fam.name)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for f in sorted((GRAFANA / "dashboards").glob("*.json")):
        d = json.loads(f.read_text())
        for p in d["panels"]:
            out += [(f"{f.stem}/{p['title']}", t["expr"]) for t in p["targets"]]
        for v in d["templating"]["list"]:
            out.append((f"{f.stem}/${v['name']}", v["definition"]))
    return out


def test_every_referenced_metric_is_exported():
    names = exported()
    assert "shunter_requests_total" in names and "shunter_request_duration_seconds_bucket" in names
    unknown = [(where, m) for where, expr in dashboard_exprs() for m in METRIC.findall(expr) if m not in names]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            unknown += [(f"alert {r['alert']}", m) for m in METRIC.findall(r["expr"]) if m not in names]
    assert not unknown, f"dashboards reference metrics the gateway does not export: {unknown}"


def test_four_dashboards_with_the_promised_panels():
    titles = {
        f.stem: {p["title"] for p in json.loads(f.read_text())["panels"]}
        for f in (GRAFANA / "dashboards").glob("*.json")
    }
    assert set(titles) == {"overview", "routing", "upstreams", "learning"}
    assert {"Requests per second", "Error rate", "Request duration", "Time to first token"} <= titles["overview"]
    assert {
        "Traffic share per model",
        "Decision reasons",
        "Cost per hour by model",
        "Cost saved per hour",
        "Threshold in force",
    } <= titles["routing"]
    assert {"Upstream latency (to headers)", "Upstream errors by class", "Circuit state"} <= titles["upstreams"]
    assert {"Outcomes recorded", "Feedback rate (per outcome)", "Retrain results (range)"} <= titles["learning"]
    assert {"Net savings vs reference (USD)", "Judged quality vs reference (range)"} <= titles["learning"]


def test_dashboards_use_the_provisioned_datasource_and_are_generated():
    ds_uid = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())["datasources"][
        0
    ]["uid"]
    for f in (GRAFANA / "dashboards").glob("*.json"):
        d = json.loads(f.read_text())
        uids = {p["datasource"]["uid"] for p in d["panels"]} | {
            t["datasource"]["uid"] for p in d["panels"] for t in p["targets"]
        }
        assert uids == {ds_uid}, f.name
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    for build in (mod.overview, mod.routing, mod.upstreams, mod.learning):
        d = build()
        path = GRAFANA / "dashboards" / f"{d['uid'].removeprefix('shunter-')}.json"
        assert json.loads(path.read_text()) == d, f"{path.name} is stale: run python deploy/grafana/build_dashboards.py"
