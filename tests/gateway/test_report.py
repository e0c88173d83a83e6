"""``shunter report``: the net-savings arithmetic on a store this test fills, and the ``--json`` CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.learning import report as R
from gateway.outcomes.record import Feedback, Outcome, Spend
from gateway.outcomes.sqlite import SQLiteStore

CONFIG = """\
server:
  default_policy: chat
  outcomes_path: {db}
upstreams:
  small:
    base_url: http://127.0.0.1:9/v1
    input_price: 0.15
    output_price: 0.6
  big:
    base_url: http://127.0.0.1:9/v1
    input_price: 2.5
    output_price: 10
policies:
  chat:
    candidates: [small, big]
    reference_model: big
"""


def _fill(store: SQLiteStore, now: float) -> None:
    """Five requests in the window, one too old; two shadowed and judged."""
    o = [
        # served by small: saved 0.010 - 0.001
        Outcome(request_id="a", ts=now - 60, policy="chat", served="small", cost_usd=0.001,
                reference_cost_usd=0.010, route_cpu_s=0.002),
        # a cascade: small then big; cost includes the stage, saved 0.020 - 0.021 (a loss)
        Outcome(request_id="b", ts=now - 50, policy="chat", served="big", cost_usd=0.021, extra_cost_usd=0.001,
                reference_cost_usd=0.020, escalations=1, route_cpu_s=0.003),
        # the reference served: saves nothing
        Outcome(request_id="c", ts=now - 40, policy="chat", served="big", cost_usd=0.005,
                reference_cost_usd=0.005, route_cpu_s=0.001),
        Outcome(request_id="d", ts=now - 30, policy="chat", served="small", cost_usd=0.002,
                reference_cost_usd=0.030, route_cpu_s=0.004),
        # unpriced (no usage): routing CPU counts, savings do not
        Outcome(request_id="e", ts=now - 20, policy="chat", served="small", route_cpu_s=3600.0),
        # outside the window
        Outcome(request_id="old", ts=now - 30 * 86400, policy="chat", served="small", cost_usd=0.0,
                reference_cost_usd=100.0, route_cpu_s=1.0),
    ]  # fmt: skip
    store.write_batch(o)
    for rid, kind, model, usd in [
        ("a", "shadow", "big", 0.004),
        ("a", "judge", "big", 0.0005),
        ("a", "judge", "big", 0.0005),
        ("d", "shadow", "big", 0.006),
        ("d", "judge", "big", 0.001),
        ("d", "judge", "big", 0.001),
        ("old", "shadow", "big", 50.0),
    ]:
        store.add_spend(Spend(request_id=rid, policy="chat", kind=kind, model=model, cost_usd=usd, ts=now))
    for rid, served_score in [("a", 0.75), ("d", 0.25)]:
        store.add_feedback(Feedback(request_id=rid, source="judge", score=served_score, ts=now))
        store.add_feedback(Feedback(request_id=rid, source="judge@big", score=1 - served_score, ts=now))


def test_net_savings_arithmetic(tmp_path: Path) -> None:
    now = time.time()
    store = SQLiteStore(tmp_path / "o.sqlite")
    _fill(store, now)
    since = R.parse_since("7d", now)
    reps = R.build(
        store.outcomes(None, since),
        store.spend(None, since),
        store.feedback_since(None, since),
        usd_per_cpu_hour=0.04,
        reference_models={"chat": "big"},
    )
    store.close()
    assert len(reps) == 1
    r = reps[0]
    assert (r.requests, r.priced) == (5, 4)
    assert r.reference_usd == pytest.approx(0.065)
    assert r.served_usd == pytest.approx(0.029)
    assert r.cascade_usd == pytest.approx(0.001)
    assert r.gross_saved_usd == pytest.approx(0.036)
    assert (r.shadow_usd, r.shadow_calls) == (pytest.approx(0.010), 2)
    assert (r.judge_usd, r.judge_calls) == (pytest.approx(0.003), 4)
    assert r.routing_cpu_s == pytest.approx(3600.010)
    assert r.routing_cpu_usd == pytest.approx(3600.010 * 0.04 / 3600)
    assert r.net_saved_usd == pytest.approx(0.036 - 0.010 - 0.003 - 3600.010 * 0.04 / 3600)
    assert r.net_saved_share == pytest.approx(r.net_saved_usd / 0.065)
    # judged: a (small won 0.75 against big), d (0.25)
    assert (r.judged, r.judged_reference_served, r.quality_n) == (2, 0, 2)
    assert r.quality_vs_reference == pytest.approx(0.5)
    lo, hi = r.quality_ci95
    assert 0.25 <= lo <= 0.5 <= hi <= 0.75
    assert r.not_worse_share == pytest.approx(0.5)
    assert r.not_worse_ci95 == pytest.approx(R.wilson(1, 2))


def test_wilson_and_since() -> None:
    lo, hi = R.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert R.wilson(0, 0) is None
    assert R.parse_since("12h", 100_000.0) == 100_000.0 - 12 * 3600
    assert R.parse_since("0") == 0.0
    with pytest.raises(ValueError):
        R.parse_since("seven days")


def test_report_json_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "o.sqlite"
    store = SQLiteStore(db)
    _fill(store, time.time())
    store.close()
    cfg = tmp_path / "policy.yaml"
    cfg.write_text(CONFIG.format(db=db))
    monkeypatch.setenv("SHUNTER_ROUTING_CPU_USD_PER_HOUR", "0.08")
    res = CliRunner().invoke(app, ["report", "--since", "7d", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["usd_per_cpu_hour"] == 0.08
    (chat,) = out["policies"]
    assert chat["policy"] == "chat" and chat["reference_model"] == "big"
    assert chat["net_saved_usd"] == pytest.approx(0.036 - 0.013 - 3600.010 * 0.08 / 3600)
    assert chat["quality_n"] == 2
    table = CliRunner().invoke(app, ["report", "--since", "0", "--config", str(cfg)])
    assert table.exit_code == 0 and "net saved USD" in table.stdout
    bad = CliRunner().invoke(app, ["report", "--since", "soon", "--config", str(cfg)])
    assert bad.exit_code == 2
    typo = CliRunner().invoke(app, ["report", "--policy", "chta", "--config", str(cfg)])
    assert typo.exit_code == 2 and "unknown policy 'chta': not in the policy file (chat)" in typo.output
    price = CliRunner().invoke(app, ["report", "--cpu-usd-per-hour", "-1", "--config", str(cfg)])
    assert price.exit_code == 2 and "--cpu-usd-per-hour must be 0 or more" in price.output
