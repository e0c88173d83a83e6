"""``translate.store.ResponseStore``: bounded by count and time, scoped by key, same on both backends."""

from __future__ import annotations

import asyncio

import pytest

from gateway.state import InProcessState, RedisState
from gateway.translate.store import ResponseStore


async def check_store(state) -> None:
    store = ResponseStore(state, size=3, ttl=60)
    for i in range(5):
        await store.put(f"resp_{i}", "key_a", [{"type": "message", "role": "user", "content": str(i)}])
    assert await store.get("resp_0", "key_a") is None and await store.get("resp_1", "key_a") is None
    assert [(await store.get(f"resp_{i}", "key_a"))[0]["content"] for i in (2, 3, 4)] == ["2", "3", "4"]
    assert await store.get("resp_4", "key_b") is None  # another key's conversation is invisible
    assert await store.get("resp_4", None) is None
    await store.put("resp_open", None, [])
    assert await store.get("resp_open", None) == []


async def test_in_process_store_is_bounded_and_scoped():
    await check_store(InProcessState())


async def test_entries_expire():
    store = ResponseStore(InProcessState(), size=10, ttl=0.05)
    await store.put("resp_x", None, [{"a": 1}])
    assert await store.get("resp_x", None) == [{"a": 1}]
    deadline = asyncio.get_running_loop().time() + 5
    while await store.get("resp_x", None) is not None:
        assert asyncio.get_running_loop().time() < deadline, "the entry never expired"
        await asyncio.sleep(0.01)


async def test_redis_store_is_bounded_and_scoped(redis_server):
    state = RedisState(redis_server, prefix=f"test-store-{id(object())}:")
    try:
        await check_store(state)
    finally:
        await state.close()


@pytest.mark.parametrize("size", [1, 2])
async def test_a_slot_reused_by_the_same_id_keeps_it(size):
    store = ResponseStore(InProcessState(), size=size, ttl=60)
    await store.put("resp_same", None, [1])
    for _ in range(size):
        await store.put("resp_same", None, [2])
    assert await store.get("resp_same", None) == [2]
