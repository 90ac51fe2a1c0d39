"""Sending to a hub over AMQP: where a sender link points, whether a delivery is accepted, and the
partition it lands in. A delivery is one request, stored like a REST request (face ``"amqp"``)
all or nothing, or refused with the condition the service would use.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from audiencehub.emulator.amqp import DecodeError
from audiencehub.emulator.amqp.links import Link
from audiencehub.emulator.hubs import Hub, UnknownHub
from audiencehub.emulator.messages import BATCH_FORMAT, decode_delivery
from audiencehub.emulator.store import EventStore, StoreFull
from workers.delivery.eventhub.partitions import MAX_PARTITION_KEY, key_length, partition_for_key

__all__ = ["accept", "bind_sender", "parse_entity", "placement"]


def parse_entity(address: str) -> tuple[str, str | None] | None:
    """``HUB`` → (HUB, None); ``HUB/Partitions/N`` → (HUB, N); URLs use their path."""
    path = urlsplit(address).path if "://" in address else address
    parts = [unquote(part) for part in path.split("/") if part]
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 3 and parts[1].lower() == "partitions":
        return parts[0], parts[2]
    return None


def bind_sender(
    store: EventStore, link: Link, address: str, authorized: Callable[[str], bool]
) -> tuple[str, str] | None:
    """Point a sending link at its hub (and partition); the reason if it cannot be."""
    entity = parse_entity(address)
    if entity is None:
        return "amqp:not-found", f"{address!r} is not an event hub (HUB or HUB/Partitions/N)"
    hub_name, partition = entity
    try:
        hub = store.hub(hub_name)
    except UnknownHub:
        return "amqp:not-found", f"event hub {hub_name!r} does not exist in this namespace"
    if partition is not None and partition not in hub.partition_ids:
        return (
            "amqp:not-found",
            f"event hub {hub.name!r} has no partition {partition!r} "
            f"(partitions: {', '.join(hub.partition_ids)})",
        )
    if not authorized(hub.name):
        return (
            "amqp:unauthorized-access",
            f"no valid token for event hub {hub.name!r} on this connection (put one on $cbs first)",
        )
    link.hub = hub.name
    link.partition = partition
    return None


def accept(
    store: EventStore,
    max_bytes: int,
    authorized: Callable[[str], bool],
    link: Link,
    data: bytes,
    message_format: int,
) -> tuple[int, tuple[str, str]]:
    """Check and store one delivery: (status as REST would say it, (condition, reason))."""
    if not authorized(link.hub):
        return 401, (
            "amqp:unauthorized-access",
            f"the token for event hub {link.hub!r} on this connection has expired",
        )
    if len(data) > max_bytes:
        return 413, (
            "amqp:link:message-size-exceeded",
            f"message of {len(data)} bytes exceeds the maximum of "
            f"{max_bytes} bytes per publication",
        )
    if message_format not in (0, BATCH_FORMAT):
        return 400, ("amqp:not-implemented", f"message format {message_format:#x} is unknown")
    try:
        events, key = decode_delivery(data, message_format)
    except DecodeError as exc:
        return 400, ("amqp:decode-error", f"message cannot be decoded: {exc}")
    try:
        hub = store.hub(link.hub)
    except UnknownHub:
        return 404, ("amqp:not-found", f"event hub {link.hub!r} no longer exists")
    # The batch's own key places it; each event's key is kept with it: both within the limit.
    keys = [("the batch", key)] + [(f"event[{i}]", e.partition_key) for i, e in enumerate(events)]
    for where, value in keys:
        if value is not None and key_length(value) > MAX_PARTITION_KEY:
            return 400, (
                "amqp:invalid-field",
                f"{where}'s partition key is {key_length(value)} characters; "
                f"the limit is {MAX_PARTITION_KEY}",
            )
    try:
        store.append(
            hub.name,
            events,
            "amqp",
            partition_id=placement(hub, link, key, message_format),
        )
    except StoreFull as exc:
        # The service's answer to a full entity: QuotaExceeded, amqp:resource-limit-exceeded.
        return 403, ("amqp:resource-limit-exceeded", f"QuotaExceeded: {exc}")
    return 201, ("", "")


def placement(hub: Hub, link: Link, key: str | None, message_format: int) -> str | None:
    """The link's partition, else the batch key's, else one round-robin pick per batch."""
    if link.partition is not None:
        return link.partition
    if message_format != BATCH_FORMAT:
        return None  # one message: the store places it by its key or round-robin
    if key is not None:
        return partition_for_key(key, hub.partition_ids)
    return hub.next_round_robin()
