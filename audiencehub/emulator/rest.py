"""The hub stand-in's REST face: the Event Hubs send contract, plus a control API under /_emulator.

Send (what a real hub checks, in this order):

1. fault plan (decided once the headers are in; a faulted request stores nothing)
2. ``Authorization: SharedAccessSignature …``: key name, signature, expiry, ``sr`` covers the hub
3. the hub exists (404), the partition exists (404), ``api-version`` / ``timeout`` are sane (400)
4. body size ≤ ``max_batch_bytes`` (413), Content-Type (415), batch shape (400 naming index/field)
5. store → ``201 Created``, empty body

Errors on the send path use the service's XML shape, ``<Error><Code>…</Code><Detail>…</Detail>
</Error>``, so a sender's error handling meets the same text it will meet in Azure. The control API
(no auth: a loopback tool; it never shows keys) answers JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import unquote

import orjson

from audiencehub.emulator.auth import Authorizer, TokenError
from audiencehub.emulator.faults import NO_FAULT, FaultDecision, FaultPlan, FaultSpecError
from audiencehub.emulator.httpserver import Request, Response
from audiencehub.emulator.hubs import UnknownHub
from audiencehub.emulator.records import IncomingEvent
from audiencehub.emulator.rest_format import (
    BATCH_CONTENT_TYPE,
    SINGLE_CONTENT_TYPE,
    BadBatch,
    check_properties,
    decode_batch,
    rows_json,
)
from audiencehub.emulator.store import EventStore, StoreFull
from workers.delivery.eventhub.partitions import (
    MAX_PARTITION_KEY,
    key_length,
    partition_for_key,
)

__all__ = ["DEFAULT_MAX_BATCH_BYTES", "RestFace"]

log = logging.getLogger("audiencehub.emulator.rest")

DEFAULT_MAX_BATCH_BYTES = 1_048_576
MAX_READBACK = 100_000
MAX_WAIT_S = 30  # longest a readback request may wait for new events

_API_VERSION = re.compile(r"^\d{4}-\d{2}(-\d{2})?(-preview)?$")
_JSON = "application/json"
_XML = "application/xml; charset=utf-8"
_CREATED = Response(201)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def placement_problem(
    events: list[IncomingEvent], partition: str | None, strict: bool
) -> str | None:
    """Why the hub refuses where a batch asks to go, or None (the answer is a 400).

    A partition key is at most 128 characters (the service's limit). Strictly, as the service
    treats a send operation, one request to ``/{hub}/messages`` carries one partition key (the
    Service Bus gateway in front of Event Hubs refuses a batch whose messages carry different
    keys; elsewhere the whole batch landed in the first key's partition). A key sent to
    ``/partitions/{id}`` that hashes elsewhere is stored there and counted
    (``key_partition_mismatches``), as the SDKs' buffered producers expect of the service
    while their partition list is stale.
    """
    short = MAX_PARTITION_KEY // 2  # a character is at most 2 UTF-16 units: shorter keys fit
    for index, event in enumerate(events):
        key = event[3]
        if key is not None and len(key) > short and key_length(key) > MAX_PARTITION_KEY:
            return (
                f"PartitionKeyTooLong: event[{index}]'s PartitionKey is {key_length(key)} "
                f"characters; the limit is {MAX_PARTITION_KEY}"
            )
    if not strict or partition is not None:
        return None
    first = events[0].partition_key
    for index, event in enumerate(events):
        if event[3] != first:
            return (
                f"PartitionKeyMismatch: event[{index}] has PartitionKey "
                f"{_shown(event.partition_key)} but event[0] has {_shown(first)}; one send "
                "carries one partition key (send per partition to "
                "/{hub}/partitions/{id}/messages instead)"
            )
    return None


def _shown(key: str | None) -> str:
    return "(none)" if key is None else repr(key[:40] + ("…" if len(key) > 40 else ""))


def _xml_error(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = f"<Error><Code>{status}</Code><Detail>{escape(detail, quote=False)}</Detail></Error>"
    return Response(status, body.encode("utf-8"), _XML, headers or [])


def _json(data: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(data), _JSON)


def _json_error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


class RestFace:
    """Routes requests; owns nothing but references to the shared store, plan and keys."""

    def __init__(
        self,
        store: EventStore,
        faults: FaultPlan,
        auth: Authorizer,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        info: dict[str, Any] | None = None,
        faces: list[str] | None = None,
        lenient: bool = False,
    ) -> None:
        self.store = store
        self.lenient = lenient
        self.faults = faults
        self.auth = auth
        self.max_batch_bytes = max_batch_bytes
        # A body this far over the limit is refused without reading it (the connection closes).
        self.hard_body_limit = max(4 * max_batch_bytes, 16 * 1024 * 1024)
        self._info = info or {}
        self._faces = faces if faces is not None else ["rest"]
        # Readback requests waiting for new events (``wait=S``), by hub (lower-cased).
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        # More sections for /_emulator/stats (the AMQP face's consumers).
        self.stats_sections: list[Callable[[], dict[str, Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        store.on_append(self._appended)

    # ---- the two HttpServer hooks -----------------------------------------------------------

    def head(self, request: Request) -> Response | None:
        parts = [unquote(p) for p in request.path.strip("/").split("/")] if request.path else []
        request.state["parts"] = parts
        send = _send_route(parts)
        if send is not None and request.method == "POST":
            request.state["send"] = send
            decision = self.faults.decide("rest", send[0], "send")
            request.state["fault"] = decision
            if decision.drop == "after_headers" and not decision.delay_ms:
                self._count_fault(decision)
                self.store.count_request("rest", 0)
                log.debug("fault: dropped connection after headers (POST %s)", request.path)
                return Response(0, drop=True)
        length = request.content_length
        if length is not None and length > self.hard_body_limit:
            if "send" in request.state:
                self.store.count_request("rest", 413)
            return _xml_error(
                413,
                f"request body of {length} bytes is far over the {self.max_batch_bytes} byte limit",
            )
        return None

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        send = request.state.get("send")
        if send is None:
            return self._control(request)
        decision: FaultDecision = request.state.get("fault", NO_FAULT)
        if decision.delay_ms:
            return self._delayed(request, decision)
        return self._send(request, decision)

    # ---- send -------------------------------------------------------------------------------

    async def _delayed(self, request: Request, decision: FaultDecision) -> Response:
        await asyncio.sleep(decision.delay_ms / 1000)
        return self._send(request, decision)

    def _count_fault(self, decision: FaultDecision) -> None:
        self.store.count_fault(decision.kind)

    def _send(self, request: Request, decision: FaultDecision) -> Response:
        if decision.delay_ms:
            self.store.count_fault("delay")
        if decision.fails:
            self._count_fault(decision)
            if decision.drop is not None:
                self.store.count_request("rest", 0)
                log.debug("fault: dropped connection (POST %s)", request.path)
                return Response(0, drop=True)
            assert decision.status is not None
            headers = []
            if decision.retry_after is not None:
                headers.append(("Retry-After", str(decision.retry_after)))
            self.store.count_request("rest", decision.status)
            log.debug("fault: answered %s (POST %s)", decision.status, request.path)
            return _xml_error(decision.status, decision.message, headers)
        response = self._accept(request)
        self.store.count_request("rest", response.status)
        if response.status != 201:
            log.info(
                "rejected POST %s: %s %s",
                request.path,
                response.status,
                response.body[:300].decode("utf-8", "replace"),
            )
        return response

    def _accept(self, request: Request) -> Response:
        hub_name, partition = request.state["send"]
        try:
            self.auth.check(
                request.headers.get("authorization"),
                hub_name,
                namespace=request.headers.get("host", ""),
            )
        except TokenError as exc:
            return _xml_error(401, f"{exc.code}: authorization failed: {exc}")
        try:
            hub = self.store.hub(hub_name)
        except UnknownHub:
            return _xml_error(
                404,
                f"MessagingEntityNotFound: event hub {hub_name[:60]!r} does not exist in this "
                "namespace",
            )
        if partition is not None and partition not in hub.partition_ids:
            return _xml_error(
                404,
                f"MessagingEntityNotFound: event hub {hub.name!r} has no partition "
                f"{partition[:20]!r} (partitions: {', '.join(hub.partition_ids)})",
            )
        version = request.query.get("api-version")
        if version is not None and not _API_VERSION.match(version):
            return _xml_error(
                400, f"BadRequest: api-version {version[:20]!r} is not a valid version (2014-01)"
            )
        timeout = request.query.get("timeout")
        if timeout is not None and not (timeout.isdigit() and 1 <= int(timeout) <= 120):
            return _xml_error(
                400, f"BadRequest: timeout {timeout[:20]!r} must be 1 to 120 whole seconds"
            )
        body = request.body
        if len(body) > self.max_batch_bytes:
            return _xml_error(
                413,
                f"MessageSizeExceeded: request body of {len(body)} bytes exceeds the maximum "
                f"of {self.max_batch_bytes} bytes per publication",
            )
        media = _media_type(request.headers.get("content-type", ""))
        try:
            if media == BATCH_CONTENT_TYPE:
                events = decode_batch(body)
            elif media == SINGLE_CONTENT_TYPE:
                events = [self._single(request)]
            else:
                return _xml_error(
                    415,
                    f"UnsupportedMediaType: Content-Type {media[:60] or '(none)'!r} is not "
                    "supported: use "
                    f"{BATCH_CONTENT_TYPE} for a batch or "
                    f"{SINGLE_CONTENT_TYPE};type=entry;charset=utf-8 for one event",
                )
        except BadBatch as exc:
            return _xml_error(400, f"BadRequest: {exc}")
        problem = placement_problem(events, partition, not self.lenient)
        if problem is not None:
            return _xml_error(400, problem)
        if partition is None and not self.lenient:
            # A send operation is placed whole: by its one key, else in one round-robin turn.
            key = events[0].partition_key
            partition = (
                partition_for_key(key, hub.partition_ids)
                if key is not None
                else hub.next_round_robin()
            )
        try:
            self.store.append(hub.name, events, "rest", partition_id=partition)
        except StoreFull as exc:
            # Service Bus's send answers a full entity with 403 "quota exceeded".
            return _xml_error(403, f"QuotaExceeded: {exc}")
        return _CREATED

    def _single(self, request: Request) -> IncomingEvent:
        raw = request.headers.get("brokerproperties")
        broker: dict[str, Any] = {}
        if raw:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise BadBatch(f"BrokerProperties header is not valid JSON: {exc}") from None
            broker = check_properties(parsed, "BrokerProperties")
        key = broker.get("PartitionKey")
        if key is not None and type(key) is not str:
            raise BadBatch("BrokerProperties.PartitionKey: must be a string")
        return IncomingEvent(request.body, {}, broker, key)

    # ---- control API ------------------------------------------------------------------------

    def _control(self, request: Request) -> Response | Awaitable[Response]:
        parts: list[str] = request.state["parts"]
        method = request.method
        if not parts or parts == [""]:
            return self._only(method, "GET") or _json(self._describe())
        if parts[0] != "_emulator":
            if len(parts) == 1:
                return self._only(method, "GET") or self._hub_info(parts[0])
            if _send_route(parts) is not None:
                return _xml_error(405, "send events with POST", [("Allow", "POST")])
            return _json_error(404, f"no such resource: {request.path}")
        rest = parts[1:]
        try:
            if rest in ([], ["info"], ["health"]):
                return self._only(method, "GET") or _json(self._describe())
            if rest == ["stats"]:
                stats = self.store.stats()
                for section in self.stats_sections:
                    stats.update(section())
                return self._only(method, "GET") or _json(stats)
            if rest == ["events"]:
                return self._only(method, "DELETE") or self._reset(request)
            if rest == ["faults"]:
                return self._faults(request)
            if rest == ["hubs"]:
                return self._only(method, "GET") or _json(
                    {"hubs": [self.store.hub(n).info() for n in self.store.hub_names()]}
                )
            if len(rest) == 2 and rest[0] == "hubs":
                if method == "PUT":
                    return self._create_hub(rest[1], request)
                return self._only(method, "GET") or self._hub_info(rest[1])
            if len(rest) == 3 and rest[0] == "hubs" and rest[2] == "events":
                return self._only(method, "GET") or self._events(rest[1], request)
        except UnknownHub as exc:
            return _json_error(404, f"event hub {exc.args[0]!r} does not exist")
        return _json_error(404, f"no such control endpoint: {request.path}")

    @staticmethod
    def _only(method: str, allowed: str) -> Response | None:
        if method == allowed:
            return None
        return Response(
            405,
            orjson.dumps({"error": f"use {allowed}"}),
            _JSON,
            [("Allow", allowed)],
        )

    def _describe(self) -> dict[str, Any]:
        return {
            **self._info,
            "faces": self._faces,
            "max_batch_bytes": self.max_batch_bytes,
            "key_names": self.auth.key_names,
            "hubs": [self.store.hub(n).info() for n in self.store.hub_names()],
        }

    def _hub_info(self, name: str) -> Response:
        try:
            return _json(self.store.hub(name).info())
        except UnknownHub:
            return _json_error(404, f"event hub {name!r} does not exist")

    def _create_hub(self, name: str, request: Request) -> Response:
        raw = request.query.get("partitions", "4")
        if not raw.isdigit():
            return _json_error(400, "partitions must be a whole number")
        try:
            existing = self.store.hub(name)
        except UnknownHub:
            existing = None
        try:
            if existing is not None:  # more partitions for a hub that exists (Premium-like)
                return _json(self.store.grow_hub(name, int(raw)).info(), 200)
            hub = self.store.create_hub(name, int(raw))
        except ValueError as exc:
            return _json_error(400, str(exc))
        return _json(hub.info(), 201)

    def _events(self, hub: str, request: Request) -> Response | Awaitable[Response]:
        query = request.query
        after_raw = query.get("after", "0")
        limit_raw = query.get("limit", "1000")
        wait_raw = query.get("wait", "0")
        if not after_raw.isdigit():
            return _json_error(400, "after must be a sequence number (integer ≥ 0)")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_READBACK:
            return _json_error(400, f"limit must be an integer from 1 to {MAX_READBACK}")
        if not wait_raw.isdigit() or int(wait_raw) > MAX_WAIT_S:
            return _json_error(
                400, f"wait must be a whole number of seconds from 0 to {MAX_WAIT_S}"
            )
        partition = query.get("partition")
        hub_name = self.store.hub(hub).name
        if partition is not None and partition not in self.store.hub(hub).partition_ids:
            return _json_error(404, f"event hub {hub_name!r} has no partition {partition[:20]!r}")
        args = (hub_name, int(after_raw), int(limit_raw), partition)
        page = self._page(*args)
        if page is not None or not int(wait_raw):
            return page or _json({"events": [], "last_seq": args[1], "more": False})
        return self._wait_page(args, int(wait_raw))

    def _page(self, hub: str, after: int, limit: int, partition: str | None) -> Response | None:
        rows, more = self.store.event_rows(hub, after, limit, partition)
        if not rows:
            return None
        last = rows[-1][0][0]
        return _json({"events": rows_json(rows), "last_seq": last, "more": more})

    async def _wait_page(self, args: tuple[str, int, int, str | None], wait_s: int) -> Response:
        """Hold a readback until an event arrives or ``wait_s`` passes (``tail`` follows this)."""
        loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        waiters = self._waiters.setdefault(args[0].lower(), set())
        while (left := deadline - loop.time()) > 0:
            waiter = loop.create_future()
            waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                break
            finally:
                waiters.discard(waiter)
            page = self._page(*args)
            if page is not None:
                return page
        return _json({"events": [], "last_seq": args[1], "more": False})

    def _appended(self, hub: str, partitions: frozenset[str]) -> None:
        loop = self._loop
        if self._waiters.get(hub.lower()) and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, hub.lower())

    def _wake(self, hub: str) -> None:
        for waiter in list(self._waiters.get(hub, ())):
            if not waiter.done():
                waiter.set_result(None)

    def _reset(self, request: Request) -> Response:
        hub = request.query.get("hub")
        dropped = self.store.reset(hub)
        return _json({"deleted": dropped})

    def _faults(self, request: Request) -> Response:
        method = request.method
        if method == "GET":
            return _json(self.faults.describe())
        if method == "DELETE":
            self.faults.clear()
            return _json(self.faults.describe())
        if method in ("PUT", "POST"):
            try:
                spec = orjson.loads(request.body)
            except orjson.JSONDecodeError as exc:
                return _json_error(400, f"fault plan is not valid JSON: {exc}")
            try:
                self.faults.configure(spec)
            except FaultSpecError as exc:
                return _json_error(400, str(exc))
            log.info("fault plan installed: %s", orjson.dumps(self.faults.describe()).decode())
            return _json(self.faults.describe())
        return Response(405, b"", None, [("Allow", "GET, PUT, DELETE")])


def _send_route(parts: list[str]) -> tuple[str, str | None] | None:
    """``/{hub}/messages`` → (hub, None); ``/{hub}/partitions/{id}/messages`` → (hub, id)."""
    n = len(parts)
    if n == 2 and parts[1].lower() == "messages" and parts[0] != "_emulator":
        return parts[0], None
    if (
        n == 4
        and parts[1].lower() == "partitions"
        and parts[3].lower() == "messages"
        and parts[0] != "_emulator"
    ):
        return parts[0], parts[2]
    return None
