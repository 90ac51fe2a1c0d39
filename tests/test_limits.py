"""Limits on what one event or one entry may cost (issue 13): future ``_ts``, fields and bytes per
profile, occurrences kept, and entries set aside after failing or timing out (with real workers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
from redis.exceptions import ResponseError

from audiencehub.processes import CeleryBeat, CeleryWorker, celery_env, wait_for
from tests.helpers import SHARDS, RecordingSender, cli, with_settings
from workers import faults
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profile import Profile
from workers.pipeline.set_aside import Attempt, DrainAttempts, ShardDeadLetters
from workers.schedule.clock import movable_clock
from workers.timefmt import NS_PER_S, format_rfc3339

HOUR = 3600 * NS_PER_S


def profile(engine: Engine, uid: str) -> Profile:
    shard = shard_of(uid, engine.cfg.shards)
    raw = cast(bytes | None, engine.r.hget(engine.keys.users(shard), uid))
    return Profile.loads(uid, raw, engine.registry.get().codes)


def drain_all(engine: Engine) -> None:
    drainer = ShardDrainer(engine)
    for shard in range(engine.cfg.shards):
        drainer.drain(shard)


def counter(engine: Engine, field: str) -> int:
    return int(cast(bytes | None, engine.r.hget(engine.keys.metrics, field)) or 0)


# -- at ingest: one event at a time ------------------------------------------------------------------


def test_a_future_ts_is_refused_against_the_engine_clock(engine: Engine) -> None:
    now = engine.clock.now_ns()
    later = format_rfc3339(now + 2 * HOUR)
    result = Ingestor(engine).ingest(
        list_items(
            [
                {"user_id": "a", "_ts": "2099-01-01T00:00:00Z", "plan": "pro"},
                {"user_id": "b", "_ts": later},
                {"user_id": "c", "_ts": format_rfc3339(now + 60 * NS_PER_S)},  # within the skew
                {"user_id": "d"},
            ]
        )
    )
    assert result.accepted == 2
    assert [(e.where, e.field) for e in result.errors] == [("index 0", "_ts"), ("index 1", "_ts")]
    assert "ahead of the server clock" in result.errors[0].reason
    assert "AUDIENCEHUB_MAX_FUTURE_SKEW" in result.errors[0].reason
    assert "at most 15 minutes ahead is accepted" in result.errors[1].reason
    # The clock the check uses is the engine's: move it (test mode) and the same time is fine.
    movable_clock(engine.cfg, engine.r).advance(2 * HOUR)
    assert Ingestor(engine).ingest(list_items([{"user_id": "b", "_ts": later}])).accepted == 1


def test_an_event_with_more_fields_than_a_profile_holds_is_refused_at_ingest(
    engine: Engine,
) -> None:
    small = Engine.create(cfg=with_settings(engine.cfg, max_profile_fields=10), r=engine.r)
    wide = {"user_id": "a", **{f"f{i}": i for i in range(10)}}
    result = Ingestor(small).ingest(list_items([wide, {"user_id": "b", "f": 1}]))
    assert result.accepted == 1
    assert result.errors[0].field is None
    assert "11 fields; a profile holds at most 10" in result.errors[0].reason


# -- at drain: what adds up over many events -----------------------------------------------------------


def test_events_past_the_field_limit_are_set_aside_and_the_rest_applied(engine: Engine) -> None:
    e = Engine.create(cfg=with_settings(engine.cfg, max_profile_fields=12), r=engine.r)
    ingest = Ingestor(e)
    for i in range(5):  # 3 new fields per event: 1 + 3 * 5 = 16 > 12
        ingest.ingest(list_items([{"user_id": "u", **{f"f{i}_{j}": j for j in range(3)}}]))
    ingest.ingest(list_items([{"user_id": "u", "f0_0": "changed"}]))  # no new field: fine
    drain_all(e)
    p = profile(e, "u")
    assert len(p.fields) <= 12
    assert p.fields["f0_0"] == "changed"
    aside = ShardDeadLetters(e)
    shard = shard_of("u", e.cfg.shards)
    assert aside.counts() == {shard: 2}
    reasons = [x.reason for x in aside.entries(shard)]
    assert all("AUDIENCEHUB_MAX_PROFILE_FIELDS" in r for r in reasons)
    assert "field 'f3_0' and 2 more would make 13 fields" in reasons[-1]
    assert counter(e, "entries_set_aside|limit") == 2
    assert e.r.xlen(e.keys.events(shard)) == 0  # the shard moved on


def test_a_profile_never_grows_past_its_byte_limit(engine: Engine) -> None:
    e = Engine.create(cfg=with_settings(engine.cfg, max_profile_bytes=8192), r=engine.r)
    ingest = Ingestor(e)
    for i in range(10):
        ingest.ingest(list_items([{"user_id": "u", f"blob{i}": "x" * 1500}]))
    drain_all(e)
    shard = shard_of("u", e.cfg.shards)
    blob = cast(bytes, e.r.hget(e.keys.users(shard), "u"))
    assert len(blob) <= 8192
    assert 3 <= len(profile(e, "u").fields) < 10
    aside = ShardDeadLetters(e).entries(shard)
    assert (
        aside and "bytes" in aside[0].reason and "AUDIENCEHUB_MAX_PROFILE_BYTES" in aside[0].reason
    )


def test_occurrences_kept_are_what_the_audiences_windows_count(engine: Engine) -> None:
    e = Engine.create(cfg=with_settings(engine.cfg, occurrences_kept=2), r=engine.r)
    AudienceStore(e.r, e.keys).create("buyers", "FILTER timewindow(buy, 5, 30)")
    now = e.clock.now_ns()
    events = [
        {"user_id": "u", "event": name, "_ts": format_rfc3339(now - i * NS_PER_S)}
        for i in range(20)
        for name in ("buy", "view")
    ]
    Ingestor(e).ingest(list_items(events))
    drain_all(e)
    p = profile(e, "u")
    assert len(p.occurrences["buy"]) == 5  # the largest count any window asks for
    assert len(p.occurrences["view"]) == 2  # no audience counts views: the floor
    assert p.occurrences["buy"][-1] == now


# -- entries that keep failing are set aside -----------------------------------------------------------


def test_an_entry_whose_drains_were_killed_n_times_is_set_aside(engine: Engine) -> None:
    ingest = Ingestor(engine)
    ingest.ingest(list_items([{"user_id": "u", "n": 1}, {"user_id": "u", "n": 2}]))
    shard = shard_of("u", engine.cfg.shards)
    head = cast(list[tuple[bytes, dict[bytes, bytes]]], engine.r.xrange(engine.keys.events(shard)))
    head_id = head[0][0].decode()
    # What three drains killed by the hard time limit leave behind: the attempt, no reason.
    DrainAttempts(engine).begin(shard, Attempt(head_id, engine.cfg.max_attempts))
    report = ShardDrainer(engine).drain(shard)
    assert report.set_aside == 1
    (aside,) = ShardDeadLetters(engine).entries(shard)
    assert aside.entry_id == head_id
    assert "drained 3 times without committing" in aside.reason
    assert "killed" in aside.reason
    assert json.loads(aside.payload)["f"]["n"] == 1
    assert profile(engine, "u").fields["n"] == 2  # the next entry was applied
    assert counter(engine, "entries_set_aside|timed_out") == 1
    assert engine.r.get(engine.keys.drain_attempts(shard)) is None


def test_a_failing_entry_is_retried_alone_then_set_aside(
    engine: Engine, sender: RecordingSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = engine.keys.drain_lease(shard_of("u", engine.cfg.shards))
    lease_held_at_kick: list[bool] = []
    record = sender.drain

    def drain_kick(shard: int) -> None:  # the retry must find the lease free to take it
        lease_held_at_kick.append(bool(engine.r.exists(lease)))
        record(shard)

    monkeypatch.setattr(sender, "drain", drain_kick)
    ingest = Ingestor(engine)
    ingest.ingest(list_items([{"user_id": "u", "poison": 1}, {"user_id": "u", "ok": 1}]))
    shard = shard_of("u", engine.cfg.shards)
    drainer = ShardDrainer(engine)
    seen: list[int] = []
    real = drainer._over_limits

    def explode(
        p: Profile, entry: object, raw_size: int, snapshot: object, sizes: dict[str, int]
    ) -> str | None:
        fields = getattr(entry, "fields", None) or {}
        seen.append(len(fields))
        if "poison" in fields:
            raise ZeroDivisionError("a bug that only this entry meets")
        return real(p, entry, raw_size, snapshot, sizes)  # type: ignore[arg-type]

    monkeypatch.setattr(drainer, "_over_limits", explode)
    lease_held_at_kick.clear()  # the ingest's own kick
    for _ in range(engine.cfg.max_attempts):
        with pytest.raises(ZeroDivisionError):
            drainer.drain(shard)
    assert lease_held_at_kick == [False] * engine.cfg.max_attempts  # one retry each, lease let go
    report = drainer.drain(shard)
    assert report.set_aside == 1 and report.entries == 1
    (aside,) = ShardDeadLetters(engine).entries(shard)
    assert "failed (ZeroDivisionError)" in aside.reason
    assert "only this entry" not in aside.reason  # no exception text: it may quote an event
    assert profile(engine, "u").fields.get("ok") == 1
    assert counter(engine, "entries_set_aside|failed") == 1


def test_a_redis_error_is_not_counted_against_the_entry(engine: Engine) -> None:
    ingest = Ingestor(engine)
    ingest.ingest(list_items([{"user_id": "u", "n": 1}]))
    shard = shard_of("u", engine.cfg.shards)
    attempts = DrainAttempts(engine)
    drainer = ShardDrainer(engine)
    real = drainer._committer.run

    def refuse(commit: object) -> bool:
        raise ResponseError("OOM command not allowed")

    drainer._committer.run = refuse  # type: ignore[method-assign]
    for _ in range(5):
        with pytest.raises(ResponseError):
            drainer.drain(shard)
        assert engine.r.get(attempts.key(shard)) is None
    drainer._committer.run = real  # type: ignore[method-assign]
    assert drainer.drain(shard).set_aside == 0
    assert profile(engine, "u").fields["n"] == 1


# -- with real workers: the time limit holds, and the shard moves on ------------------------------


@pytest.mark.e2e
def test_a_drain_over_its_time_limit_is_stopped_and_its_entry_set_aside(
    engine: Engine, workdir: Path
) -> None:
    env = celery_env(
        engine.cfg.redis_url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS=str(SHARDS),
        AUDIENCEHUB_TASK_TIME_LIMIT="5",  # soft limit 3 s; each stalled drain sleeps 60 s
    )
    faults.arm(engine.cfg, engine.r, "drain.stall", engine.cfg.max_attempts)
    worker = CeleryWorker(workdir, env)
    beat = CeleryBeat(workdir, env)
    worker.start()
    beat.start()
    try:
        Ingestor(engine).ingest(list_items([{"user_id": "u", "n": 1}, {"user_id": "u", "n": 2}]))
        shard = shard_of("u", engine.cfg.shards)
        aside = ShardDeadLetters(engine)
        # Each stalled drain sleeps 60 s: the entry is set aside within this wait only because
        # the 3 s soft limit cut the stalls short (the reason and the worker's log say so below).
        wait_for(lambda: aside.counts(), 60, interval=0.2, what="the stalled entry set aside")
        wait_for(
            lambda: engine.r.xlen(engine.keys.events(shard)) == 0, 30, what="the shard drained"
        )
        (entry,) = aside.entries(shard)
        assert "timed out (the task's soft time limit)" in entry.reason
        assert profile(engine, "u").fields["n"] == 2
        assert "Soft time limit (3s) exceeded" in worker.log()
        stats = json.loads(cli(env, "schedule", "stats", "--json"))["set_aside"]
        assert stats["total"] == 1 and stats["by_shard"] == {str(shard): 1}
        assert "timed out" in stats["latest"][0]["reason"]
    finally:
        beat.stop()
        worker.stop()
