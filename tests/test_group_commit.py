"""Group commit (workers/pipeline/group_commit.py): the API's way of storing a request's events.

Concurrent requests share a round trip, yet each is still its own all-or-nothing write with its
own answer: what one request's refusal, a lost reply or a restarted Redis does to it is what
the sync intake does (tests/test_intake.py), and never spills over to the others in its group.
Every test runs against a real redis-server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
import redis

from tests.helpers import SHARDS, RecordingSender
from tests.test_intake import DropFirstReply, engine_on, events, queued
from workers.config import Settings
from workers.engine import Engine
from workers.keys import shard_of
from workers.lua import source
from workers.pipeline import group_commit
from workers.pipeline.entries import Entry
from workers.pipeline.events import ID_FIELDS
from workers.pipeline.group_commit import GroupCommit
from workers.pipeline.ingest import IngestRefused, IngestResult, Item, TooManyEvents, list_items
from workers.redisconn import async_state_redis, state_redis, stream_rows
from workers.schedule.clock import movable_clock
from workers.timefmt import NS_PER_S


def run(engine: Engine, work: Any) -> Any:
    """``work(group)`` on a fresh event loop with a GroupCommit of its own."""

    async def main() -> Any:
        with ThreadPoolExecutor(4) as pool:
            group = GroupCommit(engine, async_state_redis(engine.cfg), pool)
            try:
                return await work(group)
            finally:
                await group.r.aclose()

    return asyncio.run(main())


def ingest(group: GroupCommit, values: list[Any]) -> Awaitable[IngestResult]:
    items: list[Item] = list(list_items(values))
    return group.ingest(lambda: items)


def user_in(shard: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(10_000) if shard_of(f"{prefix}{i}", SHARDS) == shard)


def test_concurrent_requests_share_round_trips_and_each_is_stored(engine: Engine) -> None:
    async def work(group: GroupCommit) -> tuple[list[IngestResult], int]:
        results = await asyncio.gather(*(ingest(group, events(3, f"r{n}-")) for n in range(40)))
        return list(results), group.groups_sent

    results, sent = run(engine, work)
    assert [r.accepted for r in results] == [3] * 40
    assert queued(engine) == 120
    assert sent < 40, "requests waiting together went out together"
    assert int(engine.r.hget(engine.keys.metrics, "events_accepted") or 0) == 120


def test_a_refused_request_leaves_the_others_of_its_group_stored(cfg: Settings) -> None:
    e = engine_on(cfg.redis_url, cfg, max_backlog=2 * SHARDS)  # 2 entries per shard
    full = user_in(0, "full")

    async def work(group: GroupCommit) -> list[Any]:
        await ingest(group, [{"user_id": full}, {"user_id": full}])  # shard 0 at its bound
        return list(
            await asyncio.gather(
                ingest(group, [{"user_id": user_in(1, "a")}]),
                ingest(group, [{"user_id": user_in(2, "b")}, {"user_id": full}]),
                ingest(group, [{"user_id": user_in(3, "c")}]),
                return_exceptions=True,
            )
        )

    first, refused, third = run(e, work)
    assert isinstance(refused, IngestRefused) and refused.kind == "backlog"
    assert "AUDIENCEHUB_MAX_BACKLOG" in refused.reason
    assert first.accepted == third.accepted == 1
    assert queued(e) == 4, "the refused request stored nothing, not even its shard-2 event"


def test_more_events_than_one_write_takes_are_refused_whole(cfg: Settings) -> None:
    e = engine_on(cfg.redis_url, cfg, max_request_events=10)

    async def work(group: GroupCommit) -> IngestResult:
        with pytest.raises(TooManyEvents):
            await ingest(group, events(11))
        return await ingest(group, events(10))

    assert run(e, work).accepted == 10
    assert queued(e) == 10


def test_bad_events_are_reported_and_counted_beside_the_stored_ones(engine: Engine) -> None:
    async def work(group: GroupCommit) -> IngestResult:
        return await ingest(group, [{"user_id": "ok"}, {"nope": 1}, {"user_id": "x", "_ts": True}])

    result = run(engine, work)
    assert result.accepted == 1
    assert [(e.where, e.field) for e in result.errors] == [
        ("index 1", "user_id"),
        ("index 2", "_ts"),
    ]
    counted = cast(dict[bytes, bytes], engine.r.hgetall(engine.keys.metrics))
    assert sum(int(v) for k, v in counted.items() if k.startswith(b"events_rejected")) == 2


def test_a_repeated_event_id_in_one_group_is_stored_once(engine: Engine) -> None:
    async def work(group: GroupCommit) -> list[IngestResult]:
        same = [{"user_id": "d", ID_FIELDS[1]: "m-1"}]
        return list(await asyncio.gather(*(ingest(group, same) for _ in range(5))))

    results = run(engine, work)
    assert sum(r.duplicates for r in results) == 4
    assert queued(engine) == 1


def test_scripts_flushed_by_redis_are_loaded_again(engine: Engine) -> None:
    async def work(group: GroupCommit) -> list[IngestResult]:
        first = await ingest(group, events(2, "before"))
        engine.r.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        later = await asyncio.gather(*(ingest(group, events(2, f"after{n}-")) for n in range(3)))
        return [first, *later]

    assert [r.accepted for r in run(engine, work)] == [2, 2, 2, 2]
    assert queued(engine) == 8


def test_a_reply_lost_on_a_dropped_connection_does_not_store_twice(cfg: Settings) -> None:
    """The client sends the whole group again after a dropped connection; each call's token
    makes the repeat a replay of what was stored."""
    proxy = DropFirstReply(int(cfg.redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        via = dataclasses.replace(cfg, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        e = Engine.create(RecordingSender(), cfg=via, r=state_redis(via))
        direct = redis.Redis.from_url(cfg.redis_url)

        async def work(group: GroupCommit) -> list[IngestResult]:
            await group.r.script_load(source("intake"))  # the first EVALSHA runs the write
            return list(
                await asyncio.gather(*(ingest(group, events(10, f"p{n}-")) for n in range(4)))
            )

        results = run(e, work)
        assert proxy.dropped == 1, "the proxy dropped the first answer"
        assert [r.accepted for r in results] == [10] * 4
        total = sum(int(direct.xlen(e.keys.events(s))) for s in range(SHARDS))
        assert total == 40
    finally:
        proxy.close()


def test_the_movable_clock_stamps_events_in_test_mode(engine: Engine) -> None:
    movable_clock(engine.cfg, engine.r).advance(3 * 86_400 * NS_PER_S)

    async def work(group: GroupCommit) -> IngestResult:
        return await ingest(group, [{"user_id": "t"}])

    run(engine, work)
    (row,) = [
        row for s in range(SHARDS) for row in stream_rows(engine.r.xrange(engine.keys.events(s)))
    ]
    entry = Entry.decode(row[1][b"d"])[0]
    assert entry.ts > engine.clock.now_ns() - 86_400 * NS_PER_S, "three days ahead, as the clock"


def test_a_group_is_bounded_in_calls_and_bytes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What waits goes out in groups of at most MAX_GROUP calls and about MAX_GROUP_BYTES of
    entries (a call bigger than that alone), every call still answered."""
    monkeypatch.setattr(group_commit, "MAX_GROUP_BYTES", 2_000)

    async def work(group: GroupCommit) -> tuple[list[IngestResult], int]:
        big = [ingest(group, events(1, f"big{n}-", pad=3_000)) for n in range(3)]
        small = [ingest(group, events(1, f"small{n}-")) for n in range(2 * group_commit.MAX_GROUP)]
        results = await asyncio.gather(*big, *small)
        return list(results), group.groups_sent

    results, sent = run(engine, work)
    assert all(r.accepted == 1 for r in results)
    assert queued(engine) == 3 + 2 * group_commit.MAX_GROUP
    assert sent >= 3 + 2, "each big call alone, the small ones in groups of at most MAX_GROUP"
