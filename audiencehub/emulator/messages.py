"""Events as AMQP messages, both ways: what a producer's delivery becomes in the store, and what
a consumer receives for a stored event.

In: one message, or a batch (message format ``BATCH_FORMAT``, each data section an encoded
message), shaped like the REST face's events (UserProperties, BrokerProperties, partition key).
Out: the producer's application properties, properties section and annotations as they arrived,
plus the service's annotations ``x-opt-sequence-number`` (long), ``x-opt-offset`` (string),
``x-opt-enqueued-time`` (timestamp) and ``x-opt-partition-key`` (string), and one data section
with the body; a link that asked for runtime metrics also gets the partition's ``last_enqueued_*``
figures as delivery annotations.
"""

from __future__ import annotations

import time
from typing import Any

from audiencehub.emulator.amqp import (
    NULL,
    DecodeError,
    Message,
    decode_message,
    e_described,
    e_list,
    e_map,
    e_message_id,
    e_str,
    e_sym,
    e_timestamp,
    encode_value,
)
from audiencehub.emulator.records import IncomingEvent, PartitionInfo, StoredEvent

__all__ = ["BATCH_FORMAT", "PARTITION_KEY", "decode_delivery", "incoming_event", "render_event"]

BATCH_FORMAT = 0x80013700
PARTITION_KEY = "x-opt-partition-key"
# Broker properties carried in the message's properties section, by field index.
_PROPERTY_FIELDS = {
    "MessageId": 0,
    "To": 2,
    "Label": 3,
    "ReplyTo": 4,
    "CorrelationId": 5,
    "ContentType": 6,
}
_BROKER_NAMES = {index: name for name, index in _PROPERTY_FIELDS.items()}


# ---- a producer's delivery into the store -------------------------------------------------------


def incoming_event(message: Message, batch_key: str | None = None) -> IncomingEvent:
    """The stored form, shaped like the REST face's: UserProperties, BrokerProperties, key.

    Values keep their AMQP types (binary, UUID, timestamp, symbol …) so consumers get them back
    as sent; the JSON readback shows them with ``records.plain_value``.
    """
    user = {str(k): v for k, v in message.application_properties.items()}
    key = batch_key
    broker: dict[str, Any] = {}
    for name, raw in message.annotations.items():
        if name == PARTITION_KEY:
            if isinstance(raw, str):
                key = str(raw)
        else:
            broker[str(name)] = raw
    if key is not None:
        broker["PartitionKey"] = key
    props = message.properties
    if props:
        for index, name in _BROKER_NAMES.items():
            if index < len(props) and props[index] is not None:
                broker[name] = props[index]
    return IncomingEvent(message.body, user, broker, key)


def decode_delivery(payload: bytes, message_format: int) -> tuple[list[IncomingEvent], str | None]:
    """The events of one delivery and the batch's partition key (a batch lands in one place)."""
    outer = decode_message(payload)
    key = outer.annotations.get(PARTITION_KEY)
    key = str(key) if isinstance(key, str) else None
    if message_format != BATCH_FORMAT:
        return [incoming_event(outer)], key
    if not outer.data:
        raise DecodeError("batch is empty (no data sections)")
    events = [incoming_event(decode_message(part), key) for part in outer.data]
    return events, key


# ---- a stored event out to a consumer ----------------------------------------------------------

_SERVICE_ANNOTATIONS = frozenset(
    {"x-opt-sequence-number", "x-opt-offset", "x-opt-enqueued-time", "x-opt-partition-key"}
)
_K_SEQUENCE = e_sym("x-opt-sequence-number")
_K_OFFSET = e_sym("x-opt-offset")
_K_ENQUEUED = e_sym("x-opt-enqueued-time")
_K_KEY = e_sym("x-opt-partition-key")
_K_LAST_SEQUENCE = e_sym("last_enqueued_sequence_number")
_K_LAST_OFFSET = e_sym("last_enqueued_offset")
_K_LAST_TIME = e_sym("last_enqueued_time_utc")
_K_RETRIEVED = e_sym("runtime_info_retrieval_time_utc")


def render_event(event: StoredEvent, runtime: PartitionInfo | None = None) -> bytes:
    """One stored event as the encoded AMQP message a consumer receives."""
    sections: list[bytes] = []
    if runtime is not None:
        sections.append(
            e_described(
                0x71,
                e_map(
                    [
                        (_K_LAST_SEQUENCE, encode_value(runtime.last_enqueued_sequence_number)),
                        (_K_LAST_OFFSET, e_str(str(runtime.last_enqueued_offset))),
                        (_K_LAST_TIME, e_timestamp(runtime.last_enqueued_time // 1_000_000)),
                        (_K_RETRIEVED, e_timestamp(time.time_ns() // 1_000_000)),
                    ]
                ),
            )
        )
    annotations: list[tuple[bytes, bytes]] = []
    fields: list[bytes] | None = None
    for name, value in event.broker_properties.items():
        index = _PROPERTY_FIELDS.get(name)
        if index is not None:
            if fields is None:
                fields = [NULL] * 13
            if index in (0, 5):
                fields[index] = e_message_id(value)
            elif index == 6:
                fields[index] = e_sym(str(value))
            else:
                fields[index] = e_str(str(value))
        elif name.startswith("x-") and name not in _SERVICE_ANNOTATIONS:
            annotations.append((e_sym(name), encode_value(value)))
    annotations.append((_K_SEQUENCE, encode_value(event.sequence_number)))
    annotations.append((_K_OFFSET, e_str(str(event.offset))))
    annotations.append((_K_ENQUEUED, e_timestamp(event.received_at // 1_000_000)))
    if event.partition_key is not None:
        annotations.append((_K_KEY, e_str(event.partition_key)))
    sections.append(e_described(0x72, e_map(annotations)))
    if fields is not None:
        sections.append(e_described(0x73, e_list(fields)))
    if event.user_properties:
        sections.append(
            e_described(
                0x74,
                e_map([(e_str(k), encode_value(v)) for k, v in event.user_properties.items()]),
            )
        )
    sections.append(e_described(0x75, _e_data(event.body)))
    return b"".join(sections)


def _e_data(body: bytes) -> bytes:
    if len(body) < 256:
        return bytes((0xA0, len(body))) + body
    return b"\xb0" + len(body).to_bytes(4, "big") + body
