"""The engine on a real Redis, in-process: ingest, drain, commit, outbox."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.helpers import RecordingSender
from tests.profile_v1 import encode_v1
from workers.audiences.store import AudienceStore
from workers.delivery.outbox import Outbox, records
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.store import Job, JobStore
from workers.keys import shard_of
from workers.pipeline.commit import Committer, ShardCommit
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items, ndjson_items
from workers.pipeline.member_index import MemberIndex
from workers.pipeline.profile import Profile
from workers.pipeline.profile_codec import legacy_encode
from workers.pipeline.profiles import stored_profile
from workers.schedule.release import Releaser
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339, parse_rfc3339

CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)


def job_for(engine: Engine, *slugs: str) -> Job:
    store = AudienceStore(engine.r, engine.keys)
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("h", CONN)
    return JobStore(engine.r, engine.keys).create("j", auth.id, [store.get(s).id for s in slugs])


def drain_all(engine: Engine) -> None:
    drainer = ShardDrainer(engine)
    for shard in range(engine.cfg.shards):
        drainer.drain(shard)


def outbox(engine: Engine, job: Job) -> list[dict[str, object]]:
    out = []
    for shard in range(engine.cfg.shards):
        for _, record in records(Outbox(engine.keys, shard, job.id).all(engine.r)):
            out.append(orjson.loads(record.body))
    return out


def test_valid_events_are_accepted_beside_bad_ones(engine: Engine, sender: RecordingSender) -> None:
    lines = [
        b'{"user_id": "a", "x": 1}',
        b"not json",
        b'{"x": 1}',
        b'{"user_id": "b", "_ts": false}',
        b'{"user_id": "c", "big": "' + b"y" * 70_000 + b'"}',
        b'{"user_id": "d"}',
    ]
    result = Ingestor(engine).ingest(ndjson_items(lines))
    assert result.accepted == 2
    assert [(e.where, e.field) for e in result.errors] == [
        ("line 2", None),
        ("line 3", "user_id"),
        ("line 4", "_ts"),
        ("line 5", None),
    ]
    assert sum(engine.r.xlen(engine.keys.events(s)) for s in range(engine.cfg.shards)) == 2
    assert sender.drains == engine.drain_groups.leads(shard_of(u, engine.cfg.shards) for u in "ad")


def test_drain_applies_events_once_and_writes_the_messages(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("pro", 'FILTER plan == "pro"')
    job = job_for(engine, "pro")
    Ingestor(engine).ingest(list_items([{"user_id": "u", "plan": "pro", "email": "e@x"}]))
    drain_all(engine)
    drain_all(engine)
    messages = outbox(engine, job)
    assert len(messages) == 1
    assert messages[0]["data"]["segment_events"][0]["event"] == "enter"  # type: ignore[index]
    shard = shard_of("u", engine.cfg.shards)
    assert engine.r.xlen(engine.keys.events(shard)) == 0, "applied entries are trimmed"
    audience = AudienceStore(engine.r, engine.keys).get("pro")
    assert MemberIndex(engine.keys, shard, audience.id).all(engine.r) == [b"u"]


def test_the_commit_is_fenced_by_the_shard_version(engine: Engine) -> None:
    committer = Committer(engine.r)
    first = ShardCommit(engine.keys, 0, "", "5-0")
    first.users["u"] = b"{}"
    assert committer.run(first)
    stale = ShardCommit(engine.keys, 0, "", "6-0")
    stale.users["u"] = b"stale"
    assert not committer.run(stale)
    assert engine.r.hget(engine.keys.users(0), "u") == b"{}"
    assert engine.r.get(engine.keys.applied(0)) == b"5-0"


def test_shard_commits_run_together_each_fenced_also_after_a_script_flush(engine: Engine) -> None:
    """A drain group's commits go in one pipeline: each shard's stays its own fenced script, and
    a server that lost its scripts (a restart) runs each again on its own, loading it."""
    committer = Committer(engine.r)
    for flushed in (False, True):
        if flushed:
            engine.r.script_flush()
        expected = "" if not flushed else "5-0"
        commits = [ShardCommit(engine.keys, s, expected, f"{5 + flushed}-0") for s in (0, 1)]
        commits.append(ShardCommit(engine.keys, 2, "9-9", "7-0"))  # stale: refused alone
        for c in commits:
            c.users["u"] = f"v{flushed}".encode()
        assert committer.run_all(commits) == [True, True, False]
        assert [engine.r.hget(engine.keys.users(s), "u") for s in (0, 1, 2)] == [
            f"v{flushed}".encode(),
            f"v{flushed}".encode(),
            None,
        ]


def test_a_time_window_exit_carries_the_instant_it_happened(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER last_seen > "now-7d"')
    job = job_for(engine, "recent")
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S  # FilterQL compares dates in seconds
    seen = now - 7 * NS_PER_DAY + 60 * NS_PER_S
    Ingestor(engine).ingest(list_items([{"user_id": "t", "last_seen": format_rfc3339(seen)}]))
    drain_all(engine)
    assert stored_profile(engine, "t").due() == seen + 7 * NS_PER_DAY
    engine.r.incrby(engine.keys.clock_offset, 120 * NS_PER_S)  # two minutes later
    assert Releaser(engine).release().released == 1
    drain_all(engine)
    messages = outbox(engine, job)
    assert [m["data"]["segment_events"][0]["event"] for m in messages] == ["enter", "exit"]  # type: ignore[index]
    exit_seg = messages[1]["data"]["segment_events"][0]  # type: ignore[index]
    assert parse_rfc3339(exit_seg["exit"]) == seen + 7 * NS_PER_DAY
    assert messages[1]["meta"]["timestamp"] == exit_seg["exit"]  # type: ignore[index]
    assert stored_profile(engine, "t").due() is None


def test_a_data_event_after_the_due_time_replays_the_exit_first(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("recent", 'FILTER last_seen > "now-7d"')
    job = job_for(engine, "recent")
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S  # FilterQL compares dates in seconds
    seen = now - 7 * NS_PER_DAY + 60 * NS_PER_S
    Ingestor(engine).ingest(list_items([{"user_id": "t", "last_seen": format_rfc3339(seen)}]))
    drain_all(engine)
    engine.r.incrby(engine.keys.clock_offset, 120 * NS_PER_S)
    later = engine.clock.now_ns()
    Ingestor(engine).ingest(list_items([{"user_id": "t", "last_seen": format_rfc3339(later)}]))
    drain_all(engine)  # before beat released the user
    events = [
        (m["data"]["segment_events"][0]["event"], m["meta"]["timestamp"])  # type: ignore[index]
        for m in outbox(engine, job)
    ]
    assert [e for e, _ in events] == ["enter", "exit", "enter"]
    assert parse_rfc3339(events[1][1]) == seen + 7 * NS_PER_DAY


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_batch_size_does_not_change_the_messages(engine: Engine, batch: int) -> None:
    import dataclasses

    engine.cfg = dataclasses.replace(engine.cfg, drain_batch=batch)
    AudienceStore(engine.r, engine.keys).create("pro", 'FILTER plan == "pro"')
    job = job_for(engine, "pro")
    flips = [{"user_id": "f", "plan": p} for p in ["pro", "free", "pro", "free", "pro"]]
    Ingestor(engine).ingest(list_items(flips))
    drain_all(engine)
    got = [m["data"]["segment_events"][0]["event"] for m in outbox(engine, job)]  # type: ignore[index]
    assert got == ["enter", "exit", "enter", "exit", "enter"]


def test_concurrent_edits_cannot_sneak_an_include_cycle_past_the_check(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("a", "FILTER x > 1")
    store.create("b", "FILTER INCLUDE a")
    version = store.version()
    # Another writer changes the registry between this writer's check and its write:
    store.update_filter("a", "FILTER x > 2")
    assert not store.raw_put_if("c-id", {"id": "c-id"}, version)
    from workers.audiences.registry_store import Conflict

    with pytest.raises(Conflict, match=r"cycle|INCLUDE"):
        store.update_filter("a", "FILTER INCLUDE b")


# -- a store of JSON profiles (version 0), version 1 and version 2 ones ---------------------------
def triggers(engine: Engine, job: Job) -> dict[str, list[tuple[str, str, str]]]:
    """user -> (slug, event, enter) of every segment event in the job's outbox, in order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for body in outbox(engine, job):
        data: dict[str, Any] = body["data"]  # type: ignore[assignment]
        for s in data["segment_events"]:
            out.setdefault(data["user_id"], []).append((s["slug"], s["event"], s["enter"]))
    return out


def stored_blob(engine: Engine, uid: str) -> bytes:
    blob = engine.r.hget(engine.keys.users(shard_of(uid, engine.cfg.shards)), uid)
    assert isinstance(blob, bytes)
    return blob


@pytest.mark.parametrize("versions", ["222222", "000222", "000000", "111111", "001122"])
def test_a_store_of_old_and_new_profiles_drains_to_the_same_answers(
    engine: Engine, versions: str
) -> None:
    """Six users reach their state through events; then each is rewritten in the version
    ``versions`` gives it: 0 the JSON of before version 1, 1 version 1 (what stores hold
    today), 2 as the drain wrote it. More events drain over the mixed store: every user gets
    the same triggers and ends with the same profile whatever its stored encoding, and every
    profile a drain wrote is version 2."""
    store = AudienceStore(engine.r, engine.keys)
    store.create("pro", 'FILTER plan == "pro"')
    store.create("busy", "FILTER visits >= 2")
    store.create("seen", "FILTER timewindow(visit, 2, 30)")
    job = job_for(engine, "pro", "busy")
    users = [f"u{i}" for i in range(6)]
    Ingestor(engine).ingest(
        list_items(
            [
                {"user_id": u, "event": "visit", "plan": "pro", "visits": 1, "_ts": ts}
                for u in users
                for ts in (1_700_000_000_000, 1_700_000_000_500)
            ]
        )
    )
    drain_all(engine)
    before = triggers(engine, job)
    snapshot = engine.registry.get()
    codes = snapshot.codes
    numbers = {aid: int(n) for aid, n in codes.numbers.items()}
    for uid, version in zip(users, versions, strict=True):
        p = Profile.loads(uid, stored_blob(engine, uid), codes)
        assert p.membership, "the users are in audiences whose numbers the blobs hold"
        blob = {"0": legacy_encode(p), "1": encode_v1(p, numbers), "2": p.dumps(codes)}[version]
        assert Profile.loads(uid, blob, codes) == p
        engine.r.hset(engine.keys.users(shard_of(uid, engine.cfg.shards)), uid, blob)
    Ingestor(engine).ingest(
        list_items(
            [{"user_id": u, "visits": 2, "_ts": 1_700_000_001_000} for u in users]
            + [{"user_id": u, "plan": "free", "_ts": 1_700_000_002_000} for u in users]
        )
    )
    drain_all(engine)
    after = triggers(engine, job)
    sequences = {tuple((slug, event) for slug, event, _ in after[uid]) for uid in users}
    assert len(sequences) == 1, "old and new profiles got the same triggers"
    for uid in users:
        enter_pro = before[uid][0][2]
        assert after[uid][: len(before[uid])] == before[uid]
        # Each message holds what moved and the job's other current memberships (the seed's shape).
        assert [(slug, event) for slug, event, _ in after[uid]] == [
            ("pro", "enter"),
            ("busy", "enter"),
            ("pro", "enter"),
            ("pro", "exit"),
            ("busy", "enter"),
        ]
        pro_enters = {enter for slug, _, enter in after[uid] if slug == "pro"}
        assert pro_enters == {enter_pro}, "the enter time reads back from either encoding"
        blob = stored_blob(engine, uid)
        assert blob[:2] == b"\x9d\x02" or blob[:2] == b"\x9a\x02", "the drain wrote version 2"
        p = Profile.loads(uid, blob, codes)
        assert p.fields == {"user_id": uid, "plan": "free", "visits": 2}
        assert p.occurrences == {"visit": [1_700_000_000_000 * 10**6, 1_700_000_000_500 * 10**6]}
        assert set(p.membership) == {store.get("busy").id}


def test_forget_unknown_drops_deleted_audiences_from_every_table_and_keeps_the_rest() -> None:
    """Once per profile per batch; the subset test that skips the loop must still find a
    deleted audience in any of the three tables."""
    from workers.audiences.registry import LiveAudience, Snapshot
    from workers.filterql import compile_filter
    from workers.pipeline.membership import forget_unknown

    live = LiveAudience("kept", "kept", compile_filter("FILTER EXISTS email"))
    snapshot = Snapshot(1, {"kept": live}, {}, {})
    for table in ("membership", "next_change", "recorded"):
        p = Profile("u")
        p.membership["kept"] = 1
        getattr(p, table)["gone"] = 2
        forget_unknown(p, snapshot)
        assert (p.membership, p.next_change, p.recorded) == ({"kept": 1}, {}, {}), table
    p = Profile("u", membership={"kept": 1}, next_change={"kept": 5}, recorded={"kept": 3})
    forget_unknown(p, snapshot)
    assert (p.membership, p.next_change, p.recorded) == ({"kept": 1}, {"kept": 5}, {"kept": 3})
