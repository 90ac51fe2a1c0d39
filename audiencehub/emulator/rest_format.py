"""The REST face's bodies: an Event Hubs batch in (``application/vnd.microsoft.servicebus.json``),
checked strictly with errors naming the index and field, and a stored event out as readback JSON.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from audiencehub.emulator.records import IncomingEvent, StoredEvent, plain_value
from workers.timefmt import format_rfc3339

__all__ = [
    "BATCH_CONTENT_TYPE",
    "SINGLE_CONTENT_TYPE",
    "BadBatch",
    "check_properties",
    "decode_batch",
    "event_json",
]

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
SINGLE_CONTENT_TYPE = "application/atom+xml"
_ITEM_FIELDS = frozenset({"Body", "UserProperties", "BrokerProperties", "IsBodyBase64"})
_SCALARS = (str, int, float, bool, type(None))


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
        if base64_flag is not None and type(base64_flag) is not bool:
            raise BadBatch(f"event[{index}].IsBodyBase64: must be true or false")
        if base64_flag:
            try:
                data = base64.b64decode(data, validate=True)
            except ValueError:
                raise BadBatch(
                    f"event[{index}].Body: IsBodyBase64 is true but Body is not base64"
                ) from None
        user = item.get("UserProperties")
        user = {} if user is None else check_properties(user, f"event[{index}].UserProperties")
        broker = item.get("BrokerProperties")
        key: str | None = None
        if broker is None:
            broker = {}
        else:
            broker = check_properties(broker, f"event[{index}].BrokerProperties")
            key = broker.get("PartitionKey")
            if key is not None and type(key) is not str:
                raise BadBatch(f"event[{index}].BrokerProperties.PartitionKey: must be a string")
        append(IncomingEvent(data, user, broker, key))
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
