"""Every row of docs/delivery.md's "When the hub says no" table, against the stand-in over real
sockets: what the hub answers, and what the job does with it. The deliverer runs in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from audiencehub.processes import HubEmulator
from workers.audiences.store import AudienceStore
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.deliver import Deliverer, DeliverReport, SenderPool
from workers.delivery.eventhub.rest import RestSender, server_timeout_s
from workers.delivery.eventhub.sender import classify_status
from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.control import JobControl
from workers.jobs.health import JobHealth
from workers.jobs.setup import create_job
from workers.jobs.status import job_status
from workers.jobs.store import Job, JobStore
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items

USERS = 10


@pytest.fixture
def hub1(workdir: Path) -> Iterator[HubEmulator]:
    """One partition: every message of a round is one request, so a split is visible."""
    emulator = HubEmulator(workdir, extra=["--partitions", "1"])
    emulator.start()
    yield emulator
    emulator.stop()


def setup(engine: Engine, hub: HubEmulator) -> Job:
    AudienceStore(engine.r, engine.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    job = create_job(engine, "j", auth.id, ["all"])
    events = [{"user_id": f"u{i:02d}", "email": f"u{i}@x.io"} for i in range(USERS)]
    Ingestor(engine).ingest(list_items(events))
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)
    return job


def deliver(engine: Engine, job: Job, rounds: int = 1) -> list[DeliverReport]:
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    try:
        return [deliverer.deliver(job.id, budget_s=5) for _ in range(rounds)]
    finally:
        deliverer.close()
        pool.close()


def plan(hub: HubEmulator, rule: dict[str, Any]) -> None:
    """Only REST sends meet the rule (the job's management call over AMQP does not)."""
    requests.put(
        f"{hub.base_url}/_emulator/faults", json={"face": "rest", **rule}, timeout=5
    ).raise_for_status()


def backlog(engine: Engine, job: Job) -> int:
    return sum(
        int(Outbox(engine.keys, s, job.id).length(engine.r)) for s in range(engine.cfg.shards)
    )


def state(engine: Engine, job: Job) -> dict[str, Any]:
    return job_status(engine, JobStore(engine.r, engine.keys).get(job.id), {})


def test_201_is_accepted_and_acked(engine: Engine, hub1: HubEmulator) -> None:
    job = setup(engine, hub1)
    (report,) = deliver(engine, job)
    assert (report.sent, report.batches, report.error) == (USERS, 1, "")
    assert backlog(engine, job) == 0 and len(hub1.events()) == USERS


@pytest.mark.parametrize(
    ("status", "message", "retry_after"),
    [
        (429, "ServerBusy: slow down", 2),
        (503, "ServerBusy: the request was terminated because the namespace is throttled", 3),
        (403, "QuotaExceeded: the throughput units of the namespace are used up", None),
        (500, "InternalServerError: try again", None),
    ],
    ids=["429", "503", "403-quota", "500"],
)
def test_throttled_and_transient_answers_keep_the_backlog_and_back_off(
    engine: Engine, hub1: HubEmulator, status: int, message: str, retry_after: int | None
) -> None:
    job = setup(engine, hub1)
    rule: dict[str, Any] = {"status": status, "message": message}
    if retry_after:
        rule["retry_after"] = retry_after
    plan(hub1, rule)
    before = time.time_ns()
    (report,) = deliver(engine, job)
    assert str(status) in report.error
    assert backlog(engine, job) == USERS and hub1.events() == []
    shown = state(engine, job)
    assert shown["state"] == "sleeping"
    health = JobHealth(engine.r, engine.keys).get(job.id)
    if retry_after:
        assert health.retry_at >= before + retry_after * 1_000_000_000
    code = message.split(":")[0]
    assert f": {status} " in shown["last_error"]["reason"]
    assert shown["last_error"]["reason"].endswith(f"({code})")
    assert "slow down" not in str(shown) and "used up" not in str(shown)  # only status and code


@pytest.mark.parametrize(
    ("status", "message"),
    [(413, "MessageSizeExceeded: too big"), (403, "MessageSizeExceeded: The message is too large")],
    ids=["413", "403-too-large"],
)
def test_too_large_splits_the_batch_and_sends_the_halves(
    engine: Engine, hub1: HubEmulator, status: int, message: str
) -> None:
    job = setup(engine, hub1)
    plan(hub1, {"status": status, "message": message, "count": 1})
    (report,) = deliver(engine, job)
    assert (report.sent, report.dead, report.error) == (USERS, 0, "")
    assert report.batches == 2  # the refused batch, in two halves
    assert backlog(engine, job) == 0 and len(hub1.events()) == USERS


def test_400_dead_letters_the_bad_message_with_status_and_code_and_sends_the_rest(
    engine: Engine, hub1: HubEmulator
) -> None:
    job = setup(engine, hub1)
    # The batch (10), its first half (5), that half's (2), then one message: dead-lettered.
    plan(hub1, {"status": 400, "message": "InvalidProperty: <p>internal detail</p>", "count": 4})
    (report,) = deliver(engine, job)
    assert (report.dead, report.sent) == (1, USERS - 1)
    (dead,) = DeadLetters(engine).entries(job.id)
    assert "400 Bad Request (InvalidProperty)" in dead.reason and "internal" not in dead.reason
    assert backlog(engine, job) == 0


@pytest.mark.parametrize("status", [401, 404, 410])
def test_answers_no_retry_fixes_fail_the_job_at_once_and_keep_the_backlog(
    engine: Engine, hub1: HubEmulator, status: int
) -> None:
    job = setup(engine, hub1)
    plan(hub1, {"status": status, "message": "MessagingEntityNotFound: gone"})
    reports = deliver(engine, job, rounds=2)
    failed = JobStore(engine.r, engine.keys).get(job.id)
    assert failed.state == "failed" and str(status) in failed.reason
    what = "authorization rejected" if status == 401 else "hub refused"
    assert failed.reason.startswith(what)
    assert backlog(engine, job) == USERS
    assert reports[1].error == "" and reports[1].sent == 0  # a failed job sends nothing more
    stats = requests.get(f"{hub1.base_url}/_emulator/stats", timeout=5).json()
    assert stats["rejections"] == {str(status): 1}  # tried once, not retried
    requests.delete(f"{hub1.base_url}/_emulator/faults", timeout=5)
    JobControl(engine).resume(job.id)
    deliver(engine, job)
    assert backlog(engine, job) == 0 and len(hub1.events()) == USERS


def test_the_status_mapping_follows_the_rest_reference() -> None:
    expected = {
        400: "bad_request",
        401: "unauthorized",
        403: "throttled",
        404: "not_found",
        410: "not_found",
        413: "too_large",
        429: "throttled",
        500: "transient",
        503: "throttled",
        301: "redirect",
        307: "redirect",
        308: "redirect",
    }
    assert {status: classify_status(status) for status in expected} == expected
    assert classify_status(403, too_large=True) == "too_large"


def test_the_servers_timeout_is_shorter_than_the_clients(hub: HubEmulator) -> None:
    from workers.delivery.eventhub.connstr import parse_connection_string

    conn = parse_connection_string(hub.connection_string)
    assert "timeout=8&" in RestSender(conn, timeout_s=10).url("0")
    for client in range(3, 300):
        assert 1 <= server_timeout_s(client) < client and server_timeout_s(client) <= 120
    with pytest.raises(ValueError, match="at least 3"):
        RestSender(conn, timeout_s=2)


def test_a_round_that_made_progress_does_not_escalate_the_backoff(
    engine: Engine, hub: HubEmulator
) -> None:
    """With a request per partition, part of a round can be throttled while the rest goes
    through; the backoff must not double round after round while messages keep flowing."""
    job = setup(engine, hub)  # 10 users over 4 partitions: several requests a round
    # The second request is throttled, so the first is already on its way: the round made
    # progress whatever order the threads run in (a throttled first request stops the round
    # before the others start, when the machine is slow enough).
    plan(hub, {"status": 503, "message": "ServerBusy: x", "count": 1, "skip": 1, "retry_after": 0})
    health = JobHealth(engine.r, engine.keys)
    engine.r.hset(engine.keys.job_health(job.id), mapping={"failures": 9, "first_failure_at": 1})
    (report,) = deliver(engine, job)
    assert "503" in report.error and report.sent > 0
    assert health.get(job.id).failures == 1  # progress started the count again
    assert health.get(job.id).first_failure_at > 1  # and the failure period
