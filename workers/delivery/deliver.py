"""Deliver a job's outboxes: group messages by partition, send full batches, ack in order.

Records leave an outbox only after the hub accepted them (XTRIM past the last id handled), so a
crash between send and ack re-sends (at-least-once, same idempotency key), never drops. One
deliverer per job at a time (a lease). A round reads a run of messages from each shard's outbox,
groups them by the partition the service's own hash gives each user's key (one user per group
when the partition count is unknown: ``workers/delivery/hub_partitions.py``), and sends each group as few
publications as the byte limit allows, one partition per publication. Groups go out side by side
(up to the sender's ``concurrency``); a group's publications go one after another, so each
user's messages (one user, one group) arrive in order. The ack removes exactly what the hub
accepted (or refused for good, into dead letters): other partitions' messages are not sent twice
because one partition was refused, and whatever waits keeps its place at the front.

One deliverer per job, not per (job, shard): at moderate load the shards' outboxes hold a few
messages each, and one round across all of them costs one task instead of sixteen
(bench/realtime.py).

What the hub says decides what happens (docs/delivery.md, "When the hub says no"):

- accepted: ack.
- throttled / transient (429, 503, 403 quota, 500, timeouts, resets): keep, back off (``sleeping``).
- too large (413, 403 "too large"): split and resend the halves; one message still too large is
  dead-lettered.
- bad request (400): split to find the bad message; dead-letter it with the status and code.
- unauthorized (401), not found (404, 410), a redirect: the job fails at once with the reason;
  the backlog is kept.
- errors for longer than the job's failure period: the job fails with the last reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from workers import faults
from workers.delivery.dead_letters import add_letter
from workers.delivery.eventhub.connstr import ConnectionStringError
from workers.delivery.eventhub.partitions import (
    MAX_PARTITION_KEY,
    hash_codes,
    partition_key_for,
)
from workers.delivery.eventhub.rest import RestSender
from workers.delivery.eventhub.sender import FATAL_KINDS, HubError, OutMessage, Sender
from workers.delivery.hub_partitions import HubPartitions, PartitionLayout
from workers.delivery.outbox import Outbox, OutboxRecord, record_values
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.control import JobControl
from workers.jobs.health import JobHealth
from workers.jobs.secrets import SecretUnreadable
from workers.jobs.status import count_sent
from workers.jobs.store import Job
from workers.lease import Lease
from workers.loop import LeasedLoop

LEASE_MS = 15_000
log = logging.getLogger("audiencehub.deliver")
READ_COUNT = 2400
"""Messages read per round across all outboxes: a little over a full 1 MB batch."""
READ_PER_PARTITION = 300
"""With many partitions a round reads more, so each partition's publication stays well filled."""
MAX_READ = 16_000
SHORT_KEY = MAX_PARTITION_KEY // 2
"""A user id this short is its own partition key (see partition_key_for)."""
READ_PER_USER_MODE = 400
"""With the partition count unknown every user is a request of its own: smaller rounds."""


@dataclass
class DeliverReport:
    job: str
    sent: int = 0
    batches: int = 0
    dead: int = 0
    error: str = ""
    rounds: int = 0


@dataclass(slots=True)
class Pending:
    """An outbox record on its way: its shard, its stream id, its user and the message. Not
    frozen (never changed once made, all the same): one is made per message read, and a frozen
    dataclass sets each field through ``object.__setattr__``, 3.5x the cost of a plain one."""

    shard: int
    id: str
    user: str
    message: OutMessage


@dataclass
class Group:
    """One partition's (or, with the count unknown, one user's) messages of a round, packed
    into publications no bigger than the sender's limit, sent one after another."""

    partition_id: str | None
    publications: list[list[int]] = field(default_factory=list)
    size: int = 0


@dataclass
class Outcome:
    """What became of a round's messages, by their index in the round."""

    sent: set[int] = field(default_factory=set)
    dead: dict[int, str] = field(default_factory=dict)
    publications: int = 0
    errors: list[HubError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self) -> HubError | None:
        """The error that decides what happens next: one no retry fixes wins."""
        fatal = [e for e in self.errors if e.kind in FATAL_KINDS]
        chosen = fatal or self.errors
        return chosen[0] if chosen else None


@dataclass(frozen=True, slots=True)
class Planned:
    """A round read from the outboxes and planned into groups, ready to send."""

    read: list[Pending]
    outcome: Outcome
    groups: list[Group]
    sender: Sender


LINGER_BELOW = 200
"""A round that sent fewer messages than this is followed by a short wait (LINGER_S) before the
next, within the same task: a round costs a fixed ~2 ms of worker CPU (reading every shard's
outbox length, planning, a request per partition, the acks) however few messages it carries,
and at a moderate rate a deliverer that reads again at once spins through rounds of a few
dozen, spending a core on what a few rounds a second would carry. The wait bounds the round
rate at about 1/LINGER_S while traffic is light; a full round is never delayed."""
LINGER_S = 0.02

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
                from workers.delivery.eventhub.amqp import AmqpSender

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
        self.partitions = HubPartitions(engine.r, engine.keys)
        self._rotation = 0
        self._threads: ThreadPoolExecutor | None = None

    def deliver(self, job_id: str, budget_s: float = 0.5) -> DeliverReport:
        e = self.e
        report = DeliverReport(job_id)

        def prepare() -> tuple[Job, Sender, PartitionLayout] | None:
            job = e.registry.get().jobs.get(job_id)
            if job is None or job.state != "running":
                return None
            health = self.health.get(job_id)
            if health.sleeping(time.time_ns()):
                return None  # beat's sweep kicks us again once the next attempt is due
            # A job whose sends have been failing reads nothing ahead: its rounds are often
            # refused, and a refused round drops what was read for the next (wasted work that
            # the refusal's answer waits behind).
            steady[0] = health.failures == 0
            # Before the lease: asking the hub for its partitions can take seconds, and the
            # lease must never run out while this deliverer still sends.
            ready = self._sender(job, report)
            return None if ready is None else (job, *ready)

        # The next round, read while this one is sent, if another round fits in the budget.
        ahead: list[Planned | None] = [None]
        steady = [True]  # no failures on record when this task began
        deadline = time.monotonic() + budget_s
        took = [0.0]  # the last round's seconds
        small = [False]  # the last round sent fewer than LINGER_BELOW: wait before the next

        def step(ready: tuple[Job, Sender, PartitionLayout], lease: Lease) -> bool:
            job, sender, layout = ready
            if report.error:
                return False
            if small[0] and ahead[0] is None:
                time.sleep(max(0.0, min(LINGER_S, deadline - time.monotonic())))
            began = time.monotonic()
            sent = report.sent
            more, ahead[0] = self._round(
                job,
                sender,
                layout,
                report,
                lease.extend,
                ahead[0],
                read_ahead=lambda: (
                    steady[0] and not small[0] and time.monotonic() + took[0] < deadline
                ),
            )
            took[0] = time.monotonic() - began
            small[0] = report.sent - sent < LINGER_BELOW
            return more

        requeue = lambda: e.kicker.delivers([job_id])  # noqa: E731
        loop = LeasedLoop(
            e.r, e.keys.deliver_lease(job_id), LEASE_MS, e.keys.deliver_kick(job_id), requeue
        )
        try:
            loop.run(
                budget_s, prepare, step, lambda: not report.error and bool(self.backlog(job_id))
            )
        finally:
            if ahead[0] is not None:  # read under a lease now let go: the next holder reads afresh
                self._drop(ahead[0])
                ahead[0] = None
        return report

    def backlog(self, job_id: str) -> int:
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            Outbox(e.keys, shard, job_id).length(pipe)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    # ---- a round ------------------------------------------------------------------------------

    def _sender(self, job: Job, report: DeliverReport) -> tuple[Sender, PartitionLayout] | None:
        """The job's sender and partition layout (learned or refreshed when due), or None after
        failing the job when its authorization cannot be used at all."""
        e = self.e
        try:
            sender = self._senders(job)
            auth = AuthStore(e.r, e.keys, e.cfg).get(job.auth_id)
        except SecretUnreadable as exc:
            self._unreadable(job, exc, report)
            return None
        except ConnectionStringError as exc:
            report.error = f"authorization {job.auth_id} cannot be used: {exc}"
            JobControl(e).fail(job.id, report.error)
            log.error("job failed: authorization unusable", extra={"job": job.id})
            return None
        return sender, self.partitions.current(auth, sender.partition_ids)

    def _read(self, job: Job, count: int, after: dict[int, str] | None = None) -> list[Pending]:
        """One round: a run of messages from each non-empty outbox, in shard order; ``after``:
        per shard, the last stream id of the round being sent (read past it)."""
        e = self.e
        after = after or {}
        shards = e.cfg.shards
        outboxes = [Outbox(e.keys, shard, job.id) for shard in range(shards)]
        pipe = e.r.pipeline(transaction=False)
        for outbox in outboxes:
            outbox.length(pipe)
        lengths = pipe.execute()
        # Start at a different shard each round, so a big outbox cannot starve the others.
        self._rotation = (self._rotation + 1) % shards
        busy = [(s + self._rotation) % shards for s in range(shards)]
        busy = [s for s in busy if lengths[s]]
        if not busy:
            return []
        each = max(50, -(-count // len(busy)))
        pipe = e.r.pipeline(transaction=False)
        for shard in busy:
            outboxes[shard].read(pipe, each, after.get(shard))
        batch: list[Pending] = []
        append = batch.append
        for shard, rows in zip(busy, pipe.execute(), strict=True):
            for entry_id, user, record_key, body in record_values(rows):
                # Short ids are their own key (partition_key_for's first answer), without a call.
                key = user if len(user) <= SHORT_KEY else partition_key_for(user)
                append(Pending(shard, entry_id, user, OutMessage(body, key, record_key)))
        return batch

    @staticmethod
    def _read_count(layout: PartitionLayout) -> int:
        if not layout.ids:
            return READ_PER_USER_MODE
        return min(MAX_READ, max(READ_COUNT, READ_PER_PARTITION * len(layout.ids)))

    def _round(
        self,
        job: Job,
        sender: Sender,
        layout: PartitionLayout,
        report: DeliverReport,
        keep_alive: Callable[[], bool] = lambda: True,
        ahead: Planned | None = None,
        read_ahead: Callable[[], bool] = lambda: True,
    ) -> tuple[bool, Planned | None]:
        """Send one round; False when every outbox is empty or an error stopped sending.
        ``keep_alive`` extends the lease while a round is under way (False: it was lost, so
        no new publication starts).

        Pipelined: while a round's publications are out (the hub busy with them), the next
        round is read and planned from past the last message of each shard in this one, and
        returned to be sent next (``ahead``). It is sent only after this round is settled, and
        only if every message of this one was accepted or dead-lettered, so each user's
        messages still reach the hub in outbox order; anything else drops it (read afresh).
        """
        planned = ahead if ahead is not None else self._prepare(job, sender, layout)
        if planned is None:
            return False, None
        read, outcome, groups = planned.read, planned.outcome, planned.groups
        last: dict[int, str] = {}
        for pending in read:
            last[pending.shard] = pending.id
        count = self._read_count(layout)
        following: list[Planned | None] = [None]

        def meanwhile() -> None:
            if read_ahead():
                following[0] = self._prepare(job, sender, layout, count, last)

        self._send_groups(read, sender, groups, outcome, keep_alive, meanwhile)
        if outcome.sent:
            faults.fire(self.e.cfg, self.e.r, "deliver.after_send")
        self._settle(job, read, outcome, report)
        err = outcome.error()
        whole = len(outcome.sent) + len(outcome.dead) == len(read)
        if following[0] is not None and (err is not None or not whole):
            self._drop(following[0])  # something waits in this round: read afresh after it
            following[0] = None
        if err is not None:
            self._failed(job, err, report, len(read) - len(outcome.sent) - len(outcome.dead))
            return False, None
        return True, following[0]

    @staticmethod
    def _drop(planned: Planned) -> None:
        """A round read ahead that will not be sent: its sender forgets what it kept."""
        planned.sender.forget([p.message for p in planned.read])

    def _prepare(
        self,
        job: Job,
        sender: Sender,
        layout: PartitionLayout,
        count: int | None = None,
        after: dict[int, str] | None = None,
    ) -> Planned | None:
        """A round read and planned; None when there is nothing to send."""
        read = self._read(job, count or self._read_count(layout), after)
        if not read:
            return None
        outcome = Outcome()
        return Planned(read, outcome, self._plan(read, sender, layout, outcome), sender)

    @staticmethod
    def _plan(
        read: list[Pending], sender: Sender, layout: PartitionLayout, outcome: Outcome
    ) -> list[Group]:
        """Group by partition (or user), in read order, packed up to the sender's limit."""
        limit = sender.max_batch_bytes
        ids = layout.ids
        count = len(ids) if ids else 0
        encoded_size = sender.encoded_size
        # The service's hash of every key, the round's keys hashed together (hash_codes).
        hashes = hash_codes([p.message.partition_key for p in read]) if ids else []
        groups: dict[str, Group] = {}
        for index, pending in enumerate(read):
            size = encoded_size(pending.message)
            if size + 2 > limit:
                outcome.dead[index] = (
                    f"message is {size:,} bytes; the hub takes at most {limit:,} per batch"
                )
                continue
            key = pending.message.partition_key
            # partition_for_key, inlined (once per message sent).
            route = ids[abs(hashes[index]) % count] if ids else key
            group = groups.get(route)
            if group is None:
                group = groups[route] = Group(route if ids else None)
            if not group.publications or group.size + size > limit:
                group.publications.append([])
                group.size = 2
            group.publications[-1].append(index)
            group.size += size
        return list(groups.values())

    def _send_groups(
        self,
        read: list[Pending],
        sender: Sender,
        groups: list[Group],
        outcome: Outcome,
        keep_alive: Callable[[], bool],
        meanwhile: Callable[[], None] = lambda: None,
    ) -> None:
        """Send the groups; ``meanwhile`` runs here while they are out, with a sender that takes
        more than one publication at a time (one that does not sends from this thread alone)."""
        stop = threading.Event()
        workers = min(sender.concurrency, len(groups))
        if sender.concurrency <= 1:
            for group in groups:
                self._send_group(read, sender, group, outcome, stop)
                if not keep_alive():
                    stop.set()
            return
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="deliver")
        # Groups are queued in turn on ``workers`` lanes: at most that many requests in flight.
        lanes = [groups[i::workers] for i in range(workers)]
        pending = {
            self._threads.submit(self._send_lane, read, sender, lane, outcome, stop)
            for lane in lanes
        }
        try:
            meanwhile()
        finally:
            while pending:
                done, pending = wait(pending, timeout=LEASE_MS / 3000)
                for future in done:
                    future.result()
                if pending and not keep_alive():
                    stop.set()  # another deliverer may hold the job now: start nothing new

    def _send_lane(
        self,
        read: list[Pending],
        sender: Sender,
        lane: list[Group],
        outcome: Outcome,
        stop: threading.Event,
    ) -> None:
        for group in lane:
            self._send_group(read, sender, group, outcome, stop)

    def _send_group(
        self,
        read: list[Pending],
        sender: Sender,
        group: Group,
        outcome: Outcome,
        stop: threading.Event,
    ) -> None:
        for publication in group.publications:
            if stop.is_set() or not self._publish(read, sender, group, publication, outcome):
                stop.set()
                return

    def _publish(
        self,
        read: list[Pending],
        sender: Sender,
        group: Group,
        indexes: list[int],
        outcome: Outcome,
    ) -> bool:
        """Send one publication; a refused one is split to find the message at fault.
        False when an error stops the round."""
        try:
            sender.send([read[i].message for i in indexes], group.partition_id)
        except HubError as err:
            if err.kind in ("too_large", "bad_request"):
                if len(indexes) == 1:
                    with outcome.lock:
                        outcome.dead[indexes[0]] = str(err)
                    return True
                half = len(indexes) // 2
                return self._publish(read, sender, group, indexes[:half], outcome) and (
                    self._publish(read, sender, group, indexes[half:], outcome)
                )
            with outcome.lock:
                outcome.errors.append(err)
            return False
        with outcome.lock:
            outcome.sent.update(indexes)
            outcome.publications += 1
        return True

    def _settle(
        self, job: Job, read: list[Pending], outcome: Outcome, report: DeliverReport
    ) -> None:
        """Remove from the outboxes exactly what the hub accepted or refused for good: per shard
        the longest done prefix is trimmed (XTRIM), anything done after a message still waiting
        is deleted by id (XDEL), so nothing accepted is sent twice. A user's messages are one
        group sent in order, so whatever waits for that user waits whole. Dead letters are
        written first (a crash between leaves a letter and its message, which is refused again:
        at-least-once, never lost)."""
        e = self.e
        blocked: set[int] = set()
        last: dict[int, str] = {}
        loose: dict[int, list[str]] = {}
        sent = 0
        dead: list[tuple[Pending, str]] = []
        for index, pending in enumerate(read):
            if index in outcome.sent:
                sent += 1
            elif index in outcome.dead:
                dead.append((pending, outcome.dead[index]))
            else:
                blocked.add(pending.shard)
                continue
            if pending.shard in blocked:
                loose.setdefault(pending.shard, []).append(pending.id)
            else:
                last[pending.shard] = pending.id
        if not last and not loose:
            return
        now = time.time_ns()
        pipe = e.r.pipeline(transaction=False)
        for pending, reason in dead:
            message = pending.message
            record = OutboxRecord(pending.user, message.idempotency_key, message.body)
            add_letter(pipe, e, job.id, record, reason, now, pending.shard)
        for shard, entry_id in last.items():
            Outbox(e.keys, shard, job.id).ack_through(pipe, entry_id)
        for shard, ids in loose.items():
            Outbox(e.keys, shard, job.id).remove(pipe, ids)
        stats = e.keys.job_stats(job.id)
        if sent:
            pipe.hincrby(stats, "sent", sent)
            pipe.hset(stats, "last_sent_at", now)
            count_sent(e, job.id, sent, pipe)
            pipe.hincrby(e.keys.metrics, f"messages_sent|{job.id}", sent)
        if dead:
            pipe.hincrby(stats, "dead_lettered", len(dead))
            pipe.hincrby(e.keys.metrics, f"dead_letters|{job.id}", len(dead))
        pipe.execute()
        for _, reason in dead:
            log.warning("dead-lettered a message: %s", reason, extra={"job": job.id})
        if sent and (not report.sent or outcome.error() is not None):
            # Progress starts the backoff and the failure period again: a round with one
            # partition throttled and the rest accepted backs off a little, not ever longer.
            self.health.clear(job.id)
        report.sent += sent
        report.dead += len(dead)
        report.batches += outcome.publications
        report.rounds += 1

    def _failed(self, job: Job, err: HubError, report: DeliverReport, messages: int) -> None:
        report.error = str(err)
        self.e.r.hincrby(self.e.keys.metrics, f"messages_failed|{job.id}|{err.kind}", messages)
        log.warning(
            "send failed: %s", err, extra={"job": job.id, "kind": err.kind, "status": err.status}
        )
        now = time.time_ns()
        if err.kind in FATAL_KINDS:
            self.health.note_error(job.id, err, now)
            what = "authorization rejected" if err.kind == "unauthorized" else "hub refused"
            JobControl(self.e).fail(job.id, f"{what} ({err})")
            log.error("job failed: %s", what, extra={"job": job.id})
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
