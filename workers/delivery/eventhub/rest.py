"""Sending over the Event Hubs REST API: one JSON batch per POST to one partition, 201 = accepted.

Batch format (Content-Type ``application/vnd.microsoft.servicebus.json``)::

    [{"Body": "<message json>", "UserProperties": {"idempotency_key": "…"},
      "BrokerProperties": {"PartitionKey": "<user id>"}}, …]

Why one partition per request: the service takes one partition key per send operation (a batch
with several is refused or lands whole in one partition; docs/delivery.md has the evidence), so
the deliverer groups messages by the partition the service's own hash gives each key and posts
each group to ``/{hub}/partitions/{id}/messages``. Every message keeps its ``PartitionKey``, as
the SDKs' buffered producers keep theirs when they send to a partition id. With the partition
count unknown, a call carries one user's messages to ``/{hub}/messages`` instead.

What the hub answers is kept as its status and Azure error code only (``HubError.reason``): the
body of an answer is never stored or shown, whoever wrote it. Redirects are never followed.

Why urllib3 and not a ``requests`` session: a request per partition means many more requests, and
``requests`` spends about 750 µs of CPU on each against urllib3's 290 (measured on the stand-in).
Proxies and CA bundle follow ``requests``' conventions (``HTTPS_PROXY``/``NO_PROXY``,
``REQUESTS_CA_BUNDLE``, else certifi's bundle).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import quote

import certifi
import orjson
import requests.utils
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from workers.delivery.eventhub.connstr import ConnectionString
from workers.delivery.eventhub.sas import TokenCache
from workers.delivery.eventhub.sender import HubError, OutMessage, classify_status

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
API_VERSION = "2014-01"
IDEMPOTENCY_PROPERTY = "idempotency_key"
DEFAULT_TIMEOUT_S = 10.0
ERROR_BODY_READ = 4096
"""Bytes of an error answer read to find its Azure error code; the rest is never read."""
CONCURRENCY = 8
"""Partitions posted to at once by one deliverer: a round costs one hub round trip, not 32."""

_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9_.-]{1,64})\s*</Code>")
_DETAIL = re.compile(rb"<Detail>\s*([A-Za-z][A-Za-z0-9_.]{2,63})\s*:")
_SUBCODE = re.compile(rb"SubCode=(\d{1,6})")
_JSON_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z0-9_.-]{1,64})"')
_TOO_LARGE = re.compile(
    rb"too large|size exceeded|sizeexceeded|exceeds the maximum|size limit", re.I
)


def encode_item(message: OutMessage) -> bytes:
    return orjson.dumps(
        {
            "Body": message.body.decode("utf-8"),
            "UserProperties": {IDEMPOTENCY_PROPERTY: message.idempotency_key},
            "BrokerProperties": {"PartitionKey": message.partition_key},
        }
    )


def azure_error_code(body: bytes) -> str:
    """The Azure error code of an error answer (``ExpiredToken``, ``SubCode=40103``, …), or "".

    Only a short identifier is ever taken from the body: its free text can hold anything the
    server chose to say, and it is neither kept nor shown.
    """
    codes: list[str] = []
    for pattern in (_DETAIL, _SUBCODE, _JSON_CODE, _XML_CODE):
        found = pattern.search(body)
        if found:
            code = found.group(1).decode("ascii")
            code = f"SubCode={code}" if pattern is _SUBCODE else code
            if not code.isdigit() and code not in codes:
                codes.append(code)
    return ", ".join(codes[:2])


def _pool(url: str, size: int) -> urllib3.PoolManager:
    """Connections to the hub: through the proxy the environment names for it, if any."""
    ca_certs = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    )
    proxy = requests.utils.get_environ_proxies(url).get(url.split(":", 1)[0])
    if proxy:
        return urllib3.ProxyManager(proxy, num_pools=2, maxsize=size, block=True, ca_certs=ca_certs)
    return urllib3.PoolManager(num_pools=2, maxsize=size, block=True, ca_certs=ca_certs)


def server_timeout_s(client_timeout_s: float) -> int:
    """The ``timeout`` we ask the hub to keep to: shorter than our own wait, so the hub gives
    up (and says so) before we do, and a batch it accepts is never one we stopped waiting for."""
    return max(1, min(120, int(client_timeout_s) - 2))


class RestSender:
    """A thread-safe pool of keep-alive connections and one cached SAS token per hub."""

    concurrency = CONCURRENCY

    def __init__(
        self,
        conn: ConnectionString,
        max_batch_bytes: int = 1_000_000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if timeout_s < 3:
            raise ValueError("the REST client timeout must be at least 3 seconds")
        self.max_batch_bytes = max_batch_bytes
        self._conn = conn
        self._base = conn.rest_base
        self._query = f"?timeout={server_timeout_s(timeout_s)}&api-version={API_VERSION}"
        self._where = f"{conn.namespace}/{conn.hub}"
        self._tokens = TokenCache(conn.resource_uri, conn.key_name, conn.key)
        self._timeout = timeout_s
        self._http = _pool(self._base, CONCURRENCY)
        self._encoded: dict[int, tuple[OutMessage, bytes]] = {}

    # ---- Sender -----------------------------------------------------------------------------

    def encoded_size(self, message: OutMessage) -> int:
        """Size in a batch; the encoding is kept (with the message, so its id stays unique)
        for the ``send`` that follows, instead of encoding every message twice."""
        item = encode_item(message)
        if len(self._encoded) > 100_000:  # messages planned but never sent (a failed round)
            self._encoded.clear()
        self._encoded[id(message)] = (message, item)
        return len(item) + 1

    def forget(self, messages: Sequence[OutMessage]) -> None:
        encoded = self._encoded
        for message in messages:
            encoded.pop(id(message), None)

    def send(self, messages: Sequence[OutMessage], partition_id: str | None = None) -> None:
        """One POST: to ``partition_id``, or (None) to the hub for messages sharing one key."""
        if not messages:
            return
        items = [self._item(m) for m in messages]
        self.post(b"[" + b",".join(items) + b"]", partition_id)

    def partition_ids(self) -> tuple[str, ...]:
        """The hub's partition ids, from the SDK's management call (see ``management``)."""
        from workers.delivery.eventhub.management import hub_properties

        return hub_properties(self._conn).partition_ids

    def close(self) -> None:
        self._http.clear()

    # ---- HTTP -------------------------------------------------------------------------------

    def url(self, partition_id: str | None) -> str:
        where = "" if partition_id is None else f"/partitions/{quote(partition_id, safe='')}"
        return f"{self._base}{where}/messages{self._query}"

    def post(self, payload: bytes, partition_id: str | None = None) -> None:
        headers = {"Authorization": self._tokens.token(), "Content-Type": BATCH_CONTENT_TYPE}
        try:
            resp = self._http.urlopen(
                "POST",
                self.url(partition_id),
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout),
                redirect=False,
                retries=False,
                preload_content=False,
            )
            try:
                status = resp.status
                retry_after = resp.headers.get("Retry-After", "")
                head = resp.read(ERROR_BODY_READ) or b""
                if resp.read(1):  # more than we read: drop the connection rather than read on
                    resp.close()
            finally:
                resp.release_conn()
        except Urllib3Timeout:
            raise HubError(
                "transient", f"{self._where}: no answer within {self._timeout:g}s"
            ) from None
        except (Urllib3Error, OSError) as exc:
            raise HubError(
                "transient", f"{self._where}: connection failed ({type(exc).__name__})"
            ) from None
        if status == 201:
            return
        raise self._refusal(status, head, retry_after)

    def _refusal(self, status: int, head: bytes, retry_after: str) -> HubError:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "(unknown status)"
        code = azure_error_code(head)
        kind = classify_status(status, too_large=bool(_TOO_LARGE.search(head)))
        reason = f"{self._where}: {status} {phrase}" + (f" ({code})" if code else "")
        if kind == "redirect":
            reason += "; Event Hubs never redirects a send, so the Endpoint is not an event hub"
        return HubError(
            kind,
            reason,
            status=status,
            retry_after=float(retry_after) if retry_after.isdigit() else None,
        )

    def _item(self, message: OutMessage) -> bytes:
        kept = self._encoded.pop(id(message), None)
        return kept[1] if kept is not None and kept[0] is message else encode_item(message)
