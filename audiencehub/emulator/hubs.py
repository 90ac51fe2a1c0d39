"""A hub on the stand-in: its partitions, and each partition's log of events with their Event
Hubs numbers (sequence number, offset, enqueued time). Only touched under the store's lock.
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from audiencehub.emulator.records import Row

__all__ = ["Hub", "PartitionLog", "UnknownHub", "UnknownPartition"]


class UnknownHub(LookupError):
    """The named hub does not exist on this stand-in."""


class UnknownPartition(LookupError):
    """The hub exists but has no partition with that id."""


@dataclass(slots=True)
class PartitionLog:
    """One partition's events in order, with their Event Hubs numbers.

    ``rows[i]`` has sequence number ``first_sequence + i`` and offset ``offsets[i]``; the offsets
    live in an array (8 bytes each, untracked) rather than in the rows.
    """

    rows: list[Row] = field(default_factory=list)
    offsets: array[int] = field(default_factory=lambda: array("q"))
    first_sequence: int = 0  # of rows[0]; equals next_sequence when empty
    next_sequence: int = 0
    next_offset: int = 0
    last_offset: int = -1
    last_time: int = 0

    def index_of(self, sequence: int) -> int:
        """Where ``sequence`` is (or would be) in ``rows``, clamped to what is held."""
        return min(max(sequence - self.first_sequence, 0), len(self.rows))

    def expire(self, count: int) -> None:
        """Forget the oldest ``count`` events; their numbers are never given out again."""
        if count >= len(self.rows):
            self.rows = []
            self.offsets = array("q")
            self.first_sequence = self.next_sequence
            return
        del self.rows[:count]
        del self.offsets[:count]
        self.first_sequence += count


@dataclass(slots=True)
class Hub:
    """A hub's shape and what it holds; only touched under the store's lock."""

    name: str
    partition_ids: tuple[str, ...]
    created_at: int
    events: list[Row] = field(default_factory=list)
    partitions: dict[str, PartitionLog] = field(default_factory=dict)
    per_partition: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    evicted: int = 0
    key_partition_mismatches: int = 0
    last_received: int = 0
    _rr: itertools.cycle[str] | None = None

    def __post_init__(self) -> None:
        for pid in self.partition_ids:
            self.partitions.setdefault(pid, PartitionLog())

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

    def stats(self) -> dict[str, Any]:
        """This hub's counts for ``/_emulator/stats``."""
        return {
            "events": sum(self.per_partition.values()),
            "stored": len(self.events),
            "evicted": self.evicted,
            "bytes": self.bytes_received,
            "partitions": {pid: self.per_partition.get(pid, 0) for pid in self.partition_ids},
            "sequence_numbers": {
                pid: [part.first_sequence, part.next_sequence - 1]
                for pid, part in self.partitions.items()
            },
            "key_partition_mismatches": self.key_partition_mismatches,
        }

    def log(self, partition_id: str) -> PartitionLog:
        """A partition's log; made on first use for a partition the hub grew at run time."""
        part = self.partitions.get(partition_id)
        if part is None:
            if partition_id not in self.partition_ids:
                raise UnknownPartition(partition_id)
            part = self.partitions[partition_id] = PartitionLog()
        return part
