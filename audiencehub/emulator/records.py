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
    "PROPS_AT",
    "IncomingEvent",
    "PartitionInfo",
    "Props",
    "Row",
    "StoredEvent",
    "make_row",
    "plain_value",
    "record_row",
    "row_event",
    "row_props",
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


# Internally each event is one flat, exact tuple: StoredEvent's fields in order (without the
# partition numbers, which the partition log keeps), except that the two property dicts are
# replaced by their sizes, and their keys and values follow at the end:
#
#   (seq, hub, partition, key, body, n_user, n_broker, received_at, face, request,
#    *user keys, *user values, *broker keys, *broker values)
#
# CPython stops GC-tracking an exact tuple of atoms at the first young collection that sees it; a
# NamedTuple (a subclass) or a tuple holding a dict stays tracked for good. With a million stored
# events that difference is what makes each full collection take ~200 ms and halves intake. One
# flat tuple per event (rather than a row holding a tuple of (name, value) pairs per property map:
# five tracked objects) is one allocation the collector looks at, and is untracked in one pass:
# a nested tuple is untracked only after what it holds, one level per collection, and the levels
# still tracked went on to be traversed again by the older generations.
Props = tuple[tuple[str, Any], ...]
Row = tuple[Any, ...]
PROPS_AT = 10
"""Where a row's property names and values begin."""


def make_row(
    seq: int,
    hub: str,
    partition_id: str,
    key: str | None,
    body: bytes,
    user: dict[str, Any],
    broker: dict[str, Any],
    received_at: int,
    face: str,
    request: int,
) -> Row:
    """A row (see above): the one place its layout is written."""
    return (
        seq,
        hub,
        partition_id,
        key,
        body,
        len(user),
        len(broker),
        received_at,
        face,
        request,
        *user,
        *user.values(),
        *broker,
        *broker.values(),
    )


def row_props(row: Row) -> tuple[dict[str, Any], dict[str, Any]]:
    """A row's user and broker properties, as new dicts."""
    users, brokers = row[5], row[6]
    if not users and not brokers:
        return {}, {}
    at = PROPS_AT + 2 * users
    user = dict(zip(row[PROPS_AT : PROPS_AT + users], row[PROPS_AT + users : at], strict=True))
    broker = dict(zip(row[at : at + brokers], row[at + brokers : at + 2 * brokers], strict=True))
    return user, broker


def row_event(row: Row, sequence_number: int = -1, offset: int = -1) -> StoredEvent:
    user, broker = row_props(row)
    seq, hub, pid, key, body, _, _, when, face, request = row[:PROPS_AT]
    return StoredEvent(
        seq,
        hub,
        pid,
        key,
        body,
        user,
        broker,
        when,
        face,
        request,
        sequence_number,
        offset,
    )


def row_record(row: Row) -> list[Any]:
    """A row as plain values for the journal (property maps as maps)."""
    user, broker = row_props(row)
    seq, hub, pid, key, body, _, _, when, face, request = row[:PROPS_AT]
    return [seq, hub, pid, key, body, user, broker, when, face, request]


def record_row(record: Sequence[Any]) -> Row:
    """The inverse of :func:`row_record`."""
    seq, hub, pid, key, body, user, broker, when, face, request = record
    return make_row(
        int(seq),
        str(hub),
        str(pid),
        None if key is None else str(key),
        bytes(body),
        {str(k): v for k, v in user.items()},
        {str(k): v for k, v in broker.items()},
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
