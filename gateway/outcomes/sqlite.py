"""SQLite outcome store (the embedded default), WAL mode, batched inserts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from gateway.outcomes.record import Outcome

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
"""


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
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
            row = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM outcomes WHERE request_id=?", (request_id,)).fetchone()
        return from_row(row) if row else None

    def count(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()
