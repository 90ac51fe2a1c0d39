"""Drain groups: one task drains a group of shards together, kicked once, and one shard's bad
entry neither holds its group back nor gets another shard's entry set aside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
import redis

from tests.helpers import SHARDS, RecordingSender, with_settings
from workers.config import Settings
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.drain_groups import DrainGroups
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profile import Profile
from workers.pipeline.set_aside import Attempt, DrainAttempts, ShardDeadLetters


@pytest.fixture
def pairs(engine: Engine) -> Engine:
    """The test engine: its 4 shards drain in groups of 2, {0, 1} and {2, 3}."""
    assert (SHARDS, engine.cfg.shards_per_drain) == (4, 2)
    return engine


@pytest.fixture
def one_group(cfg: Settings, sender: RecordingSender) -> Iterator[Engine]:
    """An engine whose 4 shards drain as one group."""
    r = redis.Redis.from_url(cfg.redis_url)
    yield Engine.create(sender, cfg=with_settings(cfg, shards_per_drain=4), r=r)
    r.close()


def users_by_shard(engine: Engine, per_shard: int = 2) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {s: [] for s in range(engine.cfg.shards)}
    n = 0
    while any(len(u) < per_shard for u in found.values()):
        uid = f"u{n}"
        shard = shard_of(uid, engine.cfg.shards)
        if len(found[shard]) < per_shard:
            found[shard].append(uid)
        n += 1
    return found


def field(engine: Engine, uid: str, name: str) -> object:
    raw = engine.r.hget(engine.keys.users(shard_of(uid, engine.cfg.shards)), uid)
    profile = Profile.loads(uid, cast(bytes | None, raw), engine.registry.get().codes)
    return profile.fields.get(name)


def pending(engine: Engine) -> list[int]:
    return [int(engine.r.xlen(engine.keys.events(s))) for s in range(engine.cfg.shards)]


def test_groups_are_consecutive_shards_named_by_their_lead() -> None:
    groups = DrainGroups(shards=10, size=4)
    assert [groups.lead(s) for s in range(10)] == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert list(groups.members(5)) == [4, 5, 6, 7]
    assert list(groups.members(9)) == [8, 9]  # the last group holds what is left
    assert groups.leads([9, 1, 2, 8]) == [0, 8]
    wide = DrainGroups(shards=4, size=16)  # larger than the shard count: one group of all
    assert [wide.lead(s) for s in range(4)] == [0] * 4 and list(wide.members(3)) == [0, 1, 2, 3]


def test_a_request_kicks_each_group_it_wrote_once(pairs: Engine, sender: RecordingSender) -> None:
    by_shard = users_by_shard(pairs)
    Ingestor(pairs).ingest(
        list_items([{"user_id": u} for users in by_shard.values() for u in users])
    )
    assert sender.drains == [0, 2]
    assert pairs.r.exists(pairs.keys.drain_kick(0)) and pairs.r.exists(pairs.keys.drain_kick(2))
    assert not pairs.r.exists(pairs.keys.drain_kick(1))
    sender.drains.clear()
    pairs.kicker.drains([3, 1, 2])  # flags still set: nothing queued
    assert sender.drains == []


def test_a_drain_takes_its_whole_group_and_nothing_else(pairs: Engine) -> None:
    by_shard = users_by_shard(pairs)
    Ingestor(pairs).ingest(
        list_items([{"user_id": u, "n": 1} for users in by_shard.values() for u in users])
    )
    report = ShardDrainer(pairs).drain(1)
    assert report.shard == 0 and report.entries == 4 and report.batches == 2
    assert pending(pairs) == [0, 0, 2, 2]
    assert all(field(pairs, u, "n") == 1 for u in by_shard[0] + by_shard[1])
    assert not pairs.r.exists(pairs.keys.drain_kick(0))
    assert not any(pairs.r.exists(pairs.keys.drain_lease(s)) for s in range(4))


def test_a_failing_entry_does_not_hold_its_group_and_is_set_aside_alone(
    one_group: Engine, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other shards' batches commit beside it; its attempt in the shared batch is not
    counted; then it is retried alone, counted, and set aside; nothing else is."""
    engine = one_group
    by_shard = users_by_shard(engine, per_shard=1)
    bad = by_shard[2][0]
    events = [{"user_id": u, "ok": 1} for users in by_shard.values() for u in users]
    Ingestor(engine).ingest(list_items([{"user_id": bad, "poison": 1}, *events]))
    drainer = ShardDrainer(engine)
    real = drainer._over_limits

    def explode(p: Profile, entry: object, *rest: object) -> str | None:
        if "poison" in (getattr(entry, "fields", None) or {}):
            raise ZeroDivisionError("a bug that only this entry meets")
        return real(p, entry, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(drainer, "_over_limits", explode)
    sender.drains.clear()
    with pytest.raises(ZeroDivisionError):
        drainer.drain(0)
    assert sender.drains == [0], "a retry, kicked once the leases were let go"
    assert pending(engine) == [0, 0, 2, 0], "every other shard committed"
    assert all(field(engine, users[0], "ok") == 1 for s, users in by_shard.items() if s != 2)
    attempt = Attempt.decode(engine.r.get(DrainAttempts(engine).key(2)))
    assert attempt is not None and attempt.shared and attempt.count == 0
    assert attempt.why == "failed (ZeroDivisionError)"
    for _ in range(engine.cfg.max_attempts):
        with pytest.raises(ZeroDivisionError):
            drainer.drain(0)
    report = drainer.drain(0)
    assert report.set_aside == 1
    (aside,) = ShardDeadLetters(engine).entries(2)
    assert f"drained {engine.cfg.max_attempts} times" in aside.reason
    assert field(engine, bad, "ok") == 1 and pending(engine) == [0, 0, 0, 0]
    assert sum(ShardDeadLetters(engine).counts().values()) == 1


def test_a_worker_killed_in_a_shared_batch_gets_no_entry_set_aside(one_group: Engine) -> None:
    """A kill says nothing of whose entry it was: every shard of the batch drains its head
    alone next, counted from there, so an innocent entry commits instead of being set aside."""
    engine = one_group
    by_shard = users_by_shard(engine, per_shard=1)
    Ingestor(engine).ingest(
        list_items([{"user_id": u, "n": 1} for users in by_shard.values() for u in users])
    )
    attempts = DrainAttempts(engine)
    for shard in range(engine.cfg.shards):  # what a kill in the shared batch leaves behind
        rows = cast(list[tuple[bytes, object]], engine.r.xrange(engine.keys.events(shard), count=1))
        head = rows[0][0].decode()
        attempts.begin(shard, Attempt(head, engine.cfg.max_attempts - 1, shared=True))
    report = ShardDrainer(engine).drain(0)
    assert report.set_aside == 0 and report.entries == 4
    assert pending(engine) == [0, 0, 0, 0]
    assert not any(engine.r.exists(attempts.key(s)) for s in range(engine.cfg.shards))
