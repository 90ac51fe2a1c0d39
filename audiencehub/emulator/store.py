"""What the local hub received, per hub and partition, in arrival order, shared by every face.

Appends are batched (one lock acquisition per request, not per event) because intake must keep
up with 50k+ events/s; reads copy a slice under the same lock so a reader never sees half a batch.

Two numberings, for two kinds of reader:

- ``seq`` is the stand-in's own, global across hubs and never reused (not even after a reset), so
  a ``/_emulator`` poller holding ``after=N`` cannot be confused by a reset.
- Each partition numbers its events the way Event Hubs does, for consumers: a sequence number
  from 0, a byte offset, and an enqueued time that never goes backwards. A reset expires events
  the way retention does: the numbers go on, ``begin_sequence_number`` moves past them.

The store holds at most ``max_events_per_hub`` events per hub. When a hub is full the store
either refuses the append (:class:`StoreFull`; the default, so nothing accepted is ever dropped
behind a consumer's back) or forgets the oldest (``when_full="drop-oldest"``, like retention).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from audiencehub.emulator.counts import Counts
from audiencehub.emulator.hubs import Hub, UnknownHub, UnknownPartition
from audiencehub.emulator.records import (
    IncomingEvent,
    PartitionInfo,
    Row,
    StoredEvent,
    make_row,
    row_event,
)
from workers.delivery.eventhub.connstr import valid_hub_name
from workers.delivery.eventhub.partitions import hash_codes

if TYPE_CHECKING:
    from audiencehub.emulator.journal import Journal

__all__ = [
    "DEFAULT_MAX_EVENTS_PER_HUB",
    "RECORD_OVERHEAD",
    "WHEN_FULL",
    "EventStore",
    "PositionError",
    "StoreFull",
    "valid_hub_name",
]

DEFAULT_MAX_EVENTS_PER_HUB = 1_000_000
WHEN_FULL = ("refuse", "drop-oldest")
# Offsets are byte positions, as in the service: each event takes its body plus this much.
RECORD_OVERHEAD = 32
log = logging.getLogger("audiencehub.emulator.store")


class StoreFull(Exception):
    """The hub holds its maximum number of events and the stand-in refuses more (nothing stored)."""

    def __init__(self, hub: str, held: int, limit: int, adding: int) -> None:
        self.hub = hub
        self.limit = limit
        super().__init__(
            f"event hub {hub!r} holds {held} of at most {limit} events and cannot take "
            f"{adding} more; read them back and reset (DELETE /_emulator/events?hub={hub}), "
            "or start the stand-in with a larger --max-events or --when-full drop-oldest"
        )


class PositionError(ValueError):
    """A starting position past the end of the partition (the service refuses those too)."""


AppendListener = Callable[[str, frozenset[str]], None]


class EventStore:
    """Thread-safe, in-memory record of every accepted event and of every request's outcome.

    Both faces call :meth:`append` for accepted events and :meth:`count_request` for every
    data-plane request (accepted or not), so ``stats()`` is one picture of the whole stand-in.
    With a :class:`~audiencehub.emulator.journal.Journal`, every append and reset is also written
    to disk before it is acknowledged, and :meth:`load` brings it all back after a restart.
    """

    def __init__(
        self,
        max_events_per_hub: int = DEFAULT_MAX_EVENTS_PER_HUB,
        when_full: str = "refuse",
        journal: Journal | None = None,
    ) -> None:
        if max_events_per_hub < 1:
            raise ValueError("max_events_per_hub must be at least 1")
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}")
        self._lock = threading.Lock()
        self._hubs: dict[str, Hub] = {}  # lower-cased name -> hub (names are case-insensitive)
        self._seq = 0
        self._accepted = 0  # requests stored, never reset (like seq)
        self._max = max_events_per_hub
        self._when_full = when_full
        self._journal = journal
        if journal is not None:
            journal.snapshot = self._snapshot
        self._listeners: list[AppendListener] = []
        self._counts = Counts()
        self._started = time.time_ns()

    @property
    def max_events_per_hub(self) -> int:
        return self._max

    @property
    def when_full(self) -> str:
        return self._when_full

    # ---- hubs -------------------------------------------------------------------------------

    def create_hub(self, name: str, partitions: int | Sequence[str] = 4) -> Hub:
        """Create (or return the existing) hub; partition ids are ``"0"…"n-1"`` unless given."""
        if not valid_hub_name(name):
            raise ValueError(
                f"hub name {name[:60]!r} is not valid (letters, digits, '.', '-', '_'; "
                "starting and ending with a letter or digit; at most 256)"
            )
        ids = (
            tuple(str(i) for i in range(partitions))
            if isinstance(partitions, int)
            else tuple(partitions)
        )
        if not 1 <= len(ids) <= 1024 or len(set(ids)) != len(ids):
            raise ValueError("a hub needs 1 to 1024 distinct partition ids")
        with self._lock:
            hub = self._hubs.get(name.lower())
            if hub is None:
                hub = Hub(name=name, partition_ids=ids, created_at=time.time_ns())
                self._hubs[name.lower()] = hub
                if self._journal is not None:
                    self._journal.hub_created(hub.name, hub.partition_ids, hub.created_at)
            return hub

    def grow_hub(self, name: str, partitions: int) -> Hub:
        """Add partitions to a hub, as Premium and Dedicated namespaces allow (never fewer):
        ids ``"n"…"partitions-1"`` join the existing ones."""
        with self._lock:
            hub = self._hubs.get(name.lower())
            if hub is None:
                raise UnknownHub(name)
            have = len(hub.partition_ids)
            if not have <= partitions <= 1024:
                raise ValueError(
                    f"event hub {hub.name!r} has {have} partitions; it can grow to at most 1024 "
                    "and never shrink"
                )
            hub.partition_ids = (*hub.partition_ids, *(str(i) for i in range(have, partitions)))
            hub._rr = None
            if self._journal is not None:
                self._journal.hub_created(hub.name, hub.partition_ids, hub.created_at, replace=True)
            return hub

    def hub(self, name: str) -> Hub:
        """The hub named ``name`` (case-insensitive), or UnknownHub."""
        hub = self._hubs.get(name.lower())
        if hub is None:
            raise UnknownHub(name)
        return hub

    def hub_names(self) -> list[str]:
        with self._lock:
            return [hub.name for hub in self._hubs.values()]

    def on_append(self, listener: AppendListener) -> None:
        """Call ``listener(hub, partition_ids)`` after each append, in the appending thread."""
        self._listeners.append(listener)

    # ---- intake -----------------------------------------------------------------------------

    def append(
        self,
        hub_name: str,
        events: Iterable[IncomingEvent],
        face: str,
        partition_id: str | None = None,
        received_at: int | None = None,
    ) -> tuple[int, int]:
        """Place, number and keep a batch; returns (first seq, last seq).

        Placement is the service's: an explicit ``partition_id`` wins, else the partition key's
        hash (:func:`partition_for_key`), else round-robin per event. A face that must put a whole
        keyless batch in one partition (AMQP) passes ``partition_id=hub.next_round_robin()``.
        Raises :class:`StoreFull` (storing nothing) when the hub is full and refuses more.
        """
        hub = self.hub(hub_name)
        ids = hub.partition_ids
        if partition_id is not None and partition_id not in ids:
            raise UnknownPartition(partition_id)
        batch = events if type(events) is list or isinstance(events, Sequence) else list(events)
        when = time.time_ns() if received_at is None else received_at
        name = hub.name
        with self._lock:
            out = hub.events
            if self._when_full == "refuse" and len(out) + len(batch) > self._max:
                raise StoreFull(name, len(out), self._max, len(batch))
            # Enqueued times never go backwards within a hub, whatever the wall clock does.
            when = max(when, hub.last_received)
            hub.last_received = when
            self._accepted += 1
            request = self._accepted
            first = self._seq + 1
            if partition_id is not None:
                size, mismatches = self._append_whole(
                    hub, batch, partition_id, (first, when, face, request)
                )
                touched = {partition_id} if batch else set()
            else:
                size, touched = self._append_placed(hub, batch, (first, when, face, request))
                mismatches = 0
            seq = first + len(batch) - 1
            added = len(batch)
            self._seq = seq
            hub.bytes_received += size
            hub.key_partition_mismatches += mismatches
            self._counts.events_by_face[face] += added
            overflow = len(out) - self._max
            if overflow > 0:
                # Drop the oldest in chunks (a tenth of the cap) so eviction stays amortised O(1).
                self._expire(hub, min(len(out), overflow + self._max // 10))
        if touched:
            pids = frozenset(touched)
            for listener in self._listeners:
                listener(name, pids)
        return first, seq

    def _append_whole(
        self,
        hub: Hub,
        batch: Sequence[IncomingEvent],
        partition_id: str,
        stamp: tuple[int, int, str, int],
    ) -> tuple[int, int]:
        """Keep a batch that goes whole to one partition (REST's /partitions/{id}, every send
        placed whole), under the lock: its rows are made in one pass and numbered in bulk.
        ``stamp`` is (first seq, enqueued time, face, request). Returns (bytes, events whose key
        hashes to another partition)."""
        first, when, face, request = stamp
        ids = hub.partition_ids
        count = len(ids)
        named = [event[3] for event in batch if event[3] is not None]
        mismatches = 0
        if named:
            target = ids.index(partition_id)
            places = [abs(code) % count for code in hash_codes(named)]
            mismatches = len(places) - places.count(target)
        name = hub.name
        rows: list[Row] = [
            make_row(number, name, partition_id, key, body, user, broker, when, face, request)
            for number, (body, user, broker, key) in enumerate(batch, first)
        ]
        if not rows:
            return 0, 0
        hub.events += rows
        part = hub.partitions.get(partition_id) or hub.log(partition_id)
        part.rows += rows
        sizes = [len(row[4]) for row in rows]
        offsets = list(
            itertools.accumulate([n + RECORD_OVERHEAD for n in sizes], initial=part.next_offset)
        )
        part.next_offset = offsets.pop()
        part.offsets.fromlist(offsets)
        part.last_offset = offsets[-1]
        part.last_time = when
        hub.per_partition[partition_id] += len(rows)
        if self._journal is not None:
            self._journal.events(
                name, list(zip(itertools.count(part.next_sequence), offsets, rows, strict=False))
            )
        part.next_sequence += len(rows)
        return sum(sizes), mismatches

    def _append_placed(
        self, hub: Hub, batch: Sequence[IncomingEvent], stamp: tuple[int, int, str, int]
    ) -> tuple[int, set[str]]:
        """Keep a batch placed event by event (by key, else round-robin), under the lock.
        Returns (bytes, partitions touched)."""
        seq, when, face, request = stamp
        seq -= 1
        ids = hub.partition_ids
        count = len(ids)
        codes = iter(abs(h) for h in hash_codes([e[3] for e in batch if e[3] is not None]))
        name = hub.name
        out = hub.events
        touched: set[str] = set()
        counts = hub.per_partition
        logs = hub.partitions
        size = 0
        written: list[tuple[int, int, Row]] = []
        for body, user, broker, key in batch:
            seq += 1
            pid = ids[next(codes) % count] if key is not None else hub.next_round_robin()
            row = make_row(seq, name, pid, key, body, user, broker, when, face, request)
            out.append(row)
            part = logs.get(pid) or hub.log(pid)
            part.rows.append(row)
            offset = part.next_offset
            part.offsets.append(offset)
            part.last_offset = offset
            part.last_time = when
            part.next_offset = offset + len(body) + RECORD_OVERHEAD
            if self._journal is not None:
                written.append((part.next_sequence, offset, row))
            part.next_sequence += 1
            touched.add(pid)
            counts[pid] += 1
            size += len(body)
        if self._journal is not None and written:
            self._journal.events(name, written)
        return size, touched

    def _expire(self, hub: Hub, drop: int) -> None:
        """Forget a hub's ``drop`` oldest events, from every index (under the lock)."""
        gone = Counter(row[2] for row in itertools.islice(hub.events, drop))
        del hub.events[:drop]
        for pid, count in gone.items():
            hub.partitions[pid].expire(count)
        hub.evicted += drop
        if self._journal is not None:
            self._journal.expired(hub.name, hub.events[0][0] if hub.events else self._seq + 1)

    def count_request(self, face: str, status: int) -> None:
        """Record one data-plane request's outcome (201, 401, …); 0 means connection dropped."""
        with self._lock:
            self._counts.request(face, status)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._counts.fault(kind)

    # ---- readback ---------------------------------------------------------------------------

    def events(
        self,
        hub_name: str,
        after: int = 0,
        limit: int = 1000,
        partition_id: str | None = None,
    ) -> tuple[list[StoredEvent], bool]:
        """Events of one hub with seq > ``after``, oldest first; also whether more remain."""
        rows, more = self.event_rows(hub_name, after, limit, partition_id)
        return [row_event(row, number, offset) for row, number, offset in rows], more

    def event_rows(
        self,
        hub_name: str,
        after: int = 0,
        limit: int = 1000,
        partition_id: str | None = None,
    ) -> tuple[list[tuple[Row, int, int]], bool]:
        """What :meth:`events` returns, as (row, sequence number, offset) without making
        :class:`StoredEvent` objects (the readback page builds its JSON from the rows)."""
        hub = self.hub(hub_name)
        with self._lock:
            if partition_id is None:
                stored = hub.events
                start = bisect_right(stored, after, key=_seq_of)
                chunk = stored[start : start + limit + 1]
            else:
                part = hub.partitions.get(partition_id)
                stored = part.rows if part is not None else []
                start = bisect_right(stored, after, key=_seq_of)
                chunk = stored[start : start + limit + 1]
            more = len(chunk) > limit
            out: list[tuple[Row, int, int]] = []
            # A partition's rows in the chunk follow each other in its log: one search per
            # partition finds the first, the next is checked to be the one after it.
            found: dict[str, int] = {}
            partitions = hub.partitions
            for row in chunk[:limit]:
                pid = row[2]
                part = partitions[pid]
                rows = part.rows
                index = found.get(pid, -1) + 1
                if not (0 < index < len(rows) and rows[index] is row):
                    index = bisect_left(rows, row[0], key=_seq_of)
                found[pid] = index
                out.append((row, part.first_sequence + index, part.offsets[index]))
        return out, more

    def read(
        self, hub_name: str, partition_id: str, sequence: int, limit: int
    ) -> tuple[list[StoredEvent], int]:
        """Up to ``limit`` events of a partition from sequence number ``sequence`` on (or from the
        oldest held, if those are gone); also the sequence number to ask for next."""
        hub = self.hub(hub_name)
        with self._lock:
            part = hub.log(partition_id)
            start = part.index_of(sequence)
            rows = part.rows[start : start + limit]
            first = part.first_sequence + start
            offsets = part.offsets
            out = [row_event(row, first + i, offsets[start + i]) for i, row in enumerate(rows)]
        return out, first + len(out)

    def partition_info(self, hub_name: str, partition_id: str) -> PartitionInfo:
        hub = self.hub(hub_name)
        with self._lock:
            part = hub.log(partition_id)
            return PartitionInfo(
                part.first_sequence,
                part.next_sequence - 1,
                part.last_offset,
                part.last_time,
                not part.rows,
            )

    def seek(self, hub_name: str, partition_id: str, by: str, value: int, inclusive: bool) -> int:
        """The sequence number a reader starting at a position reads first.

        ``by`` is ``"sequence"``, ``"offset"`` or ``"time"`` (ms since the epoch); the reader
        wants the first event whose number is greater than ``value`` (or equal, ``inclusive``).
        Events that are gone are skipped. A sequence number or offset past the last enqueued
        one raises :class:`PositionError`, as the service does; an enqueued time in the future
        just waits for the next event.
        """
        hub = self.hub(hub_name)
        with self._lock:
            part = hub.log(partition_id)
            last = part.next_sequence - 1
            if by == "sequence":
                if value > last:
                    raise PositionError(
                        f"The supplied sequence number '{value}' is invalid. "
                        f"The last sequence number in the system is '{last}'"
                    )
                return max(value if inclusive else value + 1, part.first_sequence)
            if by == "offset":
                if value > part.last_offset:
                    raise PositionError(
                        f"The supplied offset '{value}' is invalid. "
                        f"The last offset in the system is '{part.last_offset}'"
                    )
                find = bisect_left if inclusive else bisect_right
                return part.first_sequence + find(part.offsets, value)
            if by == "time":
                find = bisect_left if inclusive else bisect_right
                index = find(part.rows, value, key=_enqueued_ms)
                return part.first_sequence + index
            raise ValueError(f"unknown position kind {by!r}")

    def end_of(self, hub_name: str, partition_id: str) -> int:
        """The sequence number the next event of the partition will get (``@latest``)."""
        hub = self.hub(hub_name)
        with self._lock:
            return hub.log(partition_id).next_sequence

    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def stats(self) -> dict[str, Any]:
        """Counts per hub and partition, requests and rejections by status, per face."""
        with self._lock:
            hubs = {hub.name: hub.stats() for hub in self._hubs.values()}
            counts = self._counts
            return {
                "started_at_ns": self._started,
                "last_seq": self._seq,
                "max_events_per_hub": self._max,
                "when_full": self._when_full,
                "events": sum(h["events"] for h in hubs.values()),
                "events_by_face": dict(counts.events_by_face),
                "hubs": hubs,
                "requests": counts.by_face(),
                "rejections": counts.rejections(),
                "faults_fired": dict(sorted(counts.faults.items())),
            }

    def reset(self, hub_name: str | None = None) -> int:
        """Forget received events and counters (all hubs, or one); returns events dropped.

        Sequence numbers keep counting up, the global ones and each partition's, so neither a
        poller nor a consumer ever sees a number twice: a reset works like retention expiring
        everything at once.
        """
        targets = [self.hub(hub_name)] if hub_name is not None else None
        with self._lock:
            hubs = targets if targets is not None else list(self._hubs.values())
            dropped = 0
            for hub in hubs:
                dropped += len(hub.events)
                hub.events = []
                for part in hub.partitions.values():
                    part.expire(len(part.rows))
                hub.per_partition = Counter()
                hub.bytes_received = 0
                hub.evicted = 0
                hub.key_partition_mismatches = 0
                if self._journal is not None:
                    self._journal.reset(hub.name, self._seq, self._partition_state(hub))
            if targets is None:
                self._counts.clear()
            return dropped

    # ---- the journal ------------------------------------------------------------------------

    def _snapshot(self, hub_name: str) -> tuple[int, dict[str, list[int]]]:
        """The journal's view of a hub's counters (called under the lock, so it takes none)."""
        return self._seq, self._partition_state(self._hubs[hub_name.lower()])

    @staticmethod
    def _partition_state(hub: Hub) -> dict[str, list[int]]:
        return {
            pid: [part.next_sequence, part.next_offset, part.last_offset, part.last_time]
            for pid, part in hub.partitions.items()
        }

    def load(self) -> int:
        """Bring back what the journal holds (call once, before serving); returns events loaded.

        Hubs the journal knows are created as they were; a hub created from the command line
        with other partition ids is an error, since sequence numbers would not line up.
        """
        journal = self._journal
        if journal is None:
            return 0
        loaded = 0
        with self._lock:
            for name, ids, created_at in journal.hubs():
                hub = self._hubs.get(name.lower())
                if hub is None:
                    hub = Hub(name=name, partition_ids=tuple(ids), created_at=created_at)
                    self._hubs[name.lower()] = hub
                else:
                    held, asked = tuple(ids), hub.partition_ids
                    # A hub only ever grows: the longer list wins if the other begins it.
                    if held[: len(asked)] != asked[: len(held)]:
                        raise ValueError(
                            f"the data directory holds event hub {name!r} with partitions "
                            f"{', '.join(ids)}; it was started with {', '.join(asked)}. "
                            "Use the same --partitions, or another --data directory"
                        )
                    hub.partition_ids = max(held, asked, key=len)
                    hub.created_at = created_at
                    if hub.partition_ids != held:
                        journal.hub_created(hub.name, hub.partition_ids, created_at, replace=True)
                    if hub.partition_ids != asked:
                        log.warning(
                            "event hub %r keeps the %d partitions it has in the data directory "
                            "(asked for %d): a hub never shrinks",
                            hub.name,
                            len(hub.partition_ids),
                            len(asked),
                        )
                state, rows = journal.replay(hub.name)
                seq, parts = state
                self._seq = max(self._seq, seq)
                for pid, (next_sequence, next_offset, last_offset, last_time) in parts.items():
                    if pid not in hub.partition_ids:
                        continue
                    part = hub.log(pid)
                    part.first_sequence = part.next_sequence = next_sequence
                    part.next_offset, part.last_offset, part.last_time = (
                        next_offset,
                        last_offset,
                        last_time,
                    )
                for sequence, offset, row in rows:
                    part = hub.log(row[2])
                    if not part.rows:
                        part.first_sequence = sequence
                    part.rows.append(row)
                    part.offsets.append(offset)
                    part.next_sequence = sequence + 1
                    part.next_offset = offset + len(row[4]) + RECORD_OVERHEAD
                    part.last_offset = offset
                    part.last_time = row[7]
                    hub.events.append(row)
                    hub.per_partition[row[2]] += 1
                    hub.bytes_received += len(row[4])
                    hub.last_received = max(hub.last_received, row[7])
                    self._seq = max(self._seq, row[0])
                    self._accepted = max(self._accepted, row[9])
                    loaded += 1
                self._counts.events_by_face.update(row[8] for row in hub.events)
                overflow = len(hub.events) - self._max
                if overflow > 0 and self._when_full == "drop-oldest":
                    self._expire(hub, overflow)
        return loaded


def _seq_of(row: Row) -> int:
    seq: int = row[0]
    return seq


def _enqueued_ms(row: Row) -> int:
    when: int = row[7]
    return when // 1_000_000
