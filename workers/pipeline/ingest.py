"""Accepting events: validate each, then store the valid ones in one all-or-nothing write.

"Accepted" means durable in Redis (the intake's script returned), not "a task was queued": the
drain that turns events into profile changes may run later, or again, without losing or doubling
anything. Bad events are reported one by one while the valid ones beside them go through; if
Redis refuses the write (full, read-only, down) or the backlog is over its bound, nothing of the
call is stored and ``IngestRefused`` says why (workers/pipeline/intake.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

import orjson
import redis

from workers.engine import Engine
from workers.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, Tallies, metric_field
from workers.pipeline.entries import DATA, SCORE, Kind
from workers.pipeline.events import MAX_EVENT_BYTES, Event, EventError, Invalid, validate_many
from workers.pipeline.intake import IngestRefused, Intake, Stored
from workers.timefmt import NS_PER_MS


@dataclass
class IngestResult:
    accepted: int = 0
    """Valid events acknowledged: stored, or recognised as a repeat of a stored one."""
    errors: list[EventError] = field(default_factory=list)
    duplicates: int = 0
    """Of the accepted, repeats of an event id seen within the dedup window: not stored again."""

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "errors": [e.as_dict() for e in self.errors],
        }


Item = tuple[str, Any, int | None]
"""(where, decoded value or an Invalid, encoded size when known)."""


class Lines:
    """NDJSON lines decoded one by one: what ``ndjson_items`` gives. A bad line becomes an error
    item, not an exception; blank lines are skipped. Iterated, it yields items ("line N");
    ``Ingestor.check`` takes the values from it as they are and names a line only when it is
    refused. The values are its own, decoded here: validation keeps their dicts as fields."""

    __slots__ = ("_lines",)

    def __init__(self, lines: Iterable[bytes], first_line: int) -> None:
        self._lines = enumerate(lines, start=first_line)

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        numbers, values, sizes = self.taken(1)
        if not values:
            raise StopIteration
        return f"line {numbers[0]}", values[0], sizes[0]

    def taken(self, n: int) -> tuple[list[int], list[Any], list[int | None]]:
        """Up to ``n`` values (or Invalids) of the lines not yet read, their line numbers and
        their sizes (None for an Invalid)."""
        numbers: list[int] = []
        values: list[Any] = []
        sizes: list[int | None] = []
        loads = orjson.loads
        for number, line in self._lines:
            stripped = line.strip()
            if not stripped:
                continue
            numbers.append(number)
            size = len(stripped)
            if size > MAX_EVENT_BYTES:
                values.append(
                    Invalid(None, f"event is {size:,} bytes; the limit is {MAX_EVENT_BYTES:,}")
                )
                sizes.append(None)
            else:
                try:
                    values.append(loads(stripped))
                    sizes.append(size)
                except orjson.JSONDecodeError as exc:
                    values.append(Invalid(None, f"not valid JSON ({exc.args[0]})"))
                    sizes.append(None)
            if len(values) == n:
                break
        return numbers, values, sizes


def ndjson_items(lines: Iterable[bytes], first_line: int = 1) -> Lines:
    """Decode NDJSON lines one by one; a bad line becomes an error item, not an exception."""
    return Lines(lines, first_line)


class Indexed:
    """The items of a list of values, each at "index N": what ``list_items`` gives. Iterated,
    it yields them as any items; ``Ingestor.check`` takes the values from it as they are and
    names a value's index only when it is refused (a 100-event request names none)."""

    __slots__ = ("_index", "owned", "values")

    def __init__(self, values: Iterable[Any], owned: bool = False) -> None:
        self.values = iter(values)
        self._index = 0
        self.owned = owned
        """The values are ours to give away (just decoded): validation keeps each event's dict
        as its fields instead of a copy, so the caller must not use them afterwards."""

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        value = next(self.values)
        self._index += 1
        return f"index {self._index - 1}", value, None

    def taken(self, n: int) -> tuple[int, list[Any]]:
        """The index of the next value, and up to ``n`` values from there."""
        first = self._index
        values = list(islice(self.values, n))
        self._index += len(values)
        return first, values


def list_items(values: Iterable[Any], owned: bool = False) -> Indexed:
    """The items of ``values``; ``owned``: see ``Indexed.owned``."""
    return Indexed(values, owned)


class Ingestor:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.intake = Intake(engine)

    def ingest(
        self, items: Iterable[Item], kind: Kind = DATA, token: str | None = None
    ) -> IngestResult:
        """Validate every item, then store the valid ones in one all-or-nothing write.

        Raises ``IngestRefused`` (nothing stored) when Redis refuses writes or the backlog is
        full, and ``TooManyEvents`` (nothing stored) past ``max_request_events`` valid events.
        ``token`` names the write for a caller that may repeat it (see ``Intake.append``).
        """
        now = self.e.clock.now_ns()  # one read per call: the test clock lives in Redis
        result, valid = self.check(items, now, kind)
        self._count_rejected(result)
        stored = self.append(valid, now // NS_PER_MS, token)
        result.accepted = len(valid)
        result.duplicates = stored.duplicates
        return result

    def check(
        self, items: Iterable[Item], now: int, kind: Kind = DATA
    ) -> tuple[IngestResult, list[Event]]:
        """Validate every item: the refused ones as errors in the result, and the valid events.

        Raises ``TooManyEvents`` past ``max_request_events`` valid events.
        """
        result = IngestResult()
        valid: list[Event] = []
        cfg = self.e.cfg
        limit = cfg.max_request_events
        errors = result.errors
        owned = isinstance(items, Lines) or (isinstance(items, Indexed) and items.owned)
        for where, values, sizes in _slices(items):
            checked = validate_many(
                values,
                now,
                sizes,
                max_ahead_s=cfg.max_future_skew_s,
                max_fields=cfg.max_profile_fields,
                kind=kind,
                owned=owned,
            )
            events = [ev for ev in checked if type(ev) is Event]
            valid += events
            if len(events) < len(checked):
                for i, ev in enumerate(checked):
                    if type(ev) is not Event:
                        assert isinstance(ev, Invalid)
                        errors.append(EventError(where(i), ev.field, ev.reason))
            if len(valid) > limit:
                raise TooManyEvents(limit)
        return result, valid

    def rejected_tallies(self, result: IngestResult, pipe: Any) -> None:
        """Queue the counts of refused events, by field, on ``pipe`` (sync or asyncio)."""
        tallies = Tallies()
        for error in result.errors:
            tallies.add("events_rejected", 1, metric_field(error.field))
        tallies.flush(self.e, pipe)

    def stored_tallies(self, stored: Stored, pipe: Any) -> None:
        """Queue the counts of a write the intake script did not count itself (a cluster's, a
        replay's) on ``pipe`` (sync or asyncio)."""
        pipe.hincrby(self.e.keys.metrics, EVENTS_ACCEPTED, stored.stored)
        if stored.duplicates:
            pipe.hincrby(self.e.keys.metrics, EVENTS_DUPLICATE, stored.duplicates)

    def _count_rejected(self, result: IngestResult) -> None:
        if not result.errors:
            return
        pipe = self.e.r.pipeline(transaction=False)
        self.rejected_tallies(result, pipe)
        with contextlib.suppress(redis.RedisError):  # a counter is not worth failing the call
            pipe.execute()

    def append(
        self, events: list[Event], now_ms: int | None = None, token: str | None = None
    ) -> Stored:
        """Store validated events: each as the stream entry its validation encoded."""
        if now_ms is None:
            now_ms = self.e.clock.now_ns() // NS_PER_MS
        stored = self.intake.append(events, now_ms, token)
        if stored.counted:
            return stored
        pipe = self.e.r.pipeline(transaction=False)
        self.stored_tallies(stored, pipe)
        with contextlib.suppress(redis.RedisError):  # stored is stored; the counter may lag
            pipe.execute()
        return stored


SLICE = 256
"""Items validated together (``validate_many``): past ``max_request_events`` valid ones, a
request is refused within a slice of where it crossed the limit."""


Slice = tuple[Callable[[int], str], list[Any], list[int | None] | None]
"""(where the i-th value of the slice was, the values, each one's size or None for none known)."""


def _slices(items: Iterable[Item]) -> Iterator[Slice]:
    """The items in slices of SLICE; an item that is already an Invalid (a line that is not
    JSON) stands as its own value: validate_many passes it on. A where is made only when asked
    for (for a refused value) when the items come from list_items or ndjson_items."""
    if isinstance(items, Indexed):
        yield from _indexed(items)
    elif isinstance(items, Lines):
        yield from _lines(items)
    else:
        yield from _any(items)


def _indexed(items: Indexed) -> Iterator[Slice]:
    while True:
        first, values = items.taken(SLICE)
        if not values:
            return
        yield partial(_index, first), values, None


def _lines(items: Lines) -> Iterator[Slice]:
    while True:
        numbers, values, sizes = items.taken(SLICE)
        if not values:
            return
        yield partial(_line, numbers), values, sizes


def _index(first: int, i: int) -> str:
    return f"index {first + i}"


def _line(numbers: list[int], i: int) -> str:
    return f"line {numbers[i]}"


def _any(items: Iterable[Item]) -> Iterator[Slice]:
    wheres: list[str] = []
    values: list[Any] = []
    sizes: list[int | None] = []
    for where, value, size in items:
        wheres.append(where)
        values.append(value)
        sizes.append(size)
        if len(values) == SLICE:
            yield wheres.__getitem__, values, sizes
            wheres, values, sizes = [], [], []
    if values:
        yield wheres.__getitem__, values, sizes


class TooManyEvents(ValueError):
    """One write may hold at most ``AUDIENCEHUB_MAX_REQUEST_EVENTS`` events; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"more than {limit:,} valid events in one request; each request is stored "
            f"all-or-nothing, so split it (AUDIENCEHUB_MAX_REQUEST_EVENTS={limit:,})"
        )
        self.limit = limit


__all__ = [
    "SCORE",
    "Indexed",
    "IngestRefused",
    "IngestResult",
    "Ingestor",
    "Lines",
    "TooManyEvents",
    "list_items",
    "ndjson_items",
]
