"""The one interface every transport implements, and the errors a hub can answer with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

ErrorKind = Literal["throttled", "transient", "too_large", "bad_request", "unauthorized"]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message for the hub: its JSON body, the user as partition key, and its dedup key."""

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


def classify_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return "unauthorized"
    if status == 413:
        return "too_large"
    if status == 400:
        return "bad_request"
    if status in (429, 503):
        return "throttled"
    return "transient"


class Sender(Protocol):
    """Sends one batch, all or nothing: returns when the hub accepted it, raises HubError if not."""

    max_batch_bytes: int

    def encoded_size(self, message: OutMessage) -> int: ...

    def send(self, messages: Sequence[OutMessage]) -> None: ...

    def close(self) -> None: ...
