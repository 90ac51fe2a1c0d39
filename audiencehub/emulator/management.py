"""``$management`` on the AMQP face: READ of ``com.microsoft:eventhub`` and
``com.microsoft:partition``, and the reply message both ``$management`` and ``$cbs`` answer with.

A request carries its own ``security_token``, or relies on a token put on ``$cbs`` for the hub.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audiencehub.emulator.amqp import (
    NULL,
    Array,
    Message,
    Timestamp,
    e_described,
    e_map,
    e_message_id,
    e_str,
    encode_value,
    performative,
)
from audiencehub.emulator.auth import Authorizer, TokenError
from audiencehub.emulator.hubs import UnknownHub
from audiencehub.emulator.store import EventStore

__all__ = ["read", "reply_message", "status"]


def status(code: int, text: str) -> dict[str, Any]:
    """A management reply's status. Event Hubs answers with status-code / status-description;
    the SDK (5.15) reads the description under statusDescription, so it goes under both names."""
    return {"status-code": code, "status-description": text, "statusDescription": text}


def read(
    request: Message,
    auth: Authorizer,
    store: EventStore,
    authorized: Callable[[str], bool],
    namespace: str | None = None,
) -> tuple[int, str, Any]:
    """READ com.microsoft:eventhub / com.microsoft:partition: (status, text, body).

    A ``security_token`` in the request must be for ``namespace``, the host the connection's
    open named (as a REST token must be for the Host addressed); an open that named no host
    leaves it uncompared."""
    props = request.application_properties
    operation = props.get("operation")
    kind = props.get("type")
    name = str(props.get("name") or "")
    if operation != "READ":
        return 501, f"operation {operation!r} is not supported (only READ)", None
    token = props.get("security_token")
    try:
        if isinstance(token, str):
            auth.check(token, name, namespace=namespace)
        elif not authorized(name):
            return 401, f"no valid token for event hub {name!r} on this connection", None
    except TokenError as exc:
        return 401, f"authorization failed: {exc}", None
    try:
        hub = store.hub(name)
    except UnknownHub:
        return 404, f"event hub {name!r} does not exist in this namespace", None
    if kind == "com.microsoft:eventhub":
        return (
            200,
            "OK",
            {
                "name": hub.name,
                "type": "com.microsoft:eventhub",
                "created_at": Timestamp(hub.created_at // 1_000_000),
                "partition_count": len(hub.partition_ids),
                "partition_ids": Array("string", list(hub.partition_ids)),
            },
        )
    if kind == "com.microsoft:partition":
        partition = str(props.get("partition") or "")
        if partition not in hub.partition_ids:
            return 404, f"event hub {hub.name!r} has no partition {partition!r}", None
        info = store.partition_info(hub.name, partition)
        return (
            200,
            "OK",
            {
                "name": hub.name,
                "type": "com.microsoft:partition",
                "partition": partition,
                "begin_sequence_number": info.begin_sequence_number,
                "last_enqueued_sequence_number": info.last_enqueued_sequence_number,
                "last_enqueued_offset": str(info.last_enqueued_offset),
                "last_enqueued_time_utc": Timestamp(info.last_enqueued_time // 1_000_000),
                "is_partition_empty": info.is_empty,
            },
        )
    return 400, f"unknown management type {kind!r}", None


def reply_message(correlation_id: Any, status: dict[str, Any], body: Any) -> bytes:
    """The encoded reply to a request: its message-id as correlation-id, the status as
    application properties, and the body (if any) as an amqp-value."""
    properties = performative(
        0x73,
        NULL,  # message-id
        NULL,  # user-id
        NULL,  # to
        NULL,  # subject
        NULL,  # reply-to
        e_message_id(correlation_id),
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
    )
    app = e_described(0x74, e_map([(e_str(k), encode_value(v)) for k, v in status.items()]))
    message = properties + app
    if body is not None:
        message += e_described(0x77, encode_value(body))
    return message
