"""Accepting events: validate each, append the valid ones to their users' shard streams.

"Accepted" means durable in Redis (the XADD returned), not "a task was queued": the drain that
turns events into profile changes may run later, or again, without losing or doubling anything.
Bad events are reported one by one while the valid ones beside them go through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from workers.engine import Engine
from workers.entries import DATA, SCORE, Entry, Kind
from workers.events import MAX_EVENT_BYTES, Event, EventError, Invalid, validate
from workers.keys import shard_of
from workers.metrics import Tallies

CHUNK = 1000


@dataclass
class IngestResult:
    accepted: int = 0
    errors: list[EventError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in self.errors],
        }


Item = tuple[str, Any, int | None]
"""(where, decoded value or an Invalid, encoded size when known)."""


def ndjson_items(lines: Iterable[bytes], first_line: int = 1) -> Iterator[Item]:
    """Decode NDJSON lines one by one; a bad line becomes an error item, not an exception."""
    for number, line in enumerate(lines, start=first_line):
        stripped = line.strip()
        if not stripped:
            continue
        where = f"line {number}"
        if len(stripped) > MAX_EVENT_BYTES:
            yield (
                where,
                Invalid(
                    None, f"event is {len(stripped):,} bytes; the limit is {MAX_EVENT_BYTES:,}"
                ),
                None,
            )
            continue
        try:
            yield where, orjson.loads(stripped), len(stripped)
        except orjson.JSONDecodeError as exc:
            yield where, Invalid(None, f"not valid JSON ({exc.args[0]})"), None


def list_items(values: Iterable[Any]) -> Iterator[Item]:
    for index, value in enumerate(values):
        yield f"index {index}", value, None


class Ingestor:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def ingest(self, items: Iterable[Item], kind: Kind = DATA) -> IngestResult:
        """Validate and append; returns counts and the per-event errors."""
        result = IngestResult()
        chunk: list[Event] = []
        now = self.e.clock.now_ns()  # one read per call: the test clock lives in Redis
        cfg = self.e.cfg
        for where, value, size in items:
            if isinstance(value, Invalid):
                result.errors.append(EventError(where, value.field, value.reason))
                continue
            try:
                chunk.append(
                    validate(
                        value,
                        now,
                        size,
                        max_ahead_s=cfg.max_future_skew_s,
                        max_fields=cfg.max_profile_fields,
                    )
                )
            except Invalid as exc:
                result.errors.append(EventError(where, exc.field, exc.reason))
                continue
            if len(chunk) >= CHUNK:
                result.accepted += self.append(chunk, kind)
                chunk = []
        if chunk:
            result.accepted += self.append(chunk, kind)
        if result.errors:
            tallies = Tallies()
            for error in result.errors:
                tallies.add("events_rejected", 1, error.field or "(event)")
            pipe = self.e.r.pipeline(transaction=False)
            tallies.flush(self.e, pipe)
            pipe.execute()
        return result

    def append(self, events: list[Event], kind: Kind = DATA) -> int:
        """Append validated events as entries of ``kind`` (data events or score updates)."""
        return self.append_entries(
            [
                Entry(kind, ev.user_id, ev.ts, ev.name if kind == DATA else None, ev.fields)
                for ev in events
            ]
        )

    def append_entries(self, entries: list[Entry]) -> int:
        """XADD each entry to its user's shard stream in one pipeline, then wake those shards."""
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        touched: set[int] = set()
        for entry in entries:
            shard = shard_of(entry.user_id, e.cfg.shards)
            touched.add(shard)
            pipe.xadd(e.keys.events(shard), {"d": entry.encode()})
        pipe.hincrby(e.keys.metrics, "events_accepted", len(entries))
        pipe.execute()
        e.kicker.drains(touched)
        return len(entries)


__all__ = ["SCORE", "IngestResult", "Ingestor", "list_items", "ndjson_items"]
