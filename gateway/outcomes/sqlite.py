"""SQLite outcome store (the embedded default), WAL mode, batched inserts, feedback upserts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from gateway.outcomes.record import Feedback, Labelled, Outcome, Spend

_COLUMNS = list(Outcome.model_fields)
_JSON = {"candidates", "scores", "attempts"}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS outcomes (
  {", ".join(f"{c} {'BLOB' if c == 'embedding' else ''}" for c in _COLUMNS)},
  PRIMARY KEY (request_id)
);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes(ts);
CREATE INDEX IF NOT EXISTS outcomes_policy_ts ON outcomes(policy, ts);
CREATE TABLE IF NOT EXISTS feedback (
  request_id TEXT NOT NULL,
  source TEXT NOT NULL,
  score REAL NOT NULL,
  label TEXT,
  comment TEXT,
  ts REAL NOT NULL,
  PRIMARY KEY (request_id, source)
);
CREATE TABLE IF NOT EXISTS spend (
  request_id TEXT NOT NULL,
  policy TEXT NOT NULL,
  kind TEXT NOT NULL,
  model TEXT NOT NULL,
  cost_usd REAL NOT NULL,
  ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_ts ON spend(ts);
"""
_SPEND = list(Spend.model_fields)


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    have = {r[1] for r in conn.execute("PRAGMA table_info(outcomes)")}
    for c in _COLUMNS:  # a database written by an older version: add the new columns
        if c not in have:
            conn.execute(f"ALTER TABLE outcomes ADD COLUMN {c}")
    return conn


def to_row(o: Outcome) -> tuple:
    d = o.model_dump()
    return tuple(orjson.dumps(d[c]).decode() if c in _JSON else d[c] for c in _COLUMNS)


def from_row(row: sqlite3.Row | tuple, columns: list[str] | None = None) -> Outcome:
    cols = columns or _COLUMNS
    d = dict(zip(cols, row))
    for c in _JSON & d.keys():
        if isinstance(d[c], str):
            d[c] = orjson.loads(d[c])
    return Outcome.model_validate(d)


class SQLiteStore:
    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self._lock = threading.Lock()

    def write_batch(self, rows: list[Outcome]) -> None:
        sql = f"INSERT OR REPLACE INTO outcomes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._lock, self.conn:
            self.conn.executemany(sql, [to_row(o) for o in rows])

    def get(self, request_id: str) -> Outcome | None:
        with self._lock:
            row = self.conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM outcomes WHERE request_id=?", (request_id,)
            ).fetchone()
        return from_row(row) if row else None

    def exists(self, request_id: str) -> bool:
        with self._lock:
            return self.conn.execute("SELECT 1 FROM outcomes WHERE request_id=?", (request_id,)).fetchone() is not None

    def count(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]

    def add_feedback(self, fb: Feedback) -> bool:
        """Insert or replace the (request_id, source) item; True when it is new."""
        with self._lock, self.conn:
            new = (
                self.conn.execute(
                    "SELECT 1 FROM feedback WHERE request_id=? AND source=?", (fb.request_id, fb.source)
                ).fetchone()
                is None
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO feedback (request_id, source, score, label, comment, ts) VALUES (?,?,?,?,?,?)",
                (fb.request_id, fb.source, fb.score, fb.label, fb.comment, fb.ts),
            )
        return new

    def write_feedback_batch(self, items: list[Feedback]) -> None:
        with self._lock, self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO feedback (request_id, source, score, label, comment, ts) VALUES (?,?,?,?,?,?)",
                [(f.request_id, f.source, f.score, f.label, f.comment, f.ts) for f in items],
            )

    def add_spend(self, item: Spend) -> None:
        self.write_spend_batch([item])

    def write_spend_batch(self, items: list[Spend]) -> None:
        sql = f"INSERT INTO spend ({', '.join(_SPEND)}) VALUES ({', '.join('?' * len(_SPEND))})"
        with self._lock, self.conn:
            self.conn.executemany(sql, [tuple(getattr(i, c) for c in _SPEND) for i in items])

    def spend(self, policy: str | None = None, since: float = 0.0) -> list[Spend]:
        """Learning calls (shadow, judge) made since ``since``, oldest first."""
        sql = f"SELECT {', '.join(_SPEND)} FROM spend WHERE ts >= ?" + (" AND policy = ?" if policy else "")
        with self._lock:
            rows = self.conn.execute(sql + " ORDER BY ts", (since, policy) if policy else (since,)).fetchall()
        return [Spend(**dict(zip(_SPEND, r))) for r in rows]

    def feedback_since(self, policy: str | None = None, since: float = 0.0) -> list[Feedback]:
        """Every feedback item on outcomes since ``since`` (of one policy)."""
        cols = ("request_id", "source", "score", "label", "comment", "ts")
        where: list[str] = ["o.ts >= ?"]
        args: list[float | str] = [since]
        if policy:
            where.append("o.policy = ?")
            args.append(policy)
        sql = (
            f"SELECT {', '.join('f.' + c for c in cols)} FROM feedback f JOIN outcomes o ON o.request_id = f.request_id "
            f"WHERE {' AND '.join(where)}"
        )
        with self._lock:
            rows = self.conn.execute(sql, args).fetchall()
        return [Feedback(**dict(zip(cols, r))) for r in rows]

    def feedback(self, request_id: str) -> list[Feedback]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT request_id, source, score, label, comment, ts FROM feedback WHERE request_id=? ORDER BY source",
                (request_id,),
            ).fetchall()
        return [Feedback(**dict(zip(("request_id", "source", "score", "label", "comment", "ts"), r))) for r in rows]

    def labelled(
        self, policy: str | None = None, since: float = 0.0, sources: list[str] | None = None
    ) -> list[Labelled]:
        """Successful outcomes (status 200, a served model) with feedback, oldest first."""
        cols = ", ".join(f"o.{c}" for c in _COLUMNS)
        # judge@<model> items score a model that did not serve: not part of the served label
        where = ["o.ts >= ?", "o.status = 200", "o.served IS NOT NULL", "f.source NOT LIKE 'judge@%'"]
        args: list = [since]
        if policy is not None:
            where.append("o.policy = ?")
            args.append(policy)
        if sources:
            where.append(f"f.source IN ({', '.join('?' * len(sources))})")
            args.extend(sources)
        sql = (
            f"SELECT {cols}, AVG(f.score), COUNT(f.score) FROM outcomes o JOIN feedback f ON f.request_id = o.request_id "
            f"WHERE {' AND '.join(where)} GROUP BY o.request_id ORDER BY o.ts"
        )
        with self._lock:
            rows = self.conn.execute(sql, args).fetchall()
        n = len(_COLUMNS)
        return [Labelled(outcome=from_row(r[:n]), score=float(r[n]), n_feedback=int(r[n + 1])) for r in rows]

    def outcomes(self, policy: str | None = None, since: float = 0.0) -> list[Outcome]:
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM outcomes WHERE ts >= ?"
            + (" AND policy = ?" if policy else "")
            + " ORDER BY ts"
        )
        with self._lock:
            rows = self.conn.execute(sql, (since, policy) if policy else (since,)).fetchall()
        return [from_row(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self.conn.close()
