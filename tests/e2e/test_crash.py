"""Crash safety: ``kill -9`` the gateway under load, restart it on the same SQLite outcome store.

"Acknowledged" means: the recorder's SQLite transaction for the record's batch committed. The
recorder counts exactly those records in ``shunter_outcomes_written_total`` (incremented after
``write_batch`` returns, i.e. after COMMIT). So:

- after a quiet point where ``written_total`` equals the number of requests answered, every one
  of those request ids is acknowledged, and each must be in the store after the crash;
- under load, ``written_total`` sampled just before the kill is a lower bound on acknowledged
  records; commits are sequential, so the store must hold at least that many rows afterwards.

The store must also pass ``PRAGMA integrity_check`` and the restarted gateway must keep recording.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading

import httpx

from tests.support.procs import upstream_entry
from tests.support.wait import wait_until


def _written(gw) -> int:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    m = re.search(r'shunter_outcomes_written_total\{store="sqlite"\} (\S+)', text)
    return int(float(m.group(1))) if m else 0


def _ask(gw, i: int, client: httpx.Client) -> str:
    body = {"model": "router-chat", "messages": [{"role": "user", "content": f"crash test {i}"}], "stream": i % 2 == 0}
    r = client.post(f"{gw.base_url}/chat/completions", json=body, timeout=30)
    assert r.status_code == 200
    return r.headers["x-shunter-request-id"]


def test_kill_9_under_load_loses_no_acknowledged_record(gateway, fake_upstream, tmp_path):
    a, b = fake_upstream("a"), fake_upstream("b")
    db = tmp_path / "crash.sqlite"
    cfg = {
        "server": {"outcomes_path": str(db)},
        "upstreams": {"a": upstream_entry(a), "b": upstream_entry(b)},
        "policies": {"chat": {"candidates": ["a", "b"]}},
    }
    gw = gateway(cfg)

    # phase 1: traffic, then a quiet point where every answered request is acknowledged
    with httpx.Client() as c:
        acked = [_ask(gw, i, c) for i in range(60)]
    wait_until(lambda: _written(gw) >= len(acked), 10, 0.05, "every answered request acknowledged")
    assert _written(gw) == len(acked)

    # phase 2: concurrent load, then kill -9 in the middle of it
    stop = threading.Event()
    sent = [0]

    def load(k: int) -> None:
        with httpx.Client() as c:
            i = 0
            while not stop.is_set():
                try:
                    _ask(gw, 1000 * (k + 1) + i, c)
                    sent[0] += 1
                except Exception:  # the gateway dies under us: expected
                    return
                i += 1

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    # well under load: many answers, and records acknowledged beyond the quiet point
    wait_until(lambda: sent[0] > 40 and _written(gw) > len(acked) + 20, 60, 0.05, "load under way")
    floor = _written(gw)  # acknowledged before the kill (a lower bound)
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert sent[0] > 20 and floor > len(acked)  # it really was under load

    # the store opens cleanly and holds every acknowledged record
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in con.execute("SELECT request_id FROM outcomes")}
    con.close()
    missing = [i for i in acked if i not in ids]
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert len(ids) >= floor, f"{floor} records acknowledged before the kill, {len(ids)} in the store"

    # restart on the same file: it serves and keeps recording
    gw2 = gateway(cfg)
    with httpx.Client() as c:
        rid = _ask(gw2, 99_999, c)
    wait_until(lambda: _written(gw2) >= 1, 10, 0.05, "the restarted gateway records")
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM outcomes WHERE request_id=?", (rid,)).fetchone()[0] == 1
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    print(
        f"crash: {len(acked)} acknowledged at the quiet point, {floor} acknowledged before kill -9, "
        f"{len(ids)} rows after, {sent[0]} requests answered under load, 0 lost"
    )
