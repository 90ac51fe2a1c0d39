"""Time-driven re-evaluation, in-process on a real Redis with the movable clock."""

from __future__ import annotations

import orjson

from tests.helpers import changed
from workers.audiences.store import AudienceStore
from workers.delivery.outbox import Outbox, records
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.jobs.store import Job
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profiles import stored_profile
from workers.schedule.reevaluate import Reevaluations
from workers.schedule.release import Releaser, due_entries, due_stats
from workers.timefmt import NS_PER_DAY, NS_PER_MS, NS_PER_S, format_rfc3339, parse_rfc3339

CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)


def job_for(engine: Engine, *slugs: str) -> Job:
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("h", CONN)
    return create_job(engine, "j", auth.id, list(slugs))


def settle(engine: Engine) -> None:
    """What beat and the workers would do, until nothing is left to do."""
    drainer = ShardDrainer(engine)
    reevals = Reevaluations(engine)
    for _ in range(100):
        Releaser(engine).release()
        reevals.advance()
        for shard in range(engine.cfg.shards):
            drainer.drain(shard)
        pending = sum(engine.r.xlen(engine.keys.events(s)) for s in range(engine.cfg.shards))
        if not pending and all(r.finished_at for r in reevals.runs()):
            return
    raise AssertionError("did not settle")


def messages(engine: Engine, job: Job) -> list[tuple[str, str, str]]:
    """(user, event, slug) for every change in the job's outboxes, then clear them."""
    out = []
    for shard in range(engine.cfg.shards):
        box = Outbox(engine.keys, shard, job.id)
        read = records(box.all(engine.r))
        for _, record in read:
            body = orjson.loads(record.body)
            for seg in changed(body):
                out.append((body["data"]["user_id"], seg["event"], seg["slug"]))
        if read:
            box.ack_through(engine.r, read[-1][0])
    return sorted(out)


def advance(engine: Engine, ns: int) -> None:
    engine.r.incrby(engine.keys.clock_offset, ns)


def test_editing_a_filter_emits_exactly_the_implied_enters_and_exits(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("scored", "FILTER score >= 5")
    job = job_for(engine, "scored")
    Ingestor(engine).ingest(list_items([{"user_id": f"u{i}", "score": i} for i in range(10)]))
    settle(engine)
    assert messages(engine, job) == [(f"u{i}", "enter", "scored") for i in range(5, 10)]

    Reevaluations(engine).start([store.update_filter("scored", "FILTER score >= 3").id])
    settle(engine)
    assert messages(engine, job) == [("u3", "enter", "scored"), ("u4", "enter", "scored")]

    Reevaluations(engine).start([store.update_filter("scored", "FILTER score >= 7").id])
    settle(engine)
    assert messages(engine, job) == [(f"u{i}", "exit", "scored") for i in range(3, 7)]

    Reevaluations(engine).start([store.get("scored").id])  # unchanged filter: nothing moves
    settle(engine)
    assert messages(engine, job) == []


def test_a_new_audience_picks_up_existing_users(engine: Engine) -> None:
    Ingestor(engine).ingest(list_items([{"user_id": f"u{i}", "plan": "pro"} for i in range(3)]))
    settle(engine)
    created = AudienceStore(engine.r, engine.keys).create("pro", 'FILTER plan == "pro"')
    job = job_for(engine, "pro")
    run = Reevaluations(engine).start([created.id])
    settle(engine)
    assert messages(engine, job) == [(f"u{i}", "enter", "pro") for i in range(3)]
    checked, total = Reevaluations(engine).progress(Reevaluations(engine).get(run.id))  # type: ignore[arg-type]
    assert checked == total == 3


def test_a_new_event_before_the_due_time_moves_the_schedule_without_a_stale_entry(
    engine: Engine,
) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER last_login > "now-30d"')
    job = job_for(engine, "recent")
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S  # FilterQL compares dates in seconds
    Ingestor(engine).ingest(list_items([{"user_id": "a", "last_login": format_rfc3339(now)}]))
    settle(engine)
    shard = shard_of("a", engine.cfg.shards)
    first_due = due_entries(engine, shard)["a"]
    assert first_due == -(-(now + 30 * NS_PER_DAY) // NS_PER_MS)
    advance(engine, 10 * NS_PER_DAY)
    later = engine.clock.now_ns() // NS_PER_S * NS_PER_S
    Ingestor(engine).ingest(list_items([{"user_id": "a", "last_login": format_rfc3339(later)}]))
    settle(engine)
    assert list(due_entries(engine, shard)) == ["a"]
    assert due_entries(engine, shard)["a"] == -(-(later + 30 * NS_PER_DAY) // NS_PER_MS)
    advance(engine, 20 * NS_PER_DAY + NS_PER_S)  # past the first due time, not the second
    settle(engine)
    assert messages(engine, job) == [("a", "enter", "recent")]
    advance(engine, 10 * NS_PER_DAY)
    settle(engine)
    assert messages(engine, job) == [("a", "exit", "recent")]
    assert due_stats(engine).scheduled == 0


def test_release_is_atomic_so_a_second_beat_releases_nothing_twice(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER seen > "now-1d"')
    now = engine.clock.now_ns()
    users = [{"user_id": f"u{i}", "seen": format_rfc3339(now)} for i in range(50)]
    Ingestor(engine).ingest(list_items(users))
    settle(engine)
    assert due_stats(engine).scheduled == 50
    advance(engine, NS_PER_DAY + NS_PER_S)
    first, second = Releaser(engine), Releaser(engine)
    assert first.release().released == 50
    assert second.release().released == 0


def test_between_and_not_flip_at_their_boundaries(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("window", 'FILTER signup BETWEEN "now-7d" AND "now-1d"')
    store.create("not_recent", 'FILTER NOT (seen > "now-2d")')
    job = job_for(engine, "window", "not_recent")
    now = engine.clock.now_ns()
    event = {"user_id": "b", "signup": format_rfc3339(now), "seen": format_rfc3339(now)}
    Ingestor(engine).ingest(list_items([event]))
    settle(engine)
    assert messages(engine, job) == []
    advance(engine, NS_PER_DAY + NS_PER_S)  # signup is now more than a day old: inside the window
    settle(engine)
    assert messages(engine, job) == [("b", "enter", "window")]
    advance(engine, NS_PER_DAY)  # seen more than two days ago: NOT(...) becomes true
    settle(engine)
    assert messages(engine, job) == [("b", "enter", "not_recent")]
    advance(engine, 5 * NS_PER_DAY)  # signup more than 7 days old: leaves the window
    settle(engine)
    assert messages(engine, job) == [("b", "exit", "window")]


def test_exit_time_is_the_exact_flip_instant_even_when_released_late(engine: Engine) -> None:
    """Date comparisons are whole seconds (qlbridge's), so the window flips on the second."""
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER seen > "now-1d"')
    job = job_for(engine, "recent")
    seen = parse_rfc3339("2026-11-01T10:00:00.123456789Z")
    engine.r.set(engine.keys.clock_offset, seen - engine.clock.now_ns() + 1000)
    Ingestor(engine).ingest(list_items([{"user_id": "c", "seen": format_rfc3339(seen)}]))
    settle(engine)
    messages(engine, job)
    advance(engine, 3 * NS_PER_DAY)  # a worker only gets to it two days late
    Releaser(engine).release()
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)
    shard = shard_of("c", engine.cfg.shards)
    body = orjson.loads(records(Outbox(engine.keys, shard, job.id).all(engine.r))[0][1].body)
    assert body["data"]["segment_events"][0]["exit"] == "2026-11-02T10:00:00Z"
    assert body["meta"]["timestamp"] == "2026-11-02T10:00:00Z"


def test_the_due_index_matches_the_profiles_and_its_count(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER seen > "now-3d"')
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S
    users = [
        {"user_id": f"d{i}", "seen": format_rfc3339(now - i * 3600 * NS_PER_S)} for i in range(40)
    ]
    Ingestor(engine).ingest(list_items(users))
    settle(engine)
    advance(engine, 2 * NS_PER_DAY)  # some windows run out, others move on
    settle(engine)
    entries: dict[str, int] = {}
    for shard in range(engine.cfg.shards):
        entries.update(due_entries(engine, shard))
    for i in range(40):
        due = stored_profile(engine, f"d{i}").due()
        want = None if due is None else -(-due // NS_PER_MS)
        assert entries.get(f"d{i}") == want
    assert due_stats(engine).scheduled == len(entries) > 0


def test_a_user_released_before_a_lagging_worker_sees_it_due_stays_scheduled(
    engine: Engine,
) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER seen > "now-1d"')
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S
    Ingestor(engine).ingest(list_items([{"user_id": "s", "seen": format_rfc3339(now)}]))
    settle(engine)
    advance(engine, NS_PER_DAY + 5 * NS_PER_S)  # beat's clock: due
    assert Releaser(engine).release().released == 1
    advance(engine, -60 * NS_PER_S)  # the worker's clock runs a minute behind: not yet due
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)
    assert due_stats(engine).scheduled == 1, "the user must go back into the due index"


def test_each_time_driven_step_carries_the_memberships_of_its_own_instant(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("day", 'FILTER signup > "now-1d"')
    store.create("week", 'FILTER signup > "now-7d"')
    job = job_for(engine, "day", "week")
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S
    Ingestor(engine).ingest(list_items([{"user_id": "s", "signup": format_rfc3339(now)}]))
    settle(engine)
    messages(engine, job)
    advance(engine, 8 * NS_PER_DAY)  # both windows have run out; one data event catches up
    Ingestor(engine).ingest(list_items([{"user_id": "s", "touch": 1}]))
    settle(engine)
    shard = shard_of("s", engine.cfg.shards)
    bodies = [
        orjson.loads(record.body)
        for _, record in records(Outbox(engine.keys, shard, job.id).all(engine.r))
    ]
    assert [
        [(s["event"], s["slug"], s["exit"][:4]) for s in b["data"]["segment_events"]]
        for b in bodies
    ] == [
        [("exit", "day", format_rfc3339(now + NS_PER_DAY)[:4]), ("enter", "week", "2099")],
        [("exit", "week", format_rfc3339(now + 7 * NS_PER_DAY)[:4])],
    ]
