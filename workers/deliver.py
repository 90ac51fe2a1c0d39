"""Deliver a job's outbox for one shard: pack messages up to the hub's limit, send, then ack.

Records leave the outbox only after the hub accepted them (XTRIM past the last id handled), so a
crash between send and ack re-sends (at-least-once, same idempotency key), never drops. One
deliverer per (job, shard) at a time and acks in outbox order keep each user's messages in order:
a batch that failed is retried before anything newer for those users is sent.

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

LEASE_MS = 15_000
log = logging.getLogger("audiencehub.deliver")
READ_COUNT = 2000


@dataclass
class DeliverReport:
    job: str
    shard: int
    sent: int = 0
    batches: int = 0
    dead: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox record on its way: its stream id and the message."""

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

    def deliver(self, job_id: str, shard: int, budget_s: float = 0.5) -> DeliverReport:
        e = self.e
        report = DeliverReport(job_id, shard)
        e.r.delete(e.keys.deliver_kick(shard, job_id))
        deadline = time.monotonic() + budget_s
        outbox = e.keys.outbox(shard, job_id)
        while True:
            job = e.registry.get().jobs.get(job_id)
            if job is None or job.state != "running":
                return report
            if self.health.get(job_id).sleeping(time.time_ns()):
                return report  # beat's sweep kicks us again once the next attempt is due
            lease = Lease(e.r, e.keys.deliver_lease(shard, job_id), LEASE_MS)
            if not lease.acquire():
                return report
            try:
                sender = self._senders(job)
                while time.monotonic() < deadline and not report.error:
                    if not self._round(job, shard, outbox, sender, report):
                        break
                    lease.extend()
            finally:
                lease.release()
            if report.error or not e.r.xlen(outbox):
                return report
            if time.monotonic() >= deadline:
                e.kicker.delivers([(job_id, shard)])
                return report

    def _round(
        self, job: Job, shard: int, outbox: str, sender: Sender, report: DeliverReport
    ) -> bool:
        """Send one batch read from the outbox; False when empty or stopped by an error."""
        e = self.e
        rows = stream_rows(e.r.xrange(outbox, min="-", max="+", count=READ_COUNT))
        if not rows:
            return False
        batch: list[Pending] = []
        size = 2
        for entry_id, f in rows:
            pending = Pending(
                entry_id.decode(), OutMessage(f[b"b"], f[b"u"].decode(), f[b"k"].decode())
            )
            item = sender.encoded_size(pending.message)
            if item + 2 > sender.max_batch_bytes:
                if batch:
                    break  # send what precedes it first, in order
                self._dead_letter(job, shard, outbox, [pending], f"message is {item:,} bytes; "
                                  f"the hub takes at most {sender.max_batch_bytes:,} per batch")  # fmt: skip
                report.dead += 1
                return True
            if batch and size + item > sender.max_batch_bytes:
                break
            batch.append(pending)
            size += item
        return self._send(job, shard, outbox, sender, batch, report)

    def _send(
        self,
        job: Job,
        shard: int,
        outbox: str,
        sender: Sender,
        batch: list[Pending],
        report: DeliverReport,
    ) -> bool:
        e = self.e
        try:
            sender.send([p.message for p in batch])
        except HubError as err:
            if err.kind in ("too_large", "bad_request"):
                if len(batch) == 1:
                    self._dead_letter(job, shard, outbox, batch, str(err))
                    report.dead += 1
                    return True
                half = len(batch) // 2
                return self._send(job, shard, outbox, sender, batch[:half], report) and self._send(
                    job, shard, outbox, sender, batch[half:], report
                )
            self._failed(job, err, report, len(batch))
            return False
        faults.fire(e.cfg, e.r, "deliver.after_send")
        now = time.time_ns()
        pipe = e.r.pipeline(transaction=False)
        pipe.xtrim(outbox, minid=next_stream_id(batch[-1].id), approximate=False)
        pipe.hincrby(e.keys.job_stats(job.id), "sent", len(batch))
        pipe.hset(e.keys.job_stats(job.id), "last_sent_at", now)
        count_sent(e, job.id, len(batch), pipe)
        pipe.hincrby(e.keys.metrics, f"messages_sent|{job.id}", len(batch))
        pipe.execute()
        if report.sent == 0 and report.batches == 0:
            self.health.clear(job.id)
        report.sent += len(batch)
        report.batches += 1
        return True

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

    def _dead_letter(
        self, job: Job, shard: int, outbox: str, batch: list[Pending], reason: str
    ) -> None:
        """Move refused messages to the job's dead letters (with the reason), then ack them.

        Written before the ack: a crash in between leaves the message in both places, and a
        replay would re-send it at most once more (at-least-once, never lost).
        """
        e = self.e
        now = time.time_ns()
        log.warning(
            "dead-lettered %d message(s): %s",
            len(batch),
            reason,
            extra={"job": job.id, "shard": shard},
        )
        pipe = e.r.pipeline(transaction=False)
        for p in batch:
            pipe.xadd(
                e.keys.job_dead(job.id),
                {"u": p.message.partition_key, "k": p.message.idempotency_key,
                 "b": p.message.body, "reason": reason, "at": now, "shard": shard},
            )  # fmt: skip
        pipe.xtrim(outbox, minid=next_stream_id(batch[-1].id), approximate=False)
        pipe.hincrby(e.keys.job_stats(job.id), "dead_lettered", len(batch))
        pipe.hincrby(e.keys.metrics, f"dead_letters|{job.id}", len(batch))
        pipe.execute()
