"""Key records mirrored into shared state (Redis), so every replica accepts a key created on any.

SQLite (``api_keys``) stays the durable store on each node; with ``server.redis_url`` set, keys
created by ``POST /admin/keys`` or ``shunter keys create`` are also written as
``apikey:<sha256>`` (the record, never the key) and revocations update it there.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.limits.keys import KeyRecord
from gateway.state import InProcessState


def enabled(shared: Any) -> bool:
    return shared is not None and not isinstance(shared, InProcessState)


async def put(shared: Any, key_hash: str, rec: KeyRecord) -> None:
    await shared.set("apikey:" + key_hash, rec.model_dump_json())
    await shared.set("apikeyid:" + rec.id, key_hash)


async def get(shared: Any, key_hash: str) -> KeyRecord | None:
    raw = await shared.get("apikey:" + key_hash)
    rec = KeyRecord.model_validate_json(raw) if raw else None
    return None if rec is None or rec.revoked else rec


async def revoke(shared: Any, key_id: str) -> bool:
    h = await shared.get("apikeyid:" + key_id)
    raw = await shared.get("apikey:" + h) if h else None
    if not raw:
        return False
    rec = KeyRecord.model_validate_json(raw)
    rec.revoked = rec.revoked or time.time()
    await shared.set("apikey:" + h, rec.model_dump_json())
    return True


def put_sync(redis_url: str, key_hash: str, rec: KeyRecord, prefix: str = "shunter:") -> None:
    """For the CLI, which has no event loop: same keys as ``RedisState`` uses."""
    import redis

    r = redis.Redis.from_url(
        redis_url, socket_timeout=5, socket_connect_timeout=5
    )  # a frozen Redis: an error, not a hang
    try:
        r.set(prefix + "apikey:" + key_hash, rec.model_dump_json())
        r.set(prefix + "apikeyid:" + rec.id, key_hash)
    finally:
        r.close()


def revoke_sync(redis_url: str, key_id: str, prefix: str = "shunter:") -> bool:
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
    try:
        h = r.get(prefix + "apikeyid:" + key_id)
        if not h:
            return False
        raw = r.get(prefix + "apikey:" + str(h))  # str already: decode_responses
        if not raw:
            return False
        rec = KeyRecord.model_validate_json(raw)
        rec.revoked = rec.revoked or time.time()
        r.set(prefix + "apikey:" + str(h), rec.model_dump_json())
        return True
    finally:
        r.close()
