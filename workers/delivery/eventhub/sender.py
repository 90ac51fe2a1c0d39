"""The one interface every transport implements, and the errors a hub can answer with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

ErrorKind = Literal[
    "throttled", "transient", "too_large", "bad_request", "unauthorized", "not_found", "redirect"
]
FATAL_KINDS = frozenset({"unauthorized", "not_found", "redirect"})
"""Answers no retry can fix: the job fails at once with the reason, its backlog kept."""


@dataclass(slots=True)
class OutMessage:
    """One message for the hub: its JSON body, the user as partition key, and its dedup key.
    Never changed once made; not frozen because one is made per message sent (see Pending)."""

    body: bytes
    partition_key: str
    idempotency_key: str


class HubError(Exception):
    """The hub refused or could not take a batch. The message never contains a secret."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f"{self.status} " if self.status else ""
        return f"hub answered {status}{self.kind}: {self.reason}"


def classify_status(status: int, too_large: bool = False) -> ErrorKind:
    """What a REST answer means (docs/delivery.md, "When the hub says no").

    Per the REST reference (Event Hubs send, and Service Bus's send behind the same gateway):
    401 is a key the hub refuses; 403 is "quota exceeded or message too large", so it is
    throttling unless the answer says the message is too large; 404 and 410 say the hub (or
    publisher) does not exist, which no retry fixes. A redirect is never followed.
    """
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "too_large" if too_large else "throttled"
    if status in (404, 410):
        return "not_found"
    if 300 <= status < 400:
        return "redirect"
    if status == 413:
        return "too_large"
    if status == 400:
        return "too_large" if too_large else "bad_request"
    if status in (429, 503):
        return "throttled"
    return "transient"


class Sender(Protocol):
    """Sends one batch, all or nothing: returns when the hub accepted it, raises HubError if not.

    ``concurrency``: how many partitions a deliverer may send to at once with this sender (1
    when the sender is not thread-safe, as the SDK's client is not).
    """

    max_batch_bytes: int
    concurrency: int

    def encoded_size(self, message: OutMessage) -> int: ...

    def forget(self, messages: Sequence[OutMessage]) -> None:
        """Messages sized but never to be sent (a round read ahead, then dropped): whatever
        ``encoded_size`` kept for their ``send`` can go."""

    def send(self, messages: Sequence[OutMessage], partition_id: str | None = None) -> None:
        """One publication to ``partition_id``; with None, the messages share one partition key
        and the hub places them by it."""

    def partition_ids(self) -> tuple[str, ...]:
        """The hub's partition ids (the SDK's management call); raises HubError."""

    def close(self) -> None: ...
