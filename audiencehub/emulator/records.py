"""The forms one event takes in the stand-in: as a face decoded it (:class:`IncomingEvent`), as
the store holds it (a row), as readers get it (:class:`StoredEvent`), as the journal writes it
(a record), and its property values as JSON (:func:`plain_value`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "IncomingEvent",
    "PartitionInfo",
    "Props",
    "Row",
    "StoredEvent",
    "plain_value",
    "record_row",
    "row_event",
    "row_record",
]


class IncomingEvent(NamedTuple):
    """One event as a face decoded it, before the store places and numbers it.

    Property values keep their types (AMQP ones may be bytes, UUIDs, timestamps), so a consumer
    gets back what the producer sent; :func:`plain_value` makes them JSON for readback.
    """

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
    received_at: int  # ns since the epoch; also the enqueued time
    face: str  # "rest" or "amqp"
    request: int  # which accepted request (REST POST, AMQP delivery) brought it, from 1
    sequence_number: int = -1  # in its partition, from 0
    offset: int = -1  # byte position in its partition


class PartitionInfo(NamedTuple):
    """What ``$management`` READ of a partition answers."""

    begin_sequence_number: int
    last_enqueued_sequence_number: int  # -1 when nothing was ever enqueued
    last_enqueued_offset: int  # -1 likewise
    last_enqueued_time: int  # ns; 0 when nothing was ever enqueued
    is_empty: bool


# Internally each event is an exact tuple in StoredEvent's field order (without the partition
# numbers, which the partition log keeps), with the property dicts as tuples of pairs. CPython
# stops GC-tracking an exact tuple of atoms at its first young collection; a NamedTuple (a
# subclass) or a tuple holding a dict stays tracked for good. With a million stored events that
# difference is what makes each full collection take ~200 ms and halves intake.
Props = tuple[tuple[str, Any], ...]
Row = tuple[int, str, str, str | None, bytes, Props, Props, int, str, int]


def row_event(row: Row, sequence_number: int = -1, offset: int = -1) -> StoredEvent:
    seq, hub, pid, key, body, user, broker, when, face, request = row
    return StoredEvent(
        seq,
        hub,
        pid,
        key,
        body,
        dict(user),
        dict(broker),
        when,
        face,
        request,
        sequence_number,
        offset,
    )


def row_record(row: Row) -> list[Any]:
    """A row as plain values for the journal (property pairs as maps)."""
    seq, hub, pid, key, body, user, broker, when, face, request = row
    return [seq, hub, pid, key, body, dict(user), dict(broker), when, face, request]


def record_row(record: Sequence[Any]) -> Row:
    """The inverse of :func:`row_record`."""
    seq, hub, pid, key, body, user, broker, when, face, request = record
    return (
        int(seq),
        str(hub),
        str(pid),
        None if key is None else str(key),
        bytes(body),
        tuple((str(k), v) for k, v in user.items()),
        tuple((str(k), v) for k, v in broker.items()),
        int(when),
        str(face),
        int(request),
    )


def plain_value(value: Any) -> Any:
    """A property value as JSON: scalars as they are, binary as base64, anything else as text."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
