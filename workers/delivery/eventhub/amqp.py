"""Sending over AMQP with the azure-eventhub SDK: one producer client per process, batches per partition.

Why batches per partition: an ``EventDataBatch`` carries a single partition key or partition id, so
batching by key would mean one tiny batch per user. Messages are grouped instead by the partition
the service itself would pick for their key (:func:`partition_for_key`, the service's hash, not the
Python SDK's, which differs for negative hashes), and each group goes to that partition id in
order. Every event still carries its user id as the ``x-opt-partition-key`` annotation, as the
SDK's own buffered mode does, so consumers see the key, and the same key → partition mapping as a
plain partition-key send would give.

Why lazily: the SDK client owns sockets and threads, cannot be pickled and must not cross a fork,
so it is created on the first send in the process that sends (a copy inherited through a fork is
abandoned, never closed, because its sockets are the parent's).

Why ``retry_total=0``: the caller (``workers.delivery.deliver``) has its own backoff and knows the job's
state. The SDK retries anyway: ``send_batch`` (5.15) catches any failed send and sends once more
on a rebuilt producer, which is enough to reconnect a link the hub closed while idle. So every
refusal the caller sees has been tried twice.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from typing import Any

from azure.eventhub import EventDataBatch, EventHubProducerClient
from azure.eventhub.amqp import AmqpAnnotatedMessage
from azure.eventhub.exceptions import (
    AuthenticationError,
    EventDataError,
    EventDataSendError,
)

from workers.delivery.eventhub.connstr import ConnectionString
from workers.delivery.eventhub.partitions import partition_for_key
from workers.delivery.eventhub.rest import IDEMPOTENCY_PROPERTY
from workers.delivery.eventhub.sender import ErrorKind, HubError, OutMessage

__all__ = [
    "PARTITION_KEY_ANNOTATION",
    "AmqpSender",
    "amqp_event",
    "classify_sdk_error",
    "encoded_size",
]

PARTITION_KEY_ANNOTATION = b"x-opt-partition-key"

# Rejection conditions (the part after the first ':', as the SDK's EventHubError.error has it).
_THROTTLED = frozenset({"server-busy", "resource-limit-exceeded"})
_TOO_LARGE = frozenset({"link:message-size-exceeded"})
_UNAUTHORIZED = frozenset({"unauthorized-access"})
_NOT_FOUND = frozenset({"not-found"})
_TRANSIENT = frozenset(
    {
        "internal-error",
        "timeout",
        "operation-cancelled",
        "connection:forced",
        "connection:framing-error",
        "link:detach-forced",
        "link:stolen",
        "session:window-violation",
        "socket-error",
        "unknown-error",
        "client-error",
    }
)
_STATUS = re.compile(r"Status code: (\d{3})")
_RETRY_AFTER = re.compile(r"(?:wait|after)\s+(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)
_SECRETS = (
    re.compile(r"(SharedAccessKey=)[^;\s]+", re.IGNORECASE),
    re.compile(r"(sig=)[^&\s;'\"]+", re.IGNORECASE),
    re.compile(r"(SharedAccessSignature )\S+"),
)


# ---- sizes ------------------------------------------------------------------------------------


def _var(n: int) -> int:
    """Encoded size of a string/binary of n bytes (8-bit length up to 255, else 32-bit)."""
    return n + (2 if n <= 255 else 5)


def _map_section(content: int) -> int:
    """A described map section: descriptor (3) + map8/map32 head + the pairs."""
    return 3 + (3 if content < 255 else 9) + content


_ANNOTATION_KEY = _var(len(PARTITION_KEY_ANNOTATION))  # a symbol
_PROPERTY_KEY = _var(len(IDEMPOTENCY_PROPERTY.encode()))  # a string


def amqp_event(message: OutMessage) -> AmqpAnnotatedMessage:
    """The event as sent: body, idempotency key property, partition key annotation.

    ``AmqpAnnotatedMessage`` rather than ``EventData``: the same bytes on the wire and the same
    ``EventDataBatch.add`` cost, but about 3 µs to build instead of about 11 µs (no header and
    properties objects).
    """
    return AmqpAnnotatedMessage(
        data_body=message.body,
        application_properties={IDEMPOTENCY_PROPERTY: message.idempotency_key},
        annotations={PARTITION_KEY_ANNOTATION: message.partition_key},
    )


def encoded_size(message: OutMessage) -> int:
    """Bytes this message adds to an ``EventDataBatch``, exactly as the SDK counts them.

    The event is message-annotations (the key), application-properties (the idempotency key) and
    one data section; inside a batch it is wrapped in a data section of its own (5 or 8 bytes).
    """
    key = len(message.partition_key.encode("utf-8"))
    idem = len(message.idempotency_key.encode("utf-8"))
    size = (
        _map_section(_ANNOTATION_KEY + _var(key))
        + _map_section(_PROPERTY_KEY + _var(idem))
        + 3
        + _var(len(message.body))
    )
    return size + (5 if size < 256 else 8)


# ---- errors -----------------------------------------------------------------------------------


def _redact(text: str, conn: ConnectionString | None = None) -> str:
    if conn is not None:
        text = text.replace(conn.text(), conn.redacted())
        if conn.key:
            text = text.replace(conn.key, "***")
    for pattern in _SECRETS:
        text = pattern.sub(r"\1***", text)
    return text


def _tidy(text: str) -> str:
    """One line, each statement once (SDK errors repeat their description and condition)."""
    kept: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        bare = line.removeprefix("Error Description:").strip()
        if line and line not in kept and bare not in kept:
            kept.append(line)
    return " ".join(kept)


def classify_sdk_error(exc: BaseException) -> tuple[ErrorKind, float | None]:
    """What an SDK exception means for the caller: (kind, retry-after seconds if given)."""
    text = str(exc)
    condition = getattr(exc, "error", None) or ""
    match = _RETRY_AFTER.search(text)
    retry_after = float(match.group(1)) if match else None
    if condition in _UNAUTHORIZED:
        return "unauthorized", None
    if condition in _THROTTLED:
        return "throttled", retry_after
    if condition in _TOO_LARGE:
        return "too_large", None
    if condition in _NOT_FOUND:
        return "not_found", None
    if isinstance(exc, AuthenticationError):
        # A CBS put-token answer other than 2xx: "Status code: 401 …"
        found = _STATUS.search(text)
        status = int(found.group(1)) if found else None
        if status in (401, 403):
            return "unauthorized", None
        if status in (429, 503):
            return "throttled", retry_after
        if status == 404:
            return "not_found", None
        return "transient", None
    if isinstance(exc, EventDataSendError):
        if condition in _TRANSIENT or not condition:
            return "transient", None
        return "bad_request", None
    if isinstance(exc, EventDataError):
        return ("too_large" if "size" in text.lower() else "bad_request"), None
    # ConnectError, ConnectionLostError, OperationTimeoutError, ClientClosedError, socket errors.
    return "transient", None


def sdk_hub_error(exc: BaseException, conn: ConnectionString, what: str = "") -> HubError:
    """An SDK exception as a HubError: its kind, and a one-line reason without any secret."""
    kind, retry_after = classify_sdk_error(exc)
    text = _tidy(_redact(str(exc), conn))
    where = f"{conn.namespace}/{conn.hub}" + (f" ({what})" if what else "")
    reason = f"{where}: {type(exc).__name__}: {text}"
    if len(reason) > 400:
        reason = reason[:397] + "..."
    return HubError(kind, reason, retry_after=retry_after)


# ---- the sender -------------------------------------------------------------------------------


class AmqpSender:
    """The ``Sender`` over AMQP: all or nothing per call from the caller's view.

    A call names its partition (the deliverer groups by partition); without one, the sender
    groups the messages itself. A call can need several publications (a group bigger than the
    link's limit). They go out in order and stop at the first refusal, which is raised; the
    caller re-sends the whole call, so batches sent before the refusal arrive twice
    (at-least-once, idempotency keys mark them).
    """

    concurrency = 1  # the SDK's client is not thread-safe

    def __init__(
        self,
        conn: ConnectionString,
        max_batch_bytes: int = 1_000_000,
        timeout_s: float = 30.0,
        retry_total: int = 0,
    ) -> None:
        self.max_batch_bytes = max_batch_bytes
        self._conn = conn
        self._where = f"{conn.namespace}/{conn.hub}"
        self._timeout = timeout_s
        self._retry_total = retry_total
        self._client: EventHubProducerClient | None = None
        self._owner = 0  # pid that created the client
        self._partition_ids: tuple[str, ...] | None = None
        self._link_max: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable without its client: the copy makes its own on first send."""
        state = dict(self.__dict__)
        state["_client"] = None
        state["_owner"] = 0
        return state

    # ---- Sender ---------------------------------------------------------------------------------

    def encoded_size(self, message: OutMessage) -> int:
        return encoded_size(message)

    def forget(self, messages: Sequence[OutMessage]) -> None:
        """Nothing is kept between sizing and sending."""

    def send(self, messages: Sequence[OutMessage], partition_id: str | None = None) -> None:
        if not messages:
            return
        try:
            client = self._producer()
            groups: dict[str, list[OutMessage]] = {}
            if partition_id is not None:
                groups[partition_id] = list(messages)
            else:
                ids = self._partitions(client)
                for message in messages:
                    key = partition_for_key(message.partition_key, ids)
                    groups.setdefault(key, []).append(message)
            limit = self._batch_limit(client, next(iter(groups)))
            for pid, group in groups.items():
                self._send_partition(client, pid, group, limit)
        except HubError:
            raise
        except Exception as exc:
            raise self._hub_error(exc) from None

    def partition_ids(self) -> tuple[str, ...]:
        """Asked again on every call (the deliverer refreshes every few minutes), so partitions
        added to a Premium or Dedicated hub are followed."""
        try:
            ids = tuple(str(p) for p in self._producer().get_partition_ids())
        except Exception as exc:
            raise self._hub_error(exc) from None
        self._partition_ids = ids
        return ids

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owner == os.getpid():
            # Closing a broken client must not hide why it broke.
            with contextlib.suppress(Exception):
                client.close()

    # ---- internals ----------------------------------------------------------------------------

    def _producer(self) -> EventHubProducerClient:
        pid = os.getpid()
        if self._client is not None and self._owner != pid:
            self._client = None  # inherited through a fork: the parent's sockets, not ours
        if self._client is None:
            self._client = EventHubProducerClient.from_connection_string(
                self._conn.text(), retry_total=self._retry_total
            )
            self._owner = pid
        return self._client

    def _partitions(self, client: EventHubProducerClient) -> tuple[str, ...]:
        if self._partition_ids is None:
            self._partition_ids = tuple(client.get_partition_ids())
        return self._partition_ids

    def _batch_limit(self, client: EventHubProducerClient, partition_id: str) -> int:
        """Our limit, or the link's (the hub's max message size) if that is smaller."""
        if self._link_max is None:
            self._link_max = client.create_batch(partition_id=partition_id).max_size_in_bytes
        return min(self.max_batch_bytes, self._link_max)

    def _send_partition(
        self,
        client: EventHubProducerClient,
        partition_id: str,
        messages: list[OutMessage],
        limit: int,
    ) -> None:
        batch = client.create_batch(partition_id=partition_id, max_size_in_bytes=limit)
        for message in messages:
            event = amqp_event(message)
            if self._add(batch, event):
                continue
            if len(batch) == 0:
                raise self._too_large(message, limit)
            client.send_batch(batch, timeout=self._timeout)
            batch = client.create_batch(partition_id=partition_id, max_size_in_bytes=limit)
            if not self._add(batch, event):
                raise self._too_large(message, limit)
        if len(batch):
            client.send_batch(batch, timeout=self._timeout)

    @staticmethod
    def _add(batch: EventDataBatch, event: AmqpAnnotatedMessage) -> bool:
        try:
            batch.add(event)
        except ValueError:
            return False
        return True

    def _too_large(self, message: OutMessage, limit: int) -> HubError:
        return HubError(
            "too_large",
            f"{self._where}: a message of {encoded_size(message):,} encoded bytes does not fit "
            f"in a batch of at most {limit:,} bytes",
        )

    def _hub_error(self, exc: BaseException) -> HubError:
        kind, _ = classify_sdk_error(exc)
        if kind in ("unauthorized", "not_found"):
            # The SDK keeps a half-open client after a refused token; start clean next time.
            self.close()
            self._partition_ids = None
            self._link_max = None
        return sdk_hub_error(exc, self._conn)
