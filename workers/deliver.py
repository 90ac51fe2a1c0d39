"""Deliver a job's outboxes: pack messages from every shard up to the hub's limit, send, ack.

Records leave an outbox only after the hub accepted them (XTRIM past the last id handled), so a
crash between send and ack re-sends (at-least-once, same idempotency key), never drops. One
deliverer per job at a time (a lease), and a batch built as one run of messages per shard, so any
prefix of a batch is a prefix of each shard's outbox: acks move through every outbox strictly in
order, and each user's messages (all in one shard's outbox) stay in order. A batch that failed is
retried before anything newer for those users is sent.

One deliverer per job, not per (job, shard): at moderate load the shards' outboxes hold a few
messages each, and one batch across all of them costs one request and one task instead of
sixteen (bench/realtime.py). A job's sending is then bounded by one process, about 56k
messages/s over REST here.

What the hub says decides what happens (issue 6's table):

- accepted: ack.
- throttled / transient (429, 503, 500, timeouts, resets): keep, back off (job ``sleeping``).
- too large (413): split and resend the halves; one message still too large is dead-lettered.
- bad request (400): split to find the bad message; dead-letter it with the hub's reason.
- unauthorized (401/403): the job fails (``authorization rejected``); the backlog is kept.
- errors for longer than the job's failure period: the job fails with the last reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers import faults
from workers.auths import AuthStore
from workers.commit import next_stream_id
from workers.engine import Engine
from workers.eventhub.rest import RestSender
from workers.eventhub.sender import HubError, OutMessage, Sender
from workers.job_control import JobControl
from workers.job_health import JobHealth
from workers.job_status import count_sent
from workers.jobs import Job
from workers.lease import Lease
from workers.redisconn import stream_rows
from workers.secrets import SecretUnreadable

LEASE_MS = 15_000
log = logging.getLogger("audiencehub.deliver")
READ_COUNT = 2400
"""Messages read per round across all outboxes: a little over a full 1 MB batch."""


@dataclass
class DeliverReport:
    job: str
    sent: int = 0
    batches: int = 0
    dead: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox record on its way: its shard, its stream id and the message."""

    shard: int
    id: str
    message: OutMessage


SenderFactory = Callable[[Job], Sender]


class SenderPool:
    """One sender per authorization, transport and batch limit per process, made on first use."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._senders: dict[tuple[str, str, int], Sender] = {}

    def get(self, job: Job) -> Sender:
        key = (job.auth_id, job.transport, job.max_batch_bytes)
        sender = self._senders.get(key)
        if sender is None:
            e = self._engine
            conn = AuthStore(e.r, e.keys, e.cfg).connection(job.auth_id)
            if job.transport == "amqp":
                from workers.eventhub.amqp import AmqpSender

                sender = AmqpSender(conn, max_batch_bytes=job.max_batch_bytes)
            else:
                sender = RestSender(conn, max_batch_bytes=job.max_batch_bytes)
            self._senders[key] = sender
        return sender

    def close(self) -> None:
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()


class Deliverer:
    def __init__(self, engine: Engine, senders: SenderFactory) -> None:
        self.e = engine
        self._senders = senders
        self.health = JobHealth(engine.r, engine.keys)
        self._rotation = 0

    def deliver(self, job_id: str, budget_s: float = 0.5) -> DeliverReport:
        e = self.e
        report = DeliverReport(job_id)
        deadline = time.monotonic() + budget_s
        while True:
            job = e.registry.get().jobs.get(job_id)
            if job is None or job.state != "running":
                e.r.delete(e.keys.deliver_kick(job_id))
                return report
            if self.health.get(job_id).sleeping(time.time_ns()):
                e.r.delete(e.keys.deliver_kick(job_id))
                return report  # beat's sweep kicks us again once the next attempt is due
            lease = Lease(e.r, e.keys.deliver_lease(job_id), LEASE_MS)
            if not lease.acquire():
                e.r.delete(e.keys.deliver_kick(job_id))
                return report  # the holder checks for more after it lets go
            try:
                try:
                    sender = self._senders(job)
                except SecretUnreadable as exc:
                    self._unreadable(job, exc, report)
                    return report
                while time.monotonic() < deadline and not report.error:
                    if not self._round(job, sender, report):
                        break
                    lease.extend()
            finally:
                lease.release()
            # Cleared only now (see ShardDrainer.drain): no task piles up behind a running one.
            e.r.delete(e.keys.deliver_kick(job_id))
            if report.error or not self.backlog(job_id):
                return report
            if time.monotonic() >= deadline:
                e.kicker.delivers([job_id])
                return report

    def backlog(self, job_id: str) -> int:
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            pipe.xlen(e.keys.outbox(shard, job_id))
        return int(sum(pipe.execute()))

    def _read(self, job: Job) -> list[Pending]:
        """One batch: a run of messages from each non-empty outbox, in shard order."""
        e = self.e
        shards = e.cfg.shards
        pipe = e.r.pipeline(transaction=False)
        for shard in range(shards):
            pipe.xlen(e.keys.outbox(shard, job.id))
        lengths = pipe.execute()
        # Start at a different shard each round, so a big outbox cannot starve the others.
        self._rotation = (self._rotation + 1) % shards
        busy = [(s + self._rotation) % shards for s in range(shards)]
        busy = [s for s in busy if lengths[s]]
        if not busy:
            return []
        each = max(50, -(-READ_COUNT // len(busy)))
        pipe = e.r.pipeline(transaction=False)
        for shard in busy:
            pipe.xrange(e.keys.outbox(shard, job.id), count=each)
        batch: list[Pending] = []
        for shard, rows in zip(busy, pipe.execute(), strict=True):
            for entry_id, f in stream_rows(rows):
                message = OutMessage(f[b"b"], f[b"u"].decode(), f[b"k"].decode())
                batch.append(Pending(shard, entry_id.decode(), message))
        return batch

    def _round(self, job: Job, sender: Sender, report: DeliverReport) -> bool:
        """Send one batch; False when every outbox is empty or an error stopped sending."""
        read = self._read(job)
        if not read:
            return False
        batch: list[Pending] = []
        size = 2
        for pending in read:
            item = sender.encoded_size(pending.message)
            if item + 2 > sender.max_batch_bytes:
                if batch:
                    break  # send what precedes it first, in order
                self._dead_letter(job, [pending], f"message is {item:,} bytes; "
                                  f"the hub takes at most {sender.max_batch_bytes:,} per batch")  # fmt: skip
                report.dead += 1
                return True
            if batch and size + item > sender.max_batch_bytes:
                break
            batch.append(pending)
            size += item
        return self._send(job, sender, batch, report)

    def _send(self, job: Job, sender: Sender, batch: list[Pending], report: DeliverReport) -> bool:
        e = self.e
        try:
            sender.send([p.message for p in batch])
        except HubError as err:
            if err.kind in ("too_large", "bad_request"):
                if len(batch) == 1:
                    self._dead_letter(job, batch, str(err))
                    report.dead += 1
                    return True
                half = len(batch) // 2
                return self._send(job, sender, batch[:half], report) and self._send(
                    job, sender, batch[half:], report
                )
            self._failed(job, err, report, len(batch))
            return False
        faults.fire(e.cfg, e.r, "deliver.after_send")
        pipe = e.r.pipeline(transaction=False)
        self._ack(job, batch, pipe)
        pipe.hincrby(e.keys.job_stats(job.id), "sent", len(batch))
        pipe.hset(e.keys.job_stats(job.id), "last_sent_at", time.time_ns())
        count_sent(e, job.id, len(batch), pipe)
        pipe.hincrby(e.keys.metrics, f"messages_sent|{job.id}", len(batch))
        pipe.execute()
        if report.sent == 0 and report.batches == 0:
            self.health.clear(job.id)
        report.sent += len(batch)
        report.batches += 1
        return True

    def _ack(self, job: Job, handled: list[Pending], pipe: Any) -> None:
        """Trim each outbox past the last of its messages in ``handled`` (a prefix of it)."""
        last: dict[int, str] = {}
        for p in handled:
            last[p.shard] = p.id
        for shard, entry_id in last.items():
            pipe.xtrim(
                self.e.keys.outbox(shard, job.id), minid=next_stream_id(entry_id), approximate=False
            )

    def _failed(self, job: Job, err: HubError, report: DeliverReport, messages: int) -> None:
        report.error = str(err)
        self.e.r.hincrby(self.e.keys.metrics, f"messages_failed|{job.id}|{err.kind}", messages)
        log.warning(
            "send failed: %s", err, extra={"job": job.id, "kind": err.kind, "status": err.status}
        )
        now = time.time_ns()
        if err.kind == "unauthorized":
            self.health.note_error(job.id, err, now)
            JobControl(self.e).fail(job.id, f"authorization rejected ({err})")
            log.error("job failed: authorization rejected", extra={"job": job.id})
            return
        _, expired = self.health.failed(job, err, now)
        if expired:
            JobControl(self.e).fail(
                job.id, f"hub errors for longer than {job.failure_period_s}s; last: {err}"
            )
            log.error("job failed: errors outlasted the failure period", extra={"job": job.id})

    def _unreadable(self, job: Job, exc: SecretUnreadable, report: DeliverReport) -> None:
        """The authorization opens with none of the configured keys: nothing can be sent until
        an operator fixes the keys, so the job fails with the reason (backlog kept) instead of
        looking ``running`` while its outbox grows."""
        report.error = str(exc)
        JobControl(self.e).fail(job.id, str(exc))
        log.error("job failed: its authorization cannot be decrypted", extra={"job": job.id})

    def _dead_letter(self, job: Job, batch: list[Pending], reason: str) -> None:
        """Move refused messages to the job's dead letters (with the reason), then ack them.

        Written before the ack: a crash in between leaves the message in both places, and a
        replay would re-send it at most once more (at-least-once, never lost).
        """
        e = self.e
        now = time.time_ns()
        log.warning("dead-lettered %d message(s): %s", len(batch), reason, extra={"job": job.id})
        pipe = e.r.pipeline(transaction=False)
        for p in batch:
            pipe.xadd(
                e.keys.job_dead(job.id),
                {"u": p.message.partition_key, "k": p.message.idempotency_key,
                 "b": p.message.body, "reason": reason, "at": now, "shard": p.shard},
            )  # fmt: skip
        self._ack(job, batch, pipe)
        pipe.hincrby(e.keys.job_stats(job.id), "dead_lettered", len(batch))
        pipe.hincrby(e.keys.metrics, f"dead_letters|{job.id}", len(batch))
        pipe.execute()
