"""Markdown tables (and the issue's target checks) from a ``bench/run.py`` result."""

from __future__ import annotations

NOISE = (
    "Measured on a shared, noisy machine (other processes compete for the same cores): "
    "all targets run side by side, interleaved run by run, and every figure is a median of the runs."
)


def _f(v: float | None, nd: int = 1) -> str:
    return "–" if v is None else f"{v:,.{nd}f}"


def targets_met(res: dict) -> list[dict]:
    """Issue 15's speed and memory targets: measured value and whether each is met."""
    sat = res.get("saturation", {})
    rows: list[dict] = []

    def med(name: str, key: str) -> float | None:
        return sat.get(name, {}).get("median", {}).get(key)

    ll = med("litellm", "rps")
    if ll:
        for tier in ("fast", "tiered", "accurate"):
            r = med(f"shunter learned {tier}", "rps")
            if r:
                rows.append(
                    {
                        "figure": f"learned {tier}, real unique prompts: RPS vs LiteLLM",
                        "target": ">= 8x (fast or tiered)",
                        "measured": f"{r / ll:.1f}x ({r:,.0f} vs {ll:,.0f})",
                        "met": r / ll >= 8,
                    }
                )
    passcpu = med("shunter pass-through", "cpu_us_per_req")
    for tier in ("fast", "tiered", "accurate"):
        cpu = med(f"shunter learned {tier}", "cpu_us_per_req")
        if passcpu and cpu:
            rows.append(
                {
                    "figure": f"gateway CPU per learned {tier} request / pass-through's",
                    "target": "<= 2x",
                    "measured": f"{cpu / passcpu:.2f}x ({cpu:,.0f} vs {passcpu:,.0f} µs)",
                    "met": cpu / passcpu <= 2,
                }
            )
    routing = res.get("routing", {}).get("lengths", {})
    for tok, r in routing.items():
        for key, what in (("fast", "wall"), ("fast_cpu", "CPU")):
            f = r.get(key)
            if f:
                rows.append(
                    {
                        "figure": f"fast-tier decision, {tok} tokens ({what} time)",
                        "target": "p50 <= 0.3 ms, p99 <= 1 ms",
                        "measured": f"p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms",
                        "met": f["p50_ms"] <= 0.3 and f["p99_ms"] <= 1,
                    }
                )
    rss = res.get("rss_mb", {}).get("shunter")
    heavy = res.get("heavy_libs_loaded", {}).get("shunter", [])
    if rss is not None:
        load_s = res.get("load_seconds")
        rows.append(
            {
                "figure": "gateway RSS after the unique-prompt load" + (f" ({load_s:.0f} s)" if load_s else ""),
                "target": "<= 300 MB, no torch",
                "measured": f"{rss:.0f} MB, heavy libs: {', '.join(heavy) or 'none'}",
                "met": rss <= 300 and not heavy,
            }
        )
    return rows


def _tokens(t: dict | int | None) -> str:
    if isinstance(t, dict):
        return f"median {t['median']:.0f}, p90 {t['p90']}, max {t['max']}"
    return str(t)


def markdown(res: dict) -> str:
    meta = res.get("meta", {})
    s = meta.get("settings", {})
    lines = [
        f"### Benchmark ({meta.get('date', '')}, git {meta.get('git', '')}, {meta.get('cpus')} CPUs)",
        "",
        f"{NOISE} Load average before/after: {', '.join(f'{x:.1f}' for x in meta.get('loadavg_before', []))} / "
        f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_after', []))}. "
        f"{s.get('runs')} runs x {s.get('duration')} s per target, {s.get('connections')} connections, wrk; "
        f"router: {meta.get('router')}; prompts: {meta.get('prompt')} "
        f"(word pieces: {_tokens(meta.get('prompt_tokens'))}); gateway loop/parser: "
        f"{', '.join(res.get('serving_stack', {}).get('shunter', [])) or 'unknown'}.",
        "",
    ]
    sat, paced = res.get("saturation", {}), res.get("paced", {})
    ll = sat.get("litellm", {}).get("median", {}).get("rps")
    base = sat.get("direct", {}).get("median", {})
    pbase = paced.get("direct", {}).get("median", {})
    rss = res.get("rss_mb", {})
    llcpu = sat.get("litellm", {}).get("median", {}).get("cpu_us_per_req")
    lines += [
        "| target | RPS | x LiteLLM | CPU µs / request (x LiteLLM) | p50 / p95 / p99 ms | added p50 / p95 / p99 ms | paced: added p50 / p99 ms | RSS MB |",
        "|---|---:|---:|---:|---|---|---|---:|",
    ]
    for name, r in sat.items():
        m = r["median"]
        added = "–" if name == "direct" else " / ".join(_f(m[k] - base[k], 2) for k in ("p50_ms", "p95_ms", "p99_ms"))
        pm = paced.get(name, {}).get("median")
        padded = (
            "–"
            if (name == "direct" or not pm)
            else f"{_f(pm['p50_ms'] - pbase['p50_ms'], 2)} / {_f(pm['p99_ms'] - pbase['p99_ms'], 2)}"
        )
        proc = "upstream" if name == "direct" else ("litellm" if name.startswith("litellm") else "shunter")
        mem = _f(rss.get(proc), 0) if name in ("direct", "litellm", "shunter pass-through") else ""
        cpu = m.get("cpu_us_per_req")
        cpu_s = (
            "–" if cpu is None else (f"{cpu:,.0f}" + (f" ({llcpu / cpu:.1f}x)" if llcpu and name != "litellm" else ""))
        )
        lines.append(
            f"| {name} | {_f(m['rps'], 0)} | {_f(m['rps'] / ll, 1) if ll else '–'} | {cpu_s} | "
            f"{_f(m['p50_ms'], 2)} / {_f(m['p95_ms'], 2)} / {_f(m['p99_ms'], 2)} | {added} | {padded} | {mem} |"
        )
    if paced:
        d = paced.get("direct", {}).get("median", {})
        lines += [
            "",
            f"Paced: {s.get('connections')} connections, each waiting a random 0-{2 * (s.get('paced_delay_ms') or 0)} ms between requests "
            f"(direct: {_f(d.get('rps'), 0)} rps offered).",
        ]
    st, tt = res.get("stream", {}), res.get("ttfb", {})
    if st:
        sb = st.get("direct stream", {}).get("median", {})
        tb = tt.get("direct stream", {})
        lines += [
            "",
            "Streaming (SSE, 4 content chunks + usage):",
            "",
            "| target | RPS | p50 / p99 ms | TTFB p50 / p99 ms (sequential) | added TTFB p50 ms |",
            "|---|---:|---|---|---:|",
        ]
        for name, r in st.items():
            m, t = r["median"], tt.get(name, {})
            added = "–" if name == "direct stream" else _f(t.get("ttfb_p50_ms", 0) - tb.get("ttfb_p50_ms", 0), 2)
            lines.append(
                f"| {name} | {_f(m['rps'], 0)} | {_f(m['p50_ms'], 2)} / {_f(m['p99_ms'], 2)} | "
                f"{_f(t.get('ttfb_p50_ms'), 2)} / {_f(t.get('ttfb_p99_ms'), 2)} | {added} |"
            )
        del sb
    rt = res.get("routing")
    if rt:
        lines += [
            "",
            f"Routing decision alone, in process (embed + score, unique prompts; encoder threads "
            f"{rt.get('encoder_threads')}, micro-batch <= {rt.get('max_batch')} / {rt.get('max_wait_ms'):.1f} ms):",
            "",
            "| prompt tokens | fast tier p50 / p99 ms | MiniLM batch 1 p50 / p99 ms | cache hit p50 / p99 ms | "
            f"MiniLM {rt.get('concurrency')} concurrent p50 / p99 ms | decisions/s | mean batch |",
            "|---:|---|---|---|---|---:|---:|",
        ]
        for tok, r in rt["lengths"].items():
            b, h, c = r["batch1"], r["cache_hit"], r["concurrent"]
            f = r.get("fast") or {}
            lines.append(
                f"| {tok} | {_f(f.get('p50_ms'), 3)} / {_f(f.get('p99_ms'), 3)} | "
                f"{_f(b['p50_ms'], 2)} / {_f(b['p99_ms'], 2)} | {_f(h['p50_ms'], 3)} / {_f(h['p99_ms'], 3)} | "
                f"{_f(c['p50_ms'], 1)} / {_f(c['p99_ms'], 1)} | {_f(c['decisions_per_s'], 0)} | {_f(c['mean_batch'], 1)} |"
            )
    real = (rt or {}).get("real")
    if real:
        lines += [
            "",
            f"Decision alone on {real['n']} real prompts, one at a time (threshold {real['threshold']:.3f}, "
            f"band {real['band']}): the tiered rule escalated {real['tiered']['escalated_share']:.0%} to MiniLM.",
            "",
            "| encoder tier | p50 ms | p99 ms | mean ms |",
            "|---|---:|---:|---:|",
        ]
        for tier in ("fast", "tiered", "accurate"):
            t = real[tier]
            lines.append(f"| {tier} | {t['p50_ms']:.3f} | {t['p99_ms']:.3f} | {t['mean_ms']:.3f} |")
    tiers = res.get("encoder_tiers")
    if tiers:
        lines += ["", "Gateway decisions by encoder tier: " + ", ".join(f"{k} {v:,.0f}" for k, v in tiers.items())]
    rows = targets_met(res)
    if rows:
        lines += ["", "Targets (issue 15):", "", "| figure | target | measured | met |", "|---|---|---|---|"]
        lines += [
            f"| {r['figure']} | {r['target']} | {r['measured']} | {'yes' if r['met'] else '**no**'} |" for r in rows
        ]
    lines += ["", f"Reproduce: `{meta.get('command', '.venv/bin/python bench/run.py')}`", ""]
    return "\n".join(lines)
