"""Virtual API keys: created once, stored hashed (SHA-256), looked up by hash.

A key looks like ``sk-sy-<id>-<secret>``: the id (``key_…``) is public and goes into outcome
records and logs; the secret is 32 random bytes. Only ``sha256(key)`` is stored, in the
``api_keys`` table of a SQLite file (by default the outcome store's file), so the plain key is
shown exactly once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, Field

Period = Literal["day", "month", "total"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  name TEXT,
  spec TEXT NOT NULL,
  created REAL NOT NULL,
  revoked REAL
);
"""


class KeySpec(BaseModel):
    """What a key may do. ``None`` means unlimited / everything."""

    name: str | None = Field(None, max_length=200)
    policies: list[str] | None = Field(None, description="Policies this key may use; None: all.")
    models: list[str] | None = Field(
        None, description="Upstream models this key may call directly (passthrough); None: all unless policies is set."
    )
    budget_usd: float | None = Field(None, ge=0, description="USD per period; None: no budget.")
    budget_period: Period = "month"
    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Prompt + completion tokens per minute.")

    def allows_policy(self, policy: str) -> bool:
        return self.policies is None or policy in self.policies

    def allows_model(self, model: str) -> bool:
        if self.models is not None:
            return model in self.models
        return self.policies is None  # a key limited to policies may not bypass them


class KeyRecord(BaseModel):
    id: str
    spec: KeySpec
    created: float
    revoked: float | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key id, plain key)."""
    kid = "key_" + secrets.token_hex(6)
    return kid, f"sk-sy-{kid[4:]}-{secrets.token_urlsafe(32)}"


class KeyStore:
    """SQLite-backed key table; reads are cached briefly so revocations apply within ``ttl``."""

    def __init__(self, path: str | Path, ttl: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self.ttl = ttl

    def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        kid, key = new_key()
        rec = KeyRecord(id=kid, spec=spec, created=time.time())
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT INTO api_keys (id, hash, name, spec, created) VALUES (?, ?, ?, ?, ?)",
                (kid, hash_key(key), spec.name, spec.model_dump_json(), rec.created),
            )
        return rec, key

    def cached(self, key: str) -> tuple[bool, KeyRecord | None]:
        """(found in the short-lived cache, record): no database access."""
        hit = self._cache.get(hash_key(key))
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def lookup(self, key: str) -> KeyRecord | None:
        """The live (not revoked) key record for a plain key, or None."""
        h = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit and hit[0] > now:
            return hit[1]
        with self._lock:
            row = self.conn.execute("SELECT id, spec, created, revoked FROM api_keys WHERE hash=?", (h,)).fetchone()
        rec = _rec(row) if row else None
        if rec is not None and rec.revoked:
            rec = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[h] = (now + self.ttl, rec)
        return rec

    def list(self) -> list[KeyRecord]:
        with self._lock:
            rows = self.conn.execute("SELECT id, spec, created, revoked FROM api_keys ORDER BY created").fetchall()
        return [_rec(r) for r in rows]

    def revoke(self, kid: str) -> bool:
        with self._lock, self.conn:
            cur = self.conn.execute("UPDATE api_keys SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), kid))
        self._cache.clear()
        return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _rec(row: tuple) -> KeyRecord:
    kid, spec, created, revoked = row
    return KeyRecord(id=kid, spec=KeySpec.model_validate(orjson.loads(spec)), created=created, revoked=revoked)


def recorded_spend(store: KeyStore, key_id: str, since: float) -> float:
    """USD the outcome table (same SQLite file) records for a key since ``since``; 0 if none."""
    try:
        with store._lock:
            row = store.conn.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM outcomes WHERE key_id=? AND ts>=?", (key_id, since)
            ).fetchone()
    except sqlite3.Error:  # no outcome table in this file (another store is in use)
        return 0.0
    return float(row[0] or 0.0)
