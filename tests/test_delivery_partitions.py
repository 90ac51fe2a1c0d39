"""REST delivery per partition against the strict stand-in over real sockets: one partition per
request, each user on the partition the service's hash gives, in order, batches no smaller than
they must be; the partition count learned, refreshed, set by hand, or unknown (one user per
request). The deliverer runs in-process; Redis and the hub are real."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from audiencehub.processes import HubEmulator
from workers.audiences.store import AudienceStore
from workers.delivery.deliver import Deliverer, DeliverReport, SenderPool
from workers.delivery.eventhub.partitions import partition_for_key, partition_key_for
from workers.delivery.eventhub.rest import encode_item
from workers.delivery.eventhub.sender import OutMessage
from workers.delivery.hub_partitions import PER_PARTITION, PER_USER, HubPartitions
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.setup import check_authorization, create_job
from workers.jobs.status import job_status
from workers.jobs.store import Job
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items


def _hub(workdir: Path, *extra: str) -> Iterator[HubEmulator]:
    emulator = HubEmulator(workdir, extra=list(extra))
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def hub32(workdir: Path) -> Iterator[HubEmulator]:
    yield from _hub(workdir, "--partitions", "32")


@pytest.fixture
def rest_only_hub(workdir: Path) -> Iterator[HubEmulator]:
    """A hub whose management call cannot be made (no AMQP), as behind a firewall that lets
    only HTTPS through."""
    yield from _hub(workdir, "--partitions", "8", "--no-amqp")


def ids(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def make_job(engine: Engine, hub: HubEmulator, partitions: int | None = None, **kw: Any) -> Job:
    store = AudienceStore(engine.r, engine.keys)
    store.create("high", "FILTER score > 5")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create(
        "hub", hub.connection_string, partitions=partitions
    )
    return create_job(engine, "j", auth.id, ["high"], **kw)


def enter_and_exit(engine: Engine, users: list[str], leaving: list[str] | None = None) -> None:
    """A message per user (enter), and a second (exit) for ``leaving`` (default: everyone), so
    per-user order can be checked."""
    leaving = users if leaving is None else leaving
    events = [{"user_id": u, "score": 10} for u in users]
    events += [{"user_id": u, "score": 1} for u in leaving]
    for start in range(0, len(events), 5_000):  # one write takes at most 10,000 events
        Ingestor(engine).ingest(list_items(events[start : start + 5_000]))
    drainer = ShardDrainer(engine)
    for shard in range(engine.cfg.shards):
        while drainer.drain(shard, budget_s=5).more:
            pass


def deliver_all(engine: Engine, job: Job) -> DeliverReport:
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    total = DeliverReport(job.id)
    try:
        while True:
            report = deliverer.deliver(job.id, budget_s=30)
            for name in ("sent", "batches", "dead", "rounds"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.error = report.error
            if report.error or not deliverer.backlog(job.id):
                return total
    finally:
        deliverer.close()
        pool.close()


def by_request(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        out[event["request"]].append(event)
    return out


def check_users(
    events: list[dict[str, Any]],
    users: list[str],
    partition_ids: list[str],
    leaving: list[str] | None = None,
) -> None:
    """Every user on the partition the service's hash gives; exactly enter, then exit if it left
    (default: every user left)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for event in events:  # readback order is arrival order
        body = orjson.loads(event["body"])
        user = body["data"]["user_id"]
        assert event["partition_key"] == partition_key_for(user)
        assert event["partition_id"] == partition_for_key(partition_key_for(user), partition_ids)
        seen[user].append(body["data"]["segment_events"][0]["event"])
    left = set(users if leaving is None else leaving)
    assert seen == {u: ["enter", "exit"] if u in left else ["enter"] for u in users}


def test_10000_users_over_32_partitions_one_partition_per_request_in_order_and_full(
    engine: Engine, hub32: HubEmulator
) -> None:
    users = [f"user-{i:05d}" for i in range(10_000)]
    leaving = users[::4]
    job = make_job(engine, hub32)
    enter_and_exit(engine, users, leaving)
    report = deliver_all(engine, job)
    assert (report.sent, report.dead, report.error) == (12_500, 0, "")
    events = hub32.events()
    assert len(events) == 12_500
    check_users(events, users, ids(32), leaving)
    requests_ = by_request(events)
    assert all(len({e["partition_id"] for e in evs}) == 1 for evs in requests_.values())
    assert len(requests_) == report.batches
    # Nothing split needlessly: no partition's round is near the 1 MB limit, so each round sends
    # each partition at most one request.
    per_partition = Counter(evs[0]["partition_id"] for evs in requests_.values())
    assert max(per_partition.values()) <= report.rounds
    assert len(requests_) <= 32 * report.rounds
    stats = requests.get(f"{hub32.base_url}/_emulator/stats", timeout=5).json()
    assert stats["requests"]["rest"]["by_status"] == {"201": report.batches}
    assert stats["hubs"]["audiences"]["key_partition_mismatches"] == 0
    shown = job_status(engine, job, {})
    assert shown["partitions"]["mode"] == PER_PARTITION and shown["partitions"]["count"] == 32


def test_a_partition_bigger_than_the_limit_splits_only_where_it_must(
    engine: Engine, hub: HubEmulator
) -> None:
    users = [f"u{i:03d}" for i in range(300)]
    limit = 20_000
    job = make_job(engine, hub, max_batch_bytes=limit)
    enter_and_exit(engine, users)
    report = deliver_all(engine, job)
    events = hub.events()
    check_users(events, users, ids(4))
    biggest = (
        max(
            len(encode_item(OutMessage(e["body"].encode(), e["partition_key"], "k" * 32)))
            for e in events
        )
        + 1
    )
    for pid in ids(4):
        mine = [evs for evs in by_request(events).values() if evs[0]["partition_id"] == pid]
        size = sum(
            len(
                encode_item(
                    OutMessage(
                        e["body"].encode(),
                        e["partition_key"],
                        e["user_properties"]["idempotency_key"],
                    )
                )
            )
            + 1
            for evs in mine
            for e in evs
        )
        # Each round's requests to a partition are full but for its last one.
        assert len(mine) <= report.rounds + size // (limit - 2 - biggest)
        assert all(
            sum(
                len(
                    encode_item(
                        OutMessage(
                            e["body"].encode(),
                            e["partition_key"],
                            e["user_properties"]["idempotency_key"],
                        )
                    )
                )
                + 1
                for e in evs
            )
            + 1
            <= limit
            for evs in mine
        )


def test_unknown_partition_count_sends_one_user_per_request_and_stays_correct(
    engine: Engine, rest_only_hub: HubEmulator
) -> None:
    users = [f"v{i:03d}" for i in range(60)]
    job = make_job(engine, rest_only_hub)
    enter_and_exit(engine, users)
    report = deliver_all(engine, job)
    assert (report.sent, report.error) == (120, "")
    events = rest_only_hub.events()
    check_users(events, users, ids(8))
    requests_ = by_request(events)
    assert all(len({e["partition_key"] for e in evs}) == 1 for evs in requests_.values())
    assert len(requests_) == 60  # a user's enter and exit share its one request
    shown = job_status(engine, job, {})["partitions"]
    assert shown["mode"] == PER_USER and "needs AMQP" in shown["last_failure"]
    ok, detail = check_authorization(engine, job.auth_id)
    assert not ok and "management call" in detail


def test_partitions_set_by_hand_are_used_without_asking_the_hub(
    engine: Engine, rest_only_hub: HubEmulator
) -> None:
    users = [f"w{i:03d}" for i in range(200)]
    job = make_job(engine, rest_only_hub, partitions=8)
    enter_and_exit(engine, users)
    report = deliver_all(engine, job)
    events = rest_only_hub.events()
    check_users(events, users, ids(8))
    assert len(by_request(events)) == report.batches <= 8 * report.rounds
    shown = job_status(engine, job, {})["partitions"]
    assert (shown["mode"], shown["count"]) == (PER_PARTITION, 8)
    assert shown["source"] == "set by auth create --partitions"


def test_partitions_added_to_the_hub_are_followed_after_the_refresh(
    engine: Engine, hub: HubEmulator
) -> None:
    job = make_job(engine, hub)
    enter_and_exit(engine, [f"x{i}" for i in range(50)])
    deliver_all(engine, job)
    known = HubPartitions(engine.r, engine.keys)
    auth = AuthStore(engine.r, engine.keys, engine.cfg).get(job.auth_id)
    assert known.layout(auth).ids == tuple(ids(4))
    grown = requests.put(
        f"{hub.base_url}/_emulator/hubs/audiences", params={"partitions": 8}, timeout=5
    )
    assert grown.json()["partition_count"] == 8
    requests.delete(f"{hub.base_url}/_emulator/events", timeout=5)
    later = [f"y{i}" for i in range(50)]
    enter_and_exit(engine, later)
    # Within the refresh period the job still routes over 4 (the hub takes them where posted):
    # each user stays on one partition, in order, until the switch.
    deliver_all(engine, job)
    check_users(hub.events(), later, ids(4))
    engine.r.hset(engine.keys.auth_partitions(auth.id), "learned_at", 1)  # the period is over
    requests.delete(f"{hub.base_url}/_emulator/events", timeout=5)
    last = [f"z{i}" for i in range(80)]
    enter_and_exit(engine, last)
    deliver_all(engine, job)
    assert known.layout(auth).ids == tuple(ids(8))
    check_users(hub.events(), last, ids(8))
    assert len({e["partition_id"] for e in hub.events()}) > 4


def test_a_user_id_longer_than_a_partition_key_gets_a_stable_shorter_key(
    engine: Engine, hub: HubEmulator
) -> None:
    long_id = "L" * 200
    job = make_job(engine, hub)
    enter_and_exit(engine, [long_id, "short"])
    deliver_all(engine, job)
    events = hub.events()
    check_users(events, [long_id, "short"], ids(4))
    key = partition_key_for(long_id)
    assert len(key) <= 128 and key == partition_key_for(long_id) and key.startswith("L" * 64 + "~")
    assert partition_key_for("😀" * 65) != partition_key_for("😀" * 66)
    assert all(
        len(partition_key_for("😀" * n).encode("utf-16-le")) // 2 <= 128 for n in (64, 65, 200)
    )
    assert shard_of(long_id, engine.cfg.shards) >= 0
