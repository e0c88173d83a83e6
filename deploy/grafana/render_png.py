"""Render a picture of the Shunter dashboards with matplotlib from a live Prometheus.

It runs the dashboards' own panel queries (``deploy/grafana/dashboards/*.json``) as range
queries and draws a grid of the most telling panels. Used for the README picture:

    SHUNTER_DASHBOARD_PNG=docs/img/dashboard.png .venv/bin/pytest tests/e2e/test_dashboards.py

or by hand against any Prometheus that scrapes a gateway:

    python deploy/grafana/render_png.py http://127.0.0.1:9090 docs/img/dashboard.png
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import httpx

DASH = Path(__file__).resolve().parent / "dashboards"
PANELS = [
    ("overview", "Requests per second"),
    ("overview", "Request duration"),
    ("overview", "Time to first token"),
    ("routing", "Traffic share per model"),
    ("routing", "Decision reasons"),
    ("routing", "Cost saved per hour"),
    ("upstreams", "Upstream errors by class"),
    ("upstreams", "Upstream latency (to headers)"),
    ("learning", "Outcomes recorded"),
]


def _expand(expr: str, step: int) -> str:
    for k, v in (
        ("$__rate_interval", f"{max(4 * step, 15)}s"),
        ("$__range", "5m"),
        ("$__interval", f"{step}s"),
        ("$policy", ".*"),
        ("$upstream", ".*"),
    ):
        expr = expr.replace(k, v)
    return expr


def _legend(fmt: str, metric: dict) -> str:
    import re

    out = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), "") or "(none)", fmt)
    return out.strip() or "value"


def render(prom_url: str, out: Path, seconds: int = 300, step: int = 2) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {}
    for f in DASH.glob("*.json"):
        for p in json.loads(f.read_text())["panels"]:
            panels[(f.stem, p["title"])] = p
    end = time.time()
    start = end - seconds
    fig, axes = plt.subplots(3, 3, figsize=(13, 8.2), dpi=72)
    fig.patch.set_facecolor("#111217")
    for ax, key in zip(axes.flat, PANELS):
        p = panels[key]
        ax.set_facecolor("#181b1f")
        ax.set_title(f"{p['title']}  ({key[0]})", color="#d8d9da", fontsize=10, loc="left")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        for s in ax.spines.values():
            s.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.5)
        for t in p["targets"]:
            r = httpx.get(
                f"{prom_url}/api/v1/query_range",
                params={"query": _expand(t["expr"], step), "start": start, "end": end, "step": step},
                timeout=20,
            ).json()
            for series in r.get("data", {}).get("result", [])[:6]:
                xs = [float(v[0]) - end for v in series["values"]]
                ys = [float(v[1]) for v in series["values"]]
                pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
                if pts:
                    ax.plot(
                        [x for x, _ in pts],
                        [y for _, y in pts],
                        linewidth=1.3,
                        label=_legend(t.get("legendFormat", ""), series["metric"])[:28],
                    )
        unit = p["fieldConfig"]["defaults"].get("unit", "")
        ax.set_xlabel(f"seconds (unit: {unit})", color="#8e8e8e", fontsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, facecolor="#181b1f", labelcolor="#d8d9da", edgecolor="#2c3235", loc="upper left")
    fig.suptitle("Shunter dashboards (panel queries rendered from a test Prometheus)", color="#d8d9da", fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=fig.get_facecolor(), dpi=72)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(render(sys.argv[1], Path(sys.argv[2])))
