"""The loop drain, deliver and backfill share: lease, work, clear the flag, last look, re-queue."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from workers.engine import Engine
from workers.lease import Lease
from workers.loop import LeasedLoop, StreamLength


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


def test_a_stream_length_look_lets_go_clears_and_looks_in_one_round_trip(engine: Engine) -> None:
    """The drain's last look: the lease let go, the flag cleared, then the stream's length, in
    that order, also when the server has not loaded the release script (first use, a restart)."""
    r, lease, kick = engine.r, engine.keys.drain_lease(0), engine.keys.drain_kick(0)
    stream = engine.keys.events(0)
    for flushed in (False, True):
        r.set(kick, 1)
        if flushed:
            r.script_flush()
        r.xadd(stream, {"d": b"x"})
        left = [2]  # the stream has entries on the first look, none on the second

        def step(_: str, __: Lease, left: list[int] = left) -> bool:
            assert r.exists(lease)
            left[0] -= 1
            if left[0] == 0:
                r.delete(stream)
            return False

        requeued: list[int] = []
        assert not loop(engine, requeued).run(10, lambda: "x", step, StreamLength(stream))
        assert left == [0] and requeued == []
        assert not r.exists(lease) and not r.exists(kick)


def test_a_read_ahead_runs_with_the_lease_and_is_used_only_when_the_lease_was_taken(
    engine: Engine,
) -> None:
    r, k = engine.r, engine.keys
    stream = k.events(0)
    r.xadd(stream, {"d": b"x"})
    used: list[list[object]] = []

    def read_ahead(pipe: object) -> Callable[[list[object]], None]:
        pipe.xlen(stream)  # type: ignore[attr-defined]
        pipe.exists(k.drain_lease(0))  # type: ignore[attr-defined]
        return used.append

    looped = LeasedLoop(r, k.drain_lease(0), 5_000, k.drain_kick(0), list, read_ahead)
    holder = Lease(r, k.drain_lease(0), 5_000)
    assert holder.acquire()
    r.set(k.drain_kick(0), 1)
    steps: list[int] = []

    def step(_: str, __: Lease) -> bool:
        steps.append(1)
        return False

    assert not looped.run(10, lambda: "x", step, lambda: False)
    assert used == [] and steps == [] and not r.exists(k.drain_kick(0))
    holder.release()
    assert not looped.run(10, lambda: "x", step, lambda: False)
    assert used == [[1, 1]] and steps == [1]  # read after the lease was set, before the step
    assert not r.exists(k.drain_lease(0))
