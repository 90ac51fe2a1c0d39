"""The loops drain, deliver and backfill share: lease, work, clear the flag, last look, re-queue
(the drain's over a group of shards, in turns)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from workers.engine import Engine
from workers.lease import Lease
from workers.loop import LeasedGroupLoop, LeasedLoop


def loop(engine: Engine, requeued: list[int]) -> LeasedLoop:
    k = engine.keys
    return LeasedLoop(
        engine.r, k.drain_lease(0), 5_000, k.drain_kick(0), lambda: requeued.append(1)
    )


def test_the_flag_is_cleared_after_the_lease_is_let_go_and_before_the_last_look(
    engine: Engine,
) -> None:
    r, lease, kick = engine.r, engine.keys.drain_lease(0), engine.keys.drain_kick(0)
    r.set(kick, 1)
    seen: list[tuple[bool, bool]] = []

    def more() -> bool:
        seen.append((bool(r.exists(lease)), bool(r.exists(kick))))
        return False

    steps = iter([True, True, False])
    assert not loop(engine, []).run(10, lambda: "x", lambda _, __: next(steps), more)
    assert seen == [(False, False)]


def test_work_left_past_the_budget_re_queues_once(engine: Engine) -> None:
    requeued: list[int] = []
    assert loop(engine, requeued).run(0.05, lambda: "x", lambda _, __: True, lambda: True)
    assert requeued == [1]


def test_work_left_within_the_budget_is_taken_again(engine: Engine) -> None:
    left = [3]

    def step(_: str, __: Lease) -> bool:
        left[0] -= 1
        return False  # one unit per lease: the last look finds the rest

    requeued: list[int] = []
    assert not loop(engine, requeued).run(10, lambda: "x", step, lambda: left[0] > 0)
    assert left == [0] and requeued == []


def test_a_taken_lease_or_nothing_to_do_clears_the_flag_and_leaves(engine: Engine) -> None:
    r, kick = engine.r, engine.keys.drain_kick(0)
    holder = Lease(r, engine.keys.drain_lease(0), 5_000)
    assert holder.acquire()
    r.set(kick, 1)
    assert not loop(engine, []).run(10, lambda: "x", lambda _, __: True, lambda: True)
    assert not r.exists(kick)
    holder.release()
    r.set(kick, 1)
    assert not loop(engine, []).run(10, lambda: None, lambda _, __: True, lambda: True)
    assert not r.exists(kick)


def test_a_step_that_raises_lets_the_lease_go_and_clears_the_flag(engine: Engine) -> None:
    r, lease, kick = engine.r, engine.keys.drain_lease(0), engine.keys.drain_kick(0)
    r.set(kick, 1)

    def step(_: str, __: Lease) -> bool:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        loop(engine, []).run(10, lambda: "x", step, lambda: True)
    assert not r.exists(lease) and not r.exists(kick)  # the next kick queues a task that can work


def test_a_lease_is_extended_only_once_a_fifth_of_its_ttl_has_passed(engine: Engine) -> None:
    """Within the first fifth of the TTL the lease is certainly still the holder's: extend()
    answers without a call (a drain batch takes ms, so that spares a round trip per batch)."""
    r, key = engine.r, engine.keys.drain_lease(0)
    lease = Lease(r, key, 500)
    assert lease.acquire()
    before = int(r.info("stats")["total_commands_processed"])
    assert lease.extend()
    after = int(r.info("stats")["total_commands_processed"])
    assert after - before == 1, "no command but the INFO itself within the first fifth"
    r.delete(key)  # taken away behind its back (never happens while unexpired)
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:  # past the first fifth (100 ms): the next extend asks
        time.sleep(0.02)
    assert not lease.extend(), "past the first fifth, a lost lease is noticed"


def group_loop(
    engine: Engine,
    requeued: list[int],
    reads: dict[int, list[object]] | None = None,
    shards: range = range(3),
) -> LeasedGroupLoop:
    """A loop over ``shards`` with shard 0's kick flag; each shard's read ahead is its stream's
    length and whether its lease is held, recorded in ``reads``."""
    k = engine.keys
    got = {} if reads is None else reads

    def read_ahead(i: int, pipe: object) -> Callable[[list[object]], None]:
        pipe.xlen(k.events(shards[i]))  # type: ignore[attr-defined]
        pipe.exists(k.drain_lease(shards[i]))  # type: ignore[attr-defined]
        return lambda results: got.__setitem__(i, results)

    return LeasedGroupLoop(
        engine.r,
        [k.drain_lease(s) for s in shards],
        [k.events(s) for s in shards],
        5_000,
        k.drain_kick(shards[0]),
        lambda: requeued.append(1),
        read_ahead,
    )


def test_a_group_works_its_shards_together_and_lets_go_in_one_round_trip(engine: Engine) -> None:
    """Each step gets every shard held (one that ran dry may have work again); the leases are let go, the
    flag cleared and every stream looked at in that order, also when the server has not loaded
    the release script (first use, a restart)."""
    r, k = engine.r, engine.keys
    for flushed in (False, True):
        r.set(k.drain_kick(0), 1)
        if flushed:
            r.script_flush()
        left = {0: 3, 1: 1, 2: 2}
        for shard, n in left.items():
            for _ in range(n):
                r.xadd(k.events(shard), {"d": b"x"})
        steps: list[list[int]] = []

        def step(
            held: list[int], left: dict[int, int] = left, steps: list[list[int]] = steps
        ) -> list[int]:
            assert all(r.exists(k.drain_lease(i)) for i in held)
            assert r.exists(k.drain_kick(0)), "the flag stays set while the group works"
            steps.append(held)
            worked = [i for i in held if left[i]]
            for i in worked:
                left[i] -= 1
                r.xtrim(k.events(i), maxlen=left[i])
            return worked

        reads: dict[int, list[object]] = {}
        requeued: list[int] = []
        assert not group_loop(engine, requeued, reads).run(10, step)
        assert reads == {0: [3, 1], 1: [1, 1], 2: [2, 1]}, "each read ran under its lease"
        assert steps == [[0, 1, 2]] * 4, "every step sees every shard held"
        assert requeued == []
        assert not any(r.exists(k.drain_lease(s)) for s in range(3))
        assert not r.exists(k.drain_kick(0))


def test_a_group_with_work_left_past_its_budget_re_queues_once(engine: Engine) -> None:
    engine.r.xadd(engine.keys.events(1), {"d": b"x"})
    requeued: list[int] = []
    assert group_loop(engine, requeued).run(0.05, lambda held: held)
    assert requeued == [1]


def test_a_shard_whose_lease_another_holds_is_left_to_that_holder(engine: Engine) -> None:
    """The holder looks at its shard again after it lets go: this loop neither works it nor
    counts its entries as work left (else it would spin or re-queue for another's work)."""
    r, k = engine.r, engine.keys
    holder = Lease(r, k.drain_lease(1), 5_000)
    assert holder.acquire()
    r.xadd(k.events(1), {"d": b"x"})
    r.set(k.drain_kick(0), 1)
    worked: list[list[int]] = []
    reads: dict[int, list[object]] = {}
    requeued: list[int] = []

    def step(held: list[int]) -> list[int]:
        worked.append(held)
        return []

    assert not group_loop(engine, requeued, reads).run(10, step)
    assert worked == [[0, 2]] and sorted(reads) == [0, 2] and requeued == []
    assert r.exists(k.drain_lease(1)) and not r.exists(k.drain_kick(0))
    for s in (0, 2):
        r.set(k.drain_lease(s), "someone")
    r.set(k.drain_kick(0), 1)

    def never(held: list[int]) -> list[int]:
        raise AssertionError("no lease held")

    assert not group_loop(engine, requeued).run(10, never)
    assert not r.exists(k.drain_kick(0)), "every lease taken: the flag cleared, nothing done"


def test_a_group_step_that_raises_lets_every_lease_go_and_clears_the_flag(engine: Engine) -> None:
    r, k = engine.r, engine.keys
    r.set(k.drain_kick(0), 1)

    def step(held: list[int]) -> list[int]:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        group_loop(engine, []).run(10, step)
    assert not any(r.exists(k.drain_lease(s)) for s in range(3))
    assert not r.exists(k.drain_kick(0))  # the next kick queues a task that can work


def test_a_failed_round_trip_taking_the_leases_lets_them_go(engine: Engine) -> None:
    """The leases were taken in the round trip that raised: they go again with the flag, so the
    next kick's task can work at once, not a lease's TTL later; another holder's lease stays."""
    r, k = engine.r, engine.keys
    r.set(k.drain_kick(0), 1)
    r.set(k.drain_lease(2), "another holder")
    r.set("not-a-number", "x")

    def read_ahead(i: int, pipe: object) -> Callable[[list[object]], None]:
        pipe.incr("not-a-number")  # type: ignore[attr-defined]
        return lambda results: None

    looped = LeasedGroupLoop(
        r,
        [k.drain_lease(s) for s in range(3)],
        [k.events(s) for s in range(3)],
        5_000,
        k.drain_kick(0),
        list,
        read_ahead,
    )
    with pytest.raises(redis.ResponseError):
        looped.run(10, lambda held: pytest.fail("no step after a failed acquire"))
    assert [r.get(k.drain_lease(s)) for s in range(3)] == [None, None, b"another holder"]
    assert not r.exists(k.drain_kick(0))
