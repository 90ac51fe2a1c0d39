"""Existing Users backfill, in-process on a real Redis: pages, fencing, order, flow control."""

from __future__ import annotations

import random

import orjson
import pytest

from workers.audiences.registry_store import Conflict
from workers.audiences.store import AudienceStore
from workers.delivery.outbox import Outbox, records
from workers.engine import Engine
from workers.jobs import backfill as backfill_module
from workers.jobs.auths import AuthStore
from workers.jobs.backfill import Backfills
from workers.jobs.setup import backfill_preview, create_job
from workers.jobs.store import Job, JobStore
from workers.keys import shard_of
from workers.lease import Lease
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profile import Profile
from workers.schedule.clock import RedisOffsetClock

CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)


def drain(engine: Engine) -> None:
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)


def populate(engine: Engine, users: int) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("even", "FILTER n % 2 == 0")
    store.create("small", "FILTER n < 30")
    Ingestor(engine).ingest(list_items([{"user_id": f"u{i:03d}", "n": i} for i in range(users)]))
    drain(engine)


def job_with_backfill(engine: Engine) -> Job:
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("h", CONN)
    return create_job(engine, "j", auth.id, ["even", "small"], existing_users=True)


def outbox_by_user(engine: Engine, job: Job) -> dict[str, list[list[tuple[str, str]]]]:
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for shard in range(engine.cfg.shards):
        for _, record in records(Outbox(engine.keys, shard, job.id).all(engine.r)):
            body = orjson.loads(record.body)
            segs = sorted((s["event"], s["slug"]) for s in body["data"]["segment_events"])
            out.setdefault(body["data"]["user_id"], []).append(segs)
    return out


def run_backfill(engine: Engine, job: Job) -> None:
    backfills = Backfills(engine)
    for _ in range(1000):
        backfills.advance(engine.registry.get())
        for shard in range(engine.cfg.shards):
            backfills.run(job.id, shard)
        if not backfills.active(job.id):
            return
    raise AssertionError("backfill did not finish")


def test_every_member_is_sent_once_with_all_its_audiences(engine: Engine) -> None:
    populate(engine, 60)
    preview = backfill_preview(engine, ["even", "small"])
    assert [a["members"] for a in preview["audiences"]] == [30, 30]
    job = job_with_backfill(engine)
    assert Backfills(engine).active(job.id)
    run_backfill(engine, job)
    sent = outbox_by_user(engine, job)
    members = {f"u{i:03d}" for i in range(60) if i % 2 == 0 or i < 30}
    assert set(sent) == members
    assert sent["u002"] == [[("enter", "even"), ("enter", "small")]]
    assert sent["u003"] == [[("enter", "small")]]
    assert sent["u040"] == [[("enter", "even")]]
    memberships = sum(1 for i in range(60) if i % 2 == 0) + 30
    assert Backfills(engine).progress(job.id) == (memberships, memberships)
    assert int(engine.r.hget(engine.keys.job_stats(job.id), "backfilled") or 0) == len(members)


def test_backfilled_enter_carries_the_stored_enter_time(engine: Engine) -> None:
    populate(engine, 4)
    job = job_with_backfill(engine)
    run_backfill(engine, job)
    shard = shard_of("u002", engine.cfg.shards)
    blob = engine.r.hget(engine.keys.users(shard), "u002")
    profile = Profile.loads("u002", blob, engine.registry.get().codes)  # type: ignore[arg-type]
    rows = records(Outbox(engine.keys, shard, job.id).all(engine.r))
    body = next(orjson.loads(r.body) for _, r in rows if r.user == "u002")
    even = AudienceStore(engine.r, engine.keys).get("even").id
    seg = next(s for s in body["data"]["segment_events"] if s["id"] == even)
    from workers.timefmt import format_rfc3339

    assert seg["enter"] == format_rfc3339(profile.membership[even])
    assert seg["exit"].startswith("2099-")


def test_live_changes_during_backfill_never_leave_a_stale_enter_last(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill_module, "PAGE", 7)
    populate(engine, 120)
    job = job_with_backfill(engine)
    rng = random.Random(5)
    backfills = Backfills(engine)
    final: dict[str, int] = {f"u{i:03d}": i for i in range(120)}
    while backfills.active(job.id):
        backfills.advance(engine.registry.get())
        shard = rng.randrange(engine.cfg.shards)
        backfills.page(job.id, shard)
        changes = []
        for _ in range(5):
            uid = f"u{rng.randrange(120):03d}"
            final[uid] = rng.randrange(200)
            changes.append({"user_id": uid, "n": final[uid]})
        Ingestor(engine).ingest(list_items(changes))
        drain(engine)
    sent = outbox_by_user(engine, job)
    for uid, n in final.items():
        for slug, member in (("even", n % 2 == 0), ("small", n < 30)):
            events = [event for message in sent.get(uid, []) for event, s in message if s == slug]
            if member:
                assert events and events[-1] == "enter", f"{uid} in {slug}: {events}"
            else:
                assert not events or events[-1] == "exit", f"{uid} not in {slug}: {events}"


def test_the_backlog_limit_pauses_pages(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill_module, "PAGE", 5)
    monkeypatch.setattr(backfill_module, "BACKLOG_LIMIT", 5)
    populate(engine, 200)
    job = job_with_backfill(engine)
    shard = 0
    report = Backfills(engine).run(job.id, shard)
    assert report.throttled and not report.done
    assert 5 <= Outbox(engine.keys, shard, job.id).length(engine.r) < 10


def test_a_page_is_refused_when_a_drain_commits_between_its_read_and_its_write(
    engine: Engine,
) -> None:
    populate(engine, 10)
    job = job_with_backfill(engine)
    backfills = Backfills(engine)
    shard = shard_of("u002", engine.cfg.shards)
    original = backfills._commit

    def drain_first(keys: list[str], args: list[str | bytes]) -> object:
        Ingestor(engine).ingest(list_items([{"user_id": "u002", "n": 41}]))  # leaves both
        ShardDrainer(engine).drain(shard)
        return original(keys=keys, args=args)

    backfills._commit = drain_first  # type: ignore[assignment]
    report = backfills.page(job.id, shard)
    assert report.conflict and report.written == 0
    backfills._commit = original
    while not backfills.page(job.id, shard).done:
        pass
    sent = outbox_by_user(engine, job)
    assert sent["u002"] == [[("exit", "even"), ("exit", "small")]]


def enters_by_user(engine: Engine, job: Job) -> dict[str, list[str]]:
    """user -> the slugs of every enter the job's outbox holds for them, in order."""
    return {
        uid: [slug for message in messages for event, slug in message if event == "enter"]
        for uid, messages in outbox_by_user(engine, job).items()
    }


def test_users_who_enter_after_the_backfill_started_get_their_enter_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a page wrote an enter for every current member, so a user who entered live after
    the job was created got it twice (live, then backfilled). The backfill sends only what was
    recorded before it started; live enters are the drains'."""
    monkeypatch.setattr(backfill_module, "PAGE", 5)
    populate(engine, 40)  # u000..u039: members before the job exists
    job = job_with_backfill(engine)
    state = Backfills(engine).get(job.id)
    assert state is not None and 0 < state.started <= engine.clock.now_ns()
    backfills = Backfills(engine)
    late = 40
    while backfills.active(job.id):  # users keep entering live between pages
        backfills.advance(engine.registry.get())
        for shard in range(engine.cfg.shards):
            backfills.page(job.id, shard)
        Ingestor(engine).ingest(list_items([{"user_id": f"u{late:03d}", "n": 2 * late}]))
        late += 1
        drain(engine)
    assert late > 42, "users entered live while the backfill ran"
    enters = enters_by_user(engine, job)
    for uid, slugs in enters.items():
        assert len(slugs) == len(set(slugs)), f"{uid} got an enter twice: {slugs}"
    assert {f"u{i:03d}" for i in range(40, late)} <= set(enters), "live enters all went out"


def test_a_time_driven_enter_applied_after_the_backfill_started_is_sent_once(
    engine: Engine,
) -> None:
    """An enter due before the job existed but applied after (a late release) is recorded after
    the backfill started: the drain sends it live, the backfill leaves it."""
    AudienceStore(engine.r, engine.keys).create("aged", 'FILTER signup < "now-1h"')
    clock = engine.clock
    assert isinstance(clock, RedisOffsetClock)
    from workers.timefmt import format_rfc3339

    signup = clock.now_ns() - 3_600_000_000_000 + 60_000_000_000  # "now-1h" reaches it in 60 s
    Ingestor(engine).ingest(list_items([{"user_id": "late", "signup": format_rfc3339(signup)}]))
    drain(engine)
    clock.advance(120_000_000_000)  # the flip is due, but no drain has applied it yet
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("h", CONN)
    job = create_job(engine, "j", auth.id, ["aged"], existing_users=True)
    Ingestor(engine).ingest(list_items([{"user_id": "late", "x": 1}]))  # applies the flip
    drain(engine)
    run_backfill(engine, job)
    assert enters_by_user(engine, job) == {"late": ["aged"]}
    shard = shard_of("late", engine.cfg.shards)
    blob = engine.r.hget(engine.keys.users(shard), "late")
    profile = Profile.loads("late", blob, engine.registry.get().codes)  # type: ignore[arg-type]
    aged = AudienceStore(engine.r, engine.keys).get("aged").id
    assert profile.membership[aged] < profile.recorded_at(aged)


def test_job_creation_pauses_drains_and_gives_up_cleanly_on_a_stuck_shard(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backfill's start is read with every shard's drain lease held: no batch runs inside.
    A shard that stays busy makes job creation fail with nothing created."""
    populate(engine, 4)
    Ingestor(engine).ingest(list_items([{"user_id": "u900", "n": 2}]))
    with backfill_module.drains_paused(engine):
        drain(engine)  # every drainer finds its lease taken and leaves the entry
        assert sum(engine.r.xlen(engine.keys.events(s)) for s in range(engine.cfg.shards)) == 1
    drain(engine)
    assert sum(engine.r.xlen(engine.keys.events(s)) for s in range(engine.cfg.shards)) == 0

    monkeypatch.setattr(backfill_module, "PAUSE_WAIT_S", 0.2)
    stuck = Lease(engine.r, engine.keys.drain_lease(1), 60_000)
    assert stuck.acquire()
    with pytest.raises(Conflict, match="shard 1 stayed busy"):
        job_with_backfill(engine)
    assert JobStore(engine.r, engine.keys).all() == []
    assert Lease(engine.r, engine.keys.drain_lease(0), 1000).acquire(), "leases were given back"
