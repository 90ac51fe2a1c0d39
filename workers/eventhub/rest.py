"""Sending over the Event Hubs REST API: one JSON batch per POST, 201 means accepted.

Batch format (Content-Type ``application/vnd.microsoft.servicebus.json``)::

    [{"Body": "<message json>", "UserProperties": {"idempotency_key": "…"},
      "BrokerProperties": {"PartitionKey": "<user id>"}}, …]
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import requests

from workers.eventhub.connstr import ConnectionString
from workers.eventhub.sas import TokenCache
from workers.eventhub.sender import HubError, OutMessage, classify_status

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
API_VERSION = "2014-01"
IDEMPOTENCY_PROPERTY = "idempotency_key"


def encode_item(message: OutMessage) -> bytes:
    return orjson.dumps(
        {
            "Body": message.body.decode("utf-8"),
            "UserProperties": {IDEMPOTENCY_PROPERTY: message.idempotency_key},
            "BrokerProperties": {"PartitionKey": message.partition_key},
        }
    )


class RestSender:
    """One HTTP session (keep-alive) and one cached SAS token per hub per process."""

    def __init__(
        self, conn: ConnectionString, max_batch_bytes: int = 1_000_000, timeout_s: float = 10.0
    ) -> None:
        self.max_batch_bytes = max_batch_bytes
        self._url = f"{conn.rest_base}/messages?timeout=60&api-version={API_VERSION}"
        self._where = f"{conn.namespace}/{conn.hub}"
        self._tokens = TokenCache(conn.resource_uri, conn.key_name, conn.key)
        self._timeout = timeout_s
        self._session = requests.Session()
        self._encoded: dict[int, tuple[OutMessage, bytes]] = {}

    def encoded_size(self, message: OutMessage) -> int:
        """Size in the batch; the encoding is kept (with the message, so its id stays unique)
        for the ``send`` that follows, instead of encoding every message twice."""
        item = encode_item(message)
        self._encoded[id(message)] = (message, item)
        return len(item) + 1

    def _item(self, message: OutMessage) -> bytes:
        kept = self._encoded.get(id(message))
        return kept[1] if kept is not None and kept[0] is message else encode_item(message)

    def send(self, messages: Sequence[OutMessage]) -> None:
        items = [self._item(m) for m in messages]
        self._encoded.clear()
        self.post(b"[" + b",".join(items) + b"]")

    def post(self, payload: bytes) -> None:
        headers = {"Authorization": self._tokens.token(), "Content-Type": BATCH_CONTENT_TYPE}
        try:
            resp = self._session.post(
                self._url, data=payload, headers=headers, timeout=self._timeout
            )
        except requests.Timeout:
            raise HubError(
                "transient", f"{self._where}: no answer within {self._timeout}s"
            ) from None
        except requests.ConnectionError as exc:
            raise HubError(
                "transient", f"{self._where}: connection failed ({type(exc).__name__})"
            ) from None
        if resp.status_code == 201:
            return
        retry_after = resp.headers.get("Retry-After")
        raise HubError(
            classify_status(resp.status_code),
            f"{self._where}: {resp.text[:300].strip() or resp.reason}",
            status=resp.status_code,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    def probe(self) -> None:
        """Check send permission without sending anything: POST an empty batch.

        The hub checks the SAS token before the body, so 401/403 means the key cannot send, while
        the 400 it gives an empty batch means the token was accepted. Raises HubError otherwise.
        """
        try:
            self.post(b"[]")
        except HubError as err:
            if err.kind != "bad_request":
                raise

    def close(self) -> None:
        self._session.close()
