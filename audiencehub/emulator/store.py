"""What the local hub received, per hub, in arrival order, shared by its REST and AMQP faces.

Appends are batched (one lock acquisition per request, not per event) because intake must keep
up with 50k+ events/s; reads copy a slice under the same lock so a reader never sees half a batch.
Sequence numbers are global and never reused (not even after a reset), so a poller holding
``after=N`` cannot be confused by a reset.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from workers.eventhub.connstr import valid_hub_name
from workers.eventhub.partitions import partition_for_key

__all__ = [
    "DEFAULT_MAX_EVENTS_PER_HUB",
    "EventStore",
    "Hub",
    "IncomingEvent",
    "StoredEvent",
    "UnknownHub",
    "UnknownPartition",
    "valid_hub_name",
]

DEFAULT_MAX_EVENTS_PER_HUB = 1_000_000


class UnknownHub(LookupError):
    """The named hub does not exist on this stand-in."""


class UnknownPartition(LookupError):
    """The hub exists but has no partition with that id."""


class IncomingEvent(NamedTuple):
    """One event as a face decoded it, before the store places and numbers it."""

    body: bytes
    user_properties: dict[str, Any]
    broker_properties: dict[str, Any]
    partition_key: str | None


class StoredEvent(NamedTuple):
    """One event as received, as handed to readers."""

    seq: int
    hub: str
    partition_id: str
    partition_key: str | None
    body: bytes
    user_properties: dict[str, Any]
    broker_properties: dict[str, Any]
    received_at: int  # ns since the epoch
    face: str  # "rest" or "amqp"
    request: int  # which accepted request (REST POST, AMQP delivery) brought it, from 1


# Internally each event is an exact tuple in StoredEvent's field order, with the property dicts as
# tuples of pairs. CPython stops GC-tracking an exact tuple of atoms at its first young collection;
# a NamedTuple (a subclass) or a tuple holding a dict stays tracked for good. With a million stored
# events that difference is what makes each full collection take ~200 ms and halves intake.
_Props = tuple[tuple[str, Any], ...]
_Row = tuple[int, str, str, str | None, bytes, _Props, _Props, int, str, int]


def _row_event(row: _Row) -> StoredEvent:
    seq, hub, pid, key, body, user, broker, when, face, request = row
    return StoredEvent(seq, hub, pid, key, body, dict(user), dict(broker), when, face, request)


@dataclass(slots=True)
class Hub:
    """A hub's shape and what it holds; only touched under the store's lock."""

    name: str
    partition_ids: tuple[str, ...]
    created_at: int
    events: list[_Row] = field(default_factory=list)
    per_partition: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    evicted: int = 0
    key_partition_mismatches: int = 0
    _rr: itertools.cycle[str] | None = None

    def next_round_robin(self) -> str:
        if self._rr is None:
            self._rr = itertools.cycle(self.partition_ids)
        return next(self._rr)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "partition_count": len(self.partition_ids),
            "partition_ids": list(self.partition_ids),
            "created_at_ns": self.created_at,
        }


class EventStore:
    """Thread-safe, in-memory record of every accepted event and of every request's outcome.

    Both faces call :meth:`append` for accepted events and :meth:`count_request` for every
    data-plane request (accepted or not), so ``stats()`` is one picture of the whole stand-in.
    """

    def __init__(self, max_events_per_hub: int = DEFAULT_MAX_EVENTS_PER_HUB) -> None:
        if max_events_per_hub < 1:
            raise ValueError("max_events_per_hub must be at least 1")
        self._lock = threading.Lock()
        self._hubs: dict[str, Hub] = {}  # lower-cased name -> hub (names are case-insensitive)
        self._seq = 0
        self._accepted = 0  # requests stored, never reset (like seq)
        self._max = max_events_per_hub
        self._requests: dict[str, Counter[int]] = {}
        self._events_by_face: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._started = time.time_ns()

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
        """
        hub = self.hub(hub_name)
        ids = hub.partition_ids
        if partition_id is not None and partition_id not in ids:
            raise UnknownPartition(partition_id)
        when = time.time_ns() if received_at is None else received_at
        name = hub.name
        with self._lock:
            self._accepted += 1
            request = self._accepted
            seq = self._seq
            first = seq + 1
            out = hub.events
            counts = hub.per_partition
            size = 0
            mismatches = 0
            for body, user, broker, key in events:
                seq += 1
                if partition_id is not None:
                    pid = partition_id
                    if key is not None and partition_for_key(key, ids) != pid:
                        mismatches += 1
                elif key is not None:
                    pid = partition_for_key(key, ids)
                else:
                    pid = hub.next_round_robin()
                out.append(
                    (
                        seq,
                        name,
                        pid,
                        key,
                        body,
                        tuple(user.items()) if user else (),
                        tuple(broker.items()) if broker else (),
                        when,
                        face,
                        request,
                    )
                )
                counts[pid] += 1
                size += len(body)
            added = seq - self._seq
            self._seq = seq
            hub.bytes_received += size
            hub.key_partition_mismatches += mismatches
            self._events_by_face[face] += added
            overflow = len(out) - self._max
            if overflow > 0:
                # Drop the oldest in chunks (a tenth of the cap) so eviction stays amortised O(1).
                drop = min(len(out), overflow + self._max // 10)
                del out[:drop]
                hub.evicted += drop
        return first, seq

    def count_request(self, face: str, status: int) -> None:
        """Record one data-plane request's outcome (201, 401, …); 0 means connection dropped."""
        with self._lock:
            counter = self._requests.get(face)
            if counter is None:
                counter = self._requests[face] = Counter()
            counter[status] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    # ---- readback ---------------------------------------------------------------------------

    def events(
        self,
        hub_name: str,
        after: int = 0,
        limit: int = 1000,
        partition_id: str | None = None,
    ) -> tuple[list[StoredEvent], bool]:
        """Events of one hub with seq > ``after``, oldest first; also whether more remain."""
        hub = self.hub(hub_name)
        with self._lock:
            stored = hub.events
            start = bisect_right(stored, after, key=_seq_of)
            if partition_id is None:
                chunk = stored[start : start + limit + 1]
            else:
                chunk = []
                for row in itertools.islice(stored, start, None):
                    if row[2] == partition_id:
                        chunk.append(row)
                        if len(chunk) > limit:
                            break
        more = len(chunk) > limit
        return [_row_event(row) for row in chunk[:limit]], more

    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def stats(self) -> dict[str, Any]:
        """Counts per hub and partition, requests and rejections by status, per face."""
        with self._lock:
            hubs = {
                hub.name: {
                    "events": sum(hub.per_partition.values()),
                    "stored": len(hub.events),
                    "evicted": hub.evicted,
                    "bytes": hub.bytes_received,
                    "partitions": {pid: hub.per_partition.get(pid, 0) for pid in hub.partition_ids},
                    "key_partition_mismatches": hub.key_partition_mismatches,
                }
                for hub in self._hubs.values()
            }
            requests = {
                face: {
                    "total": sum(counter.values()),
                    "by_status": {str(k): v for k, v in sorted(counter.items())},
                }
                for face, counter in self._requests.items()
            }
            rejections: Counter[str] = Counter()
            for counter in self._requests.values():
                for status, n in counter.items():
                    if status >= 400 or status == 0:
                        rejections["dropped" if status == 0 else str(status)] += n
            return {
                "started_at_ns": self._started,
                "last_seq": self._seq,
                "events": sum(h["events"] for h in hubs.values()),
                "events_by_face": dict(self._events_by_face),
                "hubs": hubs,
                "requests": requests,
                "rejections": dict(sorted(rejections.items())),
                "faults_fired": dict(sorted(self._faults.items())),
            }

    def reset(self, hub_name: str | None = None) -> int:
        """Forget received events and counters (all hubs, or one); returns events dropped.

        Sequence numbers keep counting up so that pollers never see a number twice.
        """
        targets = [self.hub(hub_name)] if hub_name is not None else None
        with self._lock:
            hubs = targets if targets is not None else list(self._hubs.values())
            dropped = 0
            for hub in hubs:
                dropped += len(hub.events)
                hub.events = []
                hub.per_partition = Counter()
                hub.bytes_received = 0
                hub.evicted = 0
                hub.key_partition_mismatches = 0
            if targets is None:
                self._requests.clear()
                self._events_by_face.clear()
                self._faults.clear()
            return dropped


def _seq_of(row: _Row) -> int:
    return row[0]
