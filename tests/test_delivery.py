"""Delivery against the hub stand-in over real sockets: batching, backoff, auth failure, dead
letters, replay. The deliverer runs in-process; Redis and the hub are real."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from audiencehub.processes import HubEmulator
from workers.audiences.store import AudienceStore
from workers.delivery import deliver as deliver_module
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.deliver import Deliverer, DeliverReport, SenderPool
from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.control import JobControl
from workers.jobs.health import JobHealth
from workers.jobs.setup import create_job
from workers.jobs.store import Job, JobStore
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items


@pytest.fixture
def small_hub(workdir: Path) -> Iterator[HubEmulator]:
    """A stand-in that refuses batches over 4 KB, like a much smaller tier."""
    emulator = HubEmulator(workdir, extra=["--max-batch-bytes", "4096"])
    emulator.start()
    yield emulator
    emulator.stop()


def faults(hub: HubEmulator, plan: dict[str, object]) -> None:
    """A plan for REST sends only (the management call a job makes over AMQP is left alone)."""
    plan = {"face": "rest", **plan}
    requests.put(f"{hub.base_url}/_emulator/faults", json=plan, timeout=5).raise_for_status()


def setup(engine: Engine, hub: HubEmulator, users: int, **job_options: Any) -> Job:
    AudienceStore(engine.r, engine.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    job = create_job(engine, "j", auth.id, ["all"], **job_options)
    events = [
        {"user_id": f"u{i:04d}", "email": f"u{i}@x.io", "pad": "p" * 300} for i in range(users)
    ]
    Ingestor(engine).ingest(list_items(events))
    drainer = ShardDrainer(engine)
    for shard in range(engine.cfg.shards):
        drainer.drain(shard)
    return job


def deliver_all(engine: Engine, job: Job, pool: SenderPool) -> list[DeliverReport]:
    deliverer = Deliverer(engine, pool.get)
    reports = []
    while True:  # the task re-queues itself when its budget runs out; here we just call again
        report = deliverer.deliver(job.id, budget_s=5)
        reports.append(report)
        if report.error or not report.sent or not deliverer.backlog(job.id):
            return reports


def backlog(engine: Engine, job: Job) -> int:
    return sum(
        int(Outbox(engine.keys, s, job.id).length(engine.r)) for s in range(engine.cfg.shards)
    )


def test_batches_never_exceed_the_limit_and_everything_arrives(
    engine: Engine, hub: HubEmulator
) -> None:
    job = setup(engine, hub, 120, max_batch_bytes=20_000)
    pool = SenderPool(engine)
    reports = deliver_all(engine, job, pool)
    assert sum(r.sent for r in reports) == 120
    assert sum(r.batches for r in reports) > 120 * 450 // 20_000  # many batches, not one
    assert backlog(engine, job) == 0
    assert len(hub.events()) == 120
    pool.close()


def test_throttling_puts_the_job_to_sleep_and_keeps_everything(
    engine: Engine, hub: HubEmulator
) -> None:
    job = setup(engine, hub, 20)
    faults(hub, {"status": 503, "count": 100, "retry_after": 1})
    pool = SenderPool(engine)
    reports = deliver_all(engine, job, pool)
    assert any("throttled" in r.error for r in reports)
    assert backlog(engine, job) == 20
    assert (
        JobControl(engine).shown_state(JobStore(engine.r, engine.keys).get(job.id), False)
        == "sleeping"
    )
    assert JobHealth(engine.r, engine.keys).get(job.id).retry_at > time.time_ns()
    requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
    time.sleep(
        max(0.0, (JobHealth(engine.r, engine.keys).get(job.id).retry_at - time.time_ns()) / 1e9)
    )
    deliver_all(engine, job, pool)
    assert backlog(engine, job) == 0 and len(hub.events()) == 20
    assert JobHealth(engine.r, engine.keys).get(job.id).failures == 0
    pool.close()


def test_unauthorized_fails_the_job_keeps_the_backlog_and_resume_sends_it(
    engine: Engine, hub: HubEmulator
) -> None:
    job = setup(engine, hub, 10)
    faults(hub, {"status": 401, "count": 1})
    pool = SenderPool(engine)
    deliver_all(engine, job, pool)
    failed = JobStore(engine.r, engine.keys).get(job.id)
    assert failed.state == "failed" and failed.reason.startswith("authorization rejected")
    # Partitions the hub accepted before the refusal are acked; nothing else left the outbox.
    accepted = len(hub.events())
    assert backlog(engine, job) + accepted == 10 and backlog(engine, job) > 0
    deliver_all(engine, job, pool)  # a failed job does not send
    assert len(hub.events()) == accepted
    JobControl(engine).resume(job.id)
    deliver_all(engine, job, pool)
    assert {e["partition_key"] for e in hub.events()} == {f"u{i:04d}" for i in range(10)}
    assert backlog(engine, job) == 0
    pool.close()


def test_errors_longer_than_the_failure_period_fail_the_job(
    engine: Engine, hub: HubEmulator
) -> None:
    job = setup(engine, hub, 3, failure_period_s=1)
    faults(hub, {"status": 500})
    pool = SenderPool(engine)
    health = JobHealth(engine.r, engine.keys)
    deadline = time.monotonic() + 20
    while JobStore(engine.r, engine.keys).get(job.id).state != "failed":
        assert time.monotonic() < deadline, "the job never failed"
        engine.r.hset(engine.keys.job_health(job.id), "retry_at", 0)  # skip the backoff wait
        deliver_all(engine, job, pool)
        time.sleep(0.3)
    assert "longer than 1s" in JobStore(engine.r, engine.keys).get(job.id).reason
    assert health.get(job.id).failures >= 2
    assert backlog(engine, job) == 3
    pool.close()


def test_a_message_too_large_for_the_hub_is_dead_lettered_and_the_rest_sent(
    engine: Engine, small_hub: HubEmulator
) -> None:
    AudienceStore(engine.r, engine.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", small_hub.connection_string)
    job = create_job(engine, "j", auth.id, ["all"], fields=("user_id", "email", "bio"))
    events = [{"user_id": f"s{i}", "email": "a@b.c"} for i in range(6)]
    events[3]["bio"] = "x" * 6000  # bigger than the 4 KB hub on its own
    Ingestor(engine).ingest(list_items(events))
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)
    pool = SenderPool(engine)
    reports = deliver_all(engine, job, pool)
    assert sum(r.dead for r in reports) == 1
    assert sorted(e["partition_key"] for e in small_hub.events()) == ["s0", "s1", "s2", "s4", "s5"]
    dead = DeadLetters(engine).entries(job.id)
    assert [d.user_id for d in dead] == ["s3"]
    assert "413" in dead[0].reason
    assert backlog(engine, job) == 0
    pool.close()


def test_dead_letters_replay_into_the_outbox(engine: Engine, hub: HubEmulator) -> None:
    job = setup(engine, hub, 2)
    faults(hub, {"status": 400, "message": "InvalidProperty: the body said more than this"})
    pool = SenderPool(engine)
    deliver_all(engine, job, pool)
    letters = DeadLetters(engine)
    dead = letters.entries(job.id)
    assert sorted(d.user_id for d in dead) == ["u0000", "u0001"]
    assert all("400 Bad Request (InvalidProperty)" in d.reason for d in dead)
    assert not any("said more" in d.reason for d in dead)  # the status and code, no body
    assert backlog(engine, job) == 0 and hub.events() == []
    requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
    assert letters.replay(job.id, [dead[0].id]) == 1
    deliver_all(engine, job, pool)
    assert [e["partition_key"] for e in hub.events()] == [dead[0].user_id]
    assert letters.replay(job.id) == 1
    deliver_all(engine, job, pool)
    assert sorted(e["partition_key"] for e in hub.events()) == ["u0000", "u0001"]
    assert letters.count(job.id) == 0
    pool.close()


def test_rounds_read_ahead_keep_each_users_order_through_a_refusal(
    engine: Engine, hub: HubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next round is read while one is out; a round the hub partly refuses drops it, so
    every user's messages still arrive whole and in outbox order (small rounds: many of them)."""
    monkeypatch.setattr(deliver_module, "READ_COUNT", 30)
    monkeypatch.setattr(deliver_module, "READ_PER_PARTITION", 5)
    AudienceStore(engine.r, engine.keys).create("in", "FILTER n >= 1")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    job = create_job(engine, "j", auth.id, ["in"])
    drainer = ShardDrainer(engine)
    for n in (1, 0, 1, 0, 1):  # enter, exit, enter, exit, enter: five messages a user
        Ingestor(engine).ingest(list_items([{"user_id": f"u{i:03d}", "n": n} for i in range(80)]))
        for shard in range(engine.cfg.shards):
            drainer.drain(shard)
    faults(hub, {"status": 503, "count": 2, "skip": 6, "retry_after": 1})
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    deadline = time.monotonic() + 60
    while deliverer.backlog(job.id) and time.monotonic() < deadline:
        JobHealth(engine.r, engine.keys).clear(job.id)  # no backoff wait in a test
        deliverer.deliver(job.id, budget_s=5)
    pool.close()
    assert not deliverer.backlog(job.id)
    stats = requests.get(f"{hub.base_url}/_emulator/stats", timeout=5).json()
    assert sum(stats["faults_fired"].values()) == 2, "the hub refused two requests midway"
    seen: dict[str, list[str]] = {}
    keys: set[str] = set()
    for event in hub.events():
        key = event["user_properties"]["idempotency_key"]
        if key in keys:  # a re-send (at least once): the consumer drops it by its key
            continue
        keys.add(key)
        data = orjson.loads(event["body"])["data"]
        seen.setdefault(data["user_id"], []).append(data["segment_events"][0]["event"])
    want = ["enter", "exit", "enter", "exit", "enter"]
    wrong = {u: got for u, got in seen.items() if got != want}
    assert len(seen) == 80 and not wrong, f"out of order or missing: {wrong}"


def test_small_rounds_are_spaced_by_the_linger_and_full_ones_are_not(
    engine: Engine, hub: HubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a round of fewer than LINGER_BELOW messages the deliverer waits LINGER_S before the
    next (a round's fixed cost, paid for a few dozen, spun a core at moderate rates)."""
    monkeypatch.setattr(deliver_module, "READ_COUNT", 30)
    monkeypatch.setattr(deliver_module, "READ_PER_PARTITION", 5)
    AudienceStore(engine.r, engine.keys).create("in", "FILTER n >= 1")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    job = create_job(engine, "j", auth.id, ["in"])
    # 300 users of one shard: a round reads 50 of them (its least from a busy shard), a small one.
    users = [u for u in (f"u{i:05d}" for i in range(20_000)) if shard_of(u, engine.cfg.shards) == 0]
    Ingestor(engine).ingest(list_items([{"user_id": u, "n": 1} for u in users[:300]]))
    ShardDrainer(engine).drain(0)
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    monkeypatch.setattr(deliver_module, "LINGER_S", 0.25)
    sent = deliverer.deliver(job.id, budget_s=0.6).sent
    assert 0 < sent <= 4 * 50, f"rounds 0.25 s apart fit a few in 0.6 s, not all 300: {sent}"
    monkeypatch.setattr(deliver_module, "LINGER_BELOW", 1)  # every round counts as full
    rest = deliverer.backlog(job.id)
    assert deliverer.deliver(job.id, budget_s=30).sent == rest, "full rounds follow at once"
    pool.close()
    deliverer.close()


def test_a_job_with_failures_on_record_reads_nothing_ahead(
    engine: Engine, hub: HubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliverer that starts with failures on record sends round by round: its rounds are often
    refused, and a refused round throws away what was read ahead. Once a round succeeds the
    record is cleared, and the next task reads ahead again."""
    monkeypatch.setattr(deliver_module, "READ_COUNT", 30)
    monkeypatch.setattr(deliver_module, "READ_PER_PARTITION", 5)
    monkeypatch.setattr(deliver_module, "LINGER_BELOW", 1)  # no linger: every round counts as full
    job = setup(engine, hub, 1000)
    ahead_reads: list[int] = []
    prepare = Deliverer._prepare

    def counting(self: Deliverer, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("after") is not None or len(args) >= 5:  # (job, sender, layout, count, after)
            ahead_reads.append(1)
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Deliverer, "_prepare", counting)
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    faults(hub, {"status": 503, "count": 1})
    assert deliverer.deliver(job.id, budget_s=5).error, "the hub refused the first round"
    ahead_reads.clear()  # that task began with a clean record, so it read ahead (then dropped it)
    health = JobHealth(engine.r, engine.keys)
    assert health.get(job.id).failures == 1
    while health.get(job.id).sleeping(time.time_ns()):
        time.sleep(0.05)
    report = deliverer.deliver(job.id, budget_s=30)
    assert report.sent > 3 * 30 and not backlog(engine, job), f"all sent: {report.sent}"
    assert not ahead_reads, "a job with failures on record read a round ahead"
    assert health.get(job.id).failures == 0, "a success clears the record"
    more = [{"user_id": f"v{i:04d}", "email": f"v{i}@x.io"} for i in range(1000)]
    Ingestor(engine).ingest(list_items(more))
    drainer = ShardDrainer(engine)
    for shard in range(engine.cfg.shards):
        drainer.drain(shard)
    assert deliverer.deliver(job.id, budget_s=30).sent == 1000
    assert ahead_reads, "with a clean record the next task reads ahead again"
    pool.close()
    deliverer.close()
