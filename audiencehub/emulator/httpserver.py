"""A small HTTP/1.1 server on asyncio, just enough for the hub stand-in and fast at it.

Why not uvicorn/ASGI: fault injection must be able to close a socket without answering (an ASGI
app cannot; uvicorn turns that into a 500), and a few hundred lines of Protocol code parse 1 MB
batches with less overhead than h11. It speaks keep-alive, pipelining, Content-Length and chunked
bodies, and ``Expect: 100-continue`` (curl sends it for bodies over 1 KB).

An application supplies two callables (see :class:`App`): ``head`` sees a request once its headers
are in (it may answer or drop early, e.g. to refuse a huge body before reading it), ``handle`` gets
the full request and returns a :class:`Response` or an awaitable of one (used for delays).

Connections whose first bytes match a registered prefix (``b"AMQP"``) are handed to another
protocol, so an AMQP face can share the port printed in the connection string.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from time import time
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl

__all__ = ["App", "HttpServer", "Request", "Response"]

log = logging.getLogger("audiencehub.emulator.http")

MAX_HEAD_BYTES = 64 * 1024
_SERVER = b"audiencehub-hub-emulator"


@dataclass(slots=True)
class Request:
    """One parsed request; ``state`` carries what ``head`` decided on to ``handle``."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    version: str
    body: bytes = b""
    content_length: int | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Response:
    """What to send back; ``drop`` closes the connection without answering at all."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    close: bool = False


class App(Protocol):
    def head(self, request: Request) -> Response | None: ...

    def handle(self, request: Request) -> Response | Awaitable[Response]: ...


class _BadRequest(Exception):
    pass


_date_cache: tuple[int, bytes] = (0, b"")
_plain_heads: dict[tuple[int, bool, bytes], bytes] = {}


def _http_date() -> bytes:
    global _date_cache
    now = int(time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


@lru_cache(maxsize=256)
def _query_pairs(query: str) -> tuple[tuple[str, str], ...]:
    """A query string's pairs (senders repeat the same one, ``?timeout=60&api-version=…``)."""
    return tuple(parse_qsl(query, keep_blank_values=True))


def _parse_head(raw: bytes) -> Request:
    try:
        text = raw.decode("latin-1")
        line, *lines = text.split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        raise _BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1.") or not method.isalpha():
        raise _BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for item in lines:
        name, sep, value = item.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("malformed header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query = target.partition("?")
    return Request(
        method=method.upper(),
        target=target,
        path=path,
        query=dict(_query_pairs(query)) if query else {},
        headers=headers,
        version=version,
    )


def _take_chunked(buf: bytearray) -> tuple[bytes, int] | None:
    """Decode a complete chunked body at the start of ``buf``: (body, bytes used) or None."""
    pos = 0
    parts: list[bytes] = []
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            size = int(bytes(buf[pos:end]).split(b";")[0].strip(), 16)
        except ValueError:
            raise _BadRequest("malformed chunk size") from None
        pos = end + 2
        if size == 0:
            # Skip trailers up to the blank line.
            while True:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    return None
                if end == pos:
                    return b"".join(parts), end + 2
                pos = end + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._app = server.app
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._request: Request | None = None
        self._busy = False
        self._closed = False
        self._first = True
        self._task: asyncio.Task[Response] | None = None

    # ---- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (which has the same methods but does not
        # subclass asyncio.Transport).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._first:
            self._first = False
            if self._hand_over(data):
                return
        self._buf += data
        if not self._busy:
            self._process()

    # ---- protocol switch --------------------------------------------------------------------

    def _hand_over(self, data: bytes) -> bool:
        for prefix, factory in self._server.alt_protocols.items():
            if data.startswith(prefix) or (len(data) < len(prefix) and prefix.startswith(data)):
                transport = self._transport
                assert transport is not None
                self._server.connections.discard(self)
                self._closed = True
                proto = factory()
                transport.set_protocol(proto)
                proto.connection_made(transport)
                proto.data_received(data)
                return True
        return False

    # ---- request loop -----------------------------------------------------------------------

    def _process(self) -> None:
        try:
            while not self._busy and not self._closed:
                request = self._request
                if request is None:
                    request = self._read_head()
                    if request is None:
                        return
                if not self._read_body(request):
                    return
                self._request = None
                self._dispatch(request)
        except _BadRequest as exc:
            self._write(Response(400, str(exc).encode(), "text/plain", close=True), None)
        except Exception:
            log.exception("failed to handle a request")
            self._write(Response(500, b"internal error in the hub stand-in", "text/plain"), None)

    def _read_head(self) -> Request | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self._write(
                    Response(431, b"request head too large", "text/plain", close=True), None
                )
            return None
        if end == 0:  # tolerate stray CRLF between pipelined requests
            del buf[:4]
            return None
        if end > MAX_HEAD_BYTES:
            self._write(Response(431, b"request head too large", "text/plain", close=True), None)
            return None
        request = _parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        te = request.headers.get("transfer-encoding", "").lower()
        if te and te != "chunked":
            raise _BadRequest(f"unsupported Transfer-Encoding {te!r}")
        if not te:
            raw_len = request.headers.get("content-length", "0")
            if not raw_len.isdigit():
                raise _BadRequest("Content-Length must be a non-negative integer")
            request.content_length = int(raw_len)
        early = self._app.head(request)
        if early is not None:
            early.close = True
            self._write(early, request)
            return None
        if request.headers.get("expect", "").lower() == "100-continue":
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._request = request
        return request

    def _read_body(self, request: Request) -> bool:
        buf = self._buf
        need = request.content_length
        if need is None:
            taken = _take_chunked(buf)
            if taken is None:
                return False
            request.body, used = taken
            del buf[:used]
            return True
        if len(buf) < need:
            return False
        if len(buf) == need:
            request.body = bytes(buf)
            buf.clear()
        else:
            request.body = bytes(memoryview(buf)[:need])
            del buf[:need]
        return True

    def _dispatch(self, request: Request) -> None:
        try:
            result = self._app.handle(request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            result = Response(500, b"internal error in the hub stand-in", "text/plain")
        if type(result) is not Response and inspect.isawaitable(result):
            self._busy = True
            task: asyncio.Task[Response] = asyncio.ensure_future(result)
            self._task = task
            task.add_done_callback(lambda done: self._finished(done, request))
        else:
            assert isinstance(result, Response)
            self._write(result, request)

    def _finished(self, task: asyncio.Task[Response], request: Request) -> None:
        self._task = None
        self._busy = False
        if self._closed or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("handler failed for %s %s: %r", request.method, request.path, exc)
            response = Response(500, b"internal error in the hub stand-in", "text/plain")
        else:
            response = task.result()
        self._write(response, request)
        if not self._closed and self._buf:
            self._process()

    # ---- output -----------------------------------------------------------------------------

    def _write(self, response: Response, request: Request | None) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        if response.drop:
            self._closed = True
            transport.abort()
            return
        close = response.close or request is None or self._server.closing
        if request is not None and not close:
            conn = request.headers.get("connection", "").lower()
            http10 = request.version == "HTTP/1.0"
            close = "keep-alive" not in conn if http10 else "close" in conn
        date = _http_date()
        plain = not response.body and not response.content_type and not response.headers
        head = _plain_heads.get((response.status, close, date)) if plain else None
        if head is None:
            lines = [
                f"HTTP/1.1 {response.status} {_reason(response.status)}".encode("latin-1"),
                b"Server: " + _SERVER,
                b"Date: " + date,
                b"Content-Length: " + str(len(response.body)).encode("ascii"),
            ]
            if response.content_type:
                lines.append(b"Content-Type: " + response.content_type.encode("latin-1"))
            for name, value in response.headers:
                lines.append(f"{name}: {value}".encode("latin-1"))
            if close:
                lines.append(b"Connection: close")
            head = b"\r\n".join(lines) + b"\r\n\r\n"
            if plain:  # the accepted send's answer (201, no body), made once a second
                if len(_plain_heads) >= 64:
                    _plain_heads.clear()
                _plain_heads[(response.status, close, date)] = head
        if len(response.body) < 65536:
            transport.write(head + response.body)
        else:
            transport.writelines((head, response.body))
        if close:
            self._closed = True
            transport.close()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()


class HttpServer:
    """Owns the listening socket and the open connections (closed on :meth:`stop`)."""

    def __init__(
        self,
        app: App,
        alt_protocols: Mapping[bytes, Callable[[], asyncio.Protocol]] | None = None,
    ) -> None:
        self.app = app
        self.alt_protocols = dict(alt_protocols or {})
        self.connections: set[_Connection] = set()
        self.closing = False
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, backlog=256
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, close idle and busy connections alike, wait for the socket to close."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
