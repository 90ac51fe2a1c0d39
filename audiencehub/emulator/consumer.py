"""Event Hubs' receive side, as the stand-in's AMQP face serves it to consumers.

This module is the Event Hubs behaviour; the AMQP connection (``amqp/``) does the protocol:
credit, windows and frames, and ``messages.py`` renders each event as the message a consumer gets. What a consumer link means, learned from the azure-eventhub SDK's
pure-Python client (5.15: ``_consumer.py``, ``_utils.event_position_selector``,
``_transport/_pyamqp_transport.py``) and from Microsoft's documentation:

- **Address** ``amqps://host/HUB/ConsumerGroups/GROUP/Partitions/N`` (scheme and host optional).
  The group must exist: ``$Default`` always does, others are named when the stand-in starts.
- **Starting position**: the source's ``apache.org:selector-filter:string`` filter holds a
  selector such as ``amqp.annotation.x-opt-offset > '-1'`` (earliest), ``… > '@latest'``,
  ``amqp.annotation.x-opt-sequence-number >= '42'`` or ``amqp.annotation.x-opt-enqueued-time >
  '1714650000000'`` (ms). No filter means the start of the partition. A sequence number or offset
  past the last one is refused as the service refuses it.
- **Owner level** (link property ``com.microsoft:epoch``, a long): a receiver with an owner level
  takes the partition for its group from every receiver with a lower one and from every receiver
  without one; a lower one, or one without, cannot join while it holds it (``amqp:link:stolen``).
  Without owner levels at most 5 receivers share a partition per group
  (``amqp:resource-limit-exceeded``).
- **Each event** goes out as one AMQP message, pre-settled (``messages.render_event``). A link
  that desires ``com.microsoft:enable-receiver-runtime-metric`` also gets the partition's
  ``last_enqueued_*`` figures as delivery annotations on each event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from audiencehub.emulator.amqp import Described
from audiencehub.emulator.hubs import UnknownHub
from audiencehub.emulator.messages import render_event
from audiencehub.emulator.store import EventStore, PositionError

__all__ = [
    "DEFAULT_CONSUMER_GROUP",
    "MAX_READERS_WITHOUT_OWNER_LEVEL",
    "ConsumerAddress",
    "LinkRefused",
    "Reader",
    "Readers",
    "StartPosition",
    "open_reader",
    "parse_consumer_address",
    "parse_selector",
    "valid_consumer_group",
]

DEFAULT_CONSUMER_GROUP = "$Default"
SELECTOR_FILTER = "apache.org:selector-filter:string"
EPOCH_PROPERTY = "com.microsoft:epoch"
RUNTIME_METRIC = "com.microsoft:enable-receiver-runtime-metric"
# Per consumer group and partition, receivers without an owner level (the service's quota).
MAX_READERS_WITHOUT_OWNER_LEVEL = 5
# An AMQP consumer group name is at most 50 characters (Event Hubs quotas).
MAX_CONSUMER_GROUP = 50

_SELECTOR = re.compile(
    r"^\s*amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'\s*$"
)
_KINDS = {"offset": "offset", "sequence-number": "sequence", "enqueued-time": "time"}
_GROUP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-$")


class LinkRefused(Exception):
    """A consumer link the stand-in will not serve: the AMQP condition and the reason."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


class ConsumerAddress(NamedTuple):
    hub: str
    consumer_group: str
    partition: str


class StartPosition(NamedTuple):
    """Where a reader starts: ``by`` is earliest, latest, offset, sequence or time (ms)."""

    by: str
    value: int
    inclusive: bool


EARLIEST = StartPosition("earliest", -1, False)


def valid_consumer_group(name: str) -> bool:
    """Letters, digits, ``.-_`` (``$`` for ``$Default``), at most 50 characters."""
    return 0 < len(name) <= MAX_CONSUMER_GROUP and all(ch in _GROUP_CHARS for ch in name)


def parse_consumer_address(address: str) -> ConsumerAddress | None:
    """``HUB/ConsumerGroups/G/Partitions/N`` (optionally an amqps:// URL) → its three parts."""
    path = urlsplit(address).path if "://" in address else address
    parts = [unquote(part) for part in path.split("/") if part]
    if (
        len(parts) == 5
        and parts[1].lower() == "consumergroups"
        and parts[3].lower() == "partitions"
    ):
        return ConsumerAddress(parts[0], parts[2], parts[4])
    return None


def parse_selector(expression: str) -> StartPosition:
    """The SDK's selector (``amqp.annotation.x-opt-offset > '-1'`` …) as a start position."""
    match = _SELECTOR.match(expression)
    if match is None:
        raise ValueError(
            f"selector {expression[:200]!r} is not one the hub understands "
            "(amqp.annotation.x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time > or >= "
            "'value')"
        )
    kind, operator, raw = match.groups()
    inclusive = operator == ">="
    if kind == "offset":
        if raw == "@latest":
            return StartPosition("latest", -1, False)
        if raw == "-1":
            return EARLIEST if not inclusive else StartPosition("earliest", -1, True)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"the {kind} in selector {raw[:60]!r} is not a whole number") from None
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"the {kind} in selector {raw[:60]!r} is out of range")
    return StartPosition(_KINDS[kind], value, inclusive)


def start_position(filters: Any) -> StartPosition:
    """The link source's filter set → a start position (no selector: the earliest event)."""
    if not isinstance(filters, dict):
        return EARLIEST
    for key, value in filters.items():
        if str(key) != SELECTOR_FILTER:
            continue
        expression = value.value if isinstance(value, Described) else value
        if isinstance(expression, bytes):
            expression = expression.decode("utf-8", "replace")
        if not isinstance(expression, str):
            raise ValueError("the selector filter must hold a string")
        return parse_selector(expression)
    return EARLIEST


@dataclass(slots=True, eq=False)
class Reader:
    """One attached consumer link: where it reads and how far it got."""

    name: str
    hub: str
    consumer_group: str
    partition: str
    next_sequence: int
    owner_level: int | None
    runtime_metric: bool
    conn: Any = None  # the AmqpConnection serving it
    session: Any = None
    link: Any = None
    closed: bool = False
    scheduled: bool = False  # a continuation of its pump is queued on the loop

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.hub.lower(), self.consumer_group.lower(), self.partition)

    def take(self, store: EventStore, limit: int) -> tuple[int, list[bytes]]:
        """The next ``limit`` events at most, rendered, and the sequence number of the first;
        the cursor moves past them (past events that are gone, too)."""
        events, self.next_sequence = store.read(self.hub, self.partition, self.next_sequence, limit)
        if not events:
            return self.next_sequence, []
        runtime = store.partition_info(self.hub, self.partition) if self.runtime_metric else None
        return events[0].sequence_number, [render_event(event, runtime) for event in events]


class Readers:
    """Who reads each (hub, consumer group, partition), with the owner-level rules."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], list[Reader]] = {}

    def admit(self, reader: Reader) -> list[Reader]:
        """Add ``reader``; returns the readers it displaces. Raises LinkRefused."""
        current = self._by_key.setdefault(reader.key, [])
        levels = [r.owner_level for r in current if r.owner_level is not None]
        top = max(levels) if levels else None
        where = (
            f"partition {reader.partition!r} of event hub {reader.hub!r} "
            f"(consumer group {reader.consumer_group!r})"
        )
        if reader.owner_level is None:
            if top is not None:
                raise LinkRefused(
                    "amqp:link:stolen",
                    f"a receiver with owner level {top} holds {where}; a receiver without an "
                    "owner level cannot join it",
                )
            if len(current) >= MAX_READERS_WITHOUT_OWNER_LEVEL:
                raise LinkRefused(
                    "amqp:resource-limit-exceeded",
                    "Exceeded the maximum number of allowed receivers per partition in a "
                    f"consumer group which is {MAX_READERS_WITHOUT_OWNER_LEVEL} ({where})",
                )
            current.append(reader)
            return []
        if top is not None and reader.owner_level < top:
            raise LinkRefused(
                "amqp:link:stolen",
                f"a receiver with the higher owner level {top} holds {where}; one with "
                f"{reader.owner_level} cannot be created",
            )
        displaced = [
            r for r in current if r.owner_level is None or r.owner_level <= reader.owner_level
        ]
        self._by_key[reader.key] = [r for r in current if r not in displaced] + [reader]
        return displaced

    def leave(self, reader: Reader) -> None:
        current = self._by_key.get(reader.key)
        if current is not None and reader in current:
            current.remove(reader)
            if not current:
                del self._by_key[reader.key]

    def count(self) -> int:
        return sum(len(v) for v in self._by_key.values())


def open_reader(
    store: EventStore,
    consumer_groups: Sequence[str],
    name: str,
    address: str,
    filters: Any,
    properties: Any,
    desired_capabilities: Any,
) -> Reader:
    """Check a consumer link's address, group and position; the reader it becomes."""
    target = parse_consumer_address(address)
    if target is None:
        raise LinkRefused(
            "amqp:not-found",
            f"{address[:200]!r} is not a consumer address (HUB/ConsumerGroups/GROUP/Partitions/N)",
        )
    try:
        hub = store.hub(target.hub)
    except UnknownHub:
        raise LinkRefused(
            "amqp:not-found", f"event hub {target.hub[:100]!r} does not exist in this namespace"
        ) from None
    groups = {g.lower(): g for g in consumer_groups}
    group = groups.get(target.consumer_group.lower())
    if group is None:
        raise LinkRefused(
            "amqp:not-found",
            f"consumer group {target.consumer_group[:60]!r} does not exist on event hub "
            f"{hub.name!r} (groups: {', '.join(consumer_groups)}; start the stand-in with "
            "--consumer-group NAME to add one)",
        )
    if target.partition not in hub.partition_ids:
        raise LinkRefused(
            "amqp:not-found",
            f"event hub {hub.name!r} has no partition {target.partition[:20]!r} "
            f"(partitions: {', '.join(hub.partition_ids)})",
        )
    try:
        position = start_position(filters)
    except ValueError as exc:
        raise LinkRefused("amqp:invalid-field", str(exc)) from None
    try:
        first = _first_sequence(store, hub.name, target.partition, position)
    except PositionError as exc:
        raise LinkRefused("com.microsoft:argument-error", str(exc)) from None
    owner_level = None
    if isinstance(properties, dict):
        for key, value in properties.items():
            if str(key) == EPOCH_PROPERTY:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise LinkRefused(
                        "amqp:invalid-field", f"{EPOCH_PROPERTY} must be a long, not {value!r}"
                    )
                owner_level = int(value)
    wanted = (
        desired_capabilities if isinstance(desired_capabilities, list) else [desired_capabilities]
    )
    return Reader(
        name=name,
        hub=hub.name,
        consumer_group=group,
        partition=target.partition,
        next_sequence=first,
        owner_level=owner_level,
        runtime_metric=any(str(c) == RUNTIME_METRIC for c in wanted if c is not None),
    )


def _first_sequence(store: EventStore, hub: str, partition: str, at: StartPosition) -> int:
    if at.by == "earliest":
        return 0  # read() starts at the oldest event held
    if at.by == "latest":
        return store.end_of(hub, partition)
    return store.seek(hub, partition, at.by, at.value, at.inclusive)
