"""The REST face's bodies: an Event Hubs batch in (``application/vnd.microsoft.servicebus.json``),
checked strictly with errors naming the index and field, and a stored event out as readback JSON.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from audiencehub.emulator.records import (
    PROPS_AT,
    IncomingEvent,
    Row,
    StoredEvent,
    plain_value,
    row_props,
)
from workers.timefmt import format_rfc3339

__all__ = [
    "BATCH_CONTENT_TYPE",
    "SINGLE_CONTENT_TYPE",
    "BadBatch",
    "check_properties",
    "decode_batch",
    "event_json",
    "rows_json",
]

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
SINGLE_CONTENT_TYPE = "application/atom+xml"
_ITEM_FIELDS = frozenset({"Body", "UserProperties", "BrokerProperties", "IsBodyBase64"})
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


class BadBatch(ValueError):
    """The body is not a valid Event Hubs batch; the message names the index and field."""


def check_properties(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadBatch(f"{where}: must be a JSON object")
    for name, item in value.items():
        if not isinstance(item, _SCALARS):
            raise BadBatch(f"{where}.{name}: must be a string, number, boolean or null")
    return value


def _property_map(value: Any, index: int, field: str) -> dict[str, Any]:
    """:func:`check_properties` for one event's map, its message built only on failure (this
    runs twice for every event received)."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadBatch(f"event[{index}].{field}: must be a JSON object")
    for item in value.values():
        if type(item) not in _SCALAR_TYPES and not isinstance(item, _SCALARS):
            check_properties(value, f"event[{index}].{field}")
    return value


def decode_batch(body: bytes) -> list[IncomingEvent]:
    """Parse ``[{"Body": str, "UserProperties": {…}, "BrokerProperties": {…}}, …]`` strictly.

    ``"IsBodyBase64": true`` (the batch format's way to carry binary bodies) means ``Body`` is
    base64 and the event is its decoded bytes.
    """
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBatch(f"body is not valid JSON: {exc}") from None
    if type(items) is not list:
        raise BadBatch('body must be a JSON array of events ([{"Body": "…"}, …])')
    if not items:
        raise BadBatch("batch is empty")
    out: list[IncomingEvent] = []
    append = out.append
    known = _ITEM_FIELDS
    new_event = tuple.__new__
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise BadBatch(f"event[{index}]: must be a JSON object with a Body")
        text = item.get("Body")
        if type(text) is not str:
            what = "is missing" if text is None else "must be a string"
            raise BadBatch(f"event[{index}].Body: {what}")
        if not item.keys() <= known:
            extra = ", ".join(sorted(name[:40] for name in set(item) - known)[:5])
            raise BadBatch(
                f"event[{index}]: unknown field(s) {extra} "
                "(expected Body, UserProperties, BrokerProperties, IsBodyBase64)"
            )
        data = text.encode("utf-8")
        base64_flag = item.get("IsBodyBase64")
        if base64_flag is not None:
            if type(base64_flag) is not bool:
                raise BadBatch(f"event[{index}].IsBodyBase64: must be true or false")
            if base64_flag:
                try:
                    data = base64.b64decode(data, validate=True)
                except ValueError:
                    raise BadBatch(
                        f"event[{index}].Body: IsBodyBase64 is true but Body is not base64"
                    ) from None
        user = _property_map(item.get("UserProperties"), index, "UserProperties")
        broker = _property_map(item.get("BrokerProperties"), index, "BrokerProperties")
        key = broker.get("PartitionKey")
        if key is not None and type(key) is not str:
            raise BadBatch(f"event[{index}].BrokerProperties.PartitionKey: must be a string")
        # tuple.__new__ is what IncomingEvent(...) runs, without the Python-level __new__.
        append(new_event(IncomingEvent, (data, user, broker, key)))
    return out


def rows_json(rows: list[tuple[Row, int, int]]) -> list[dict[str, Any]]:
    """:func:`event_json` of each ``row_event(row, sequence_number, offset)``, the same objects
    made straight from the store's rows (a readback page holds up to 100,000 of them)."""
    out: list[dict[str, Any]] = []
    append = out.append
    plain = plain_value
    last_when = -1
    when_text = ""
    for row, sequence_number, offset in rows:
        seq, _, pid, key, data, users, brokers, when, face, request = row[:PROPS_AT]
        if users == 1 and brokers == 1 and type(row[11]) is str and type(row[13]) is str:
            # What a REST or SDK sender's event carries: an idempotency key and the partition
            # key, both text (plain_value leaves text as it is).
            user_json = {row[10]: row[11]}
            broker_json = {row[12]: row[13]}
        else:
            user, broker = row_props(row)
            user_json = {k: v if type(v) is str else plain(v) for k, v in user.items()}
            broker_json = {k: v if type(v) is str else plain(v) for k, v in broker.items()}
        try:
            body = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            body = base64.b64encode(data).decode("ascii")
            encoding = "base64"
        if when != last_when:  # a request's events share their receipt time
            last_when, when_text = when, format_rfc3339(when)
        append(
            {
                "seq": seq,
                "partition_id": pid,
                "partition_key": key,
                "body": body,
                "body_encoding": encoding,
                "user_properties": user_json,
                "broker_properties": broker_json,
                "received_at": when_text,
                "face": face,
                "request": request,
                "sequence_number": sequence_number,
                "offset": str(offset),
            }
        )
    return out


def event_json(event: StoredEvent) -> dict[str, Any]:
    """One stored event for readback: the body as text (base64 if it is not UTF-8)."""
    try:
        body = event.body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body = base64.b64encode(event.body).decode("ascii")
        encoding = "base64"
    return {
        "seq": event.seq,
        "partition_id": event.partition_id,
        "partition_key": event.partition_key,
        "body": body,
        "body_encoding": encoding,
        "user_properties": {k: plain_value(v) for k, v in event.user_properties.items()},
        "broker_properties": {k: plain_value(v) for k, v in event.broker_properties.items()},
        "received_at": format_rfc3339(event.received_at),
        "face": event.face,
        "request": event.request,
        # What a consumer sees: the partition's sequence number and offset (the enqueued time
        # is received_at).
        "sequence_number": event.sequence_number,
        "offset": str(event.offset),
    }
