"""The two checks every request passes before any route runs: the bearer token and the body size.

Both are plain ASGI middleware rather than FastAPI dependencies so they answer first: an
unauthenticated request gets 401 even when its body is malformed or huge, and an oversized body
is refused before anything buffers it.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiencehub.api.errors import ApiError, BodyTooLarge, too_large

DRAIN_FACTOR = 4
"""After refusing a body, read and discard up to this many times the limit so the client (which
sends everything before it reads an answer) receives the 413 instead of a reset connection."""


async def _send_error(send: Send, error: ApiError) -> None:
    body = orjson.dumps(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for name, value in (error.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _discard(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BearerAuth:
    """Every path except the public ones needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, tokens: tuple[str, ...], public: frozenset[str]) -> None:
        self.app = app
        self.tokens = tuple(t.encode() for t in tokens)
        self.public = public

    def _allowed(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        ok = False
        for known in self.tokens:  # no early exit: the time taken does not tell which one
            ok |= hmac.compare_digest(token, known)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if self._allowed(header):
            await self.app(scope, receive, send)
            return
        reason = "is missing" if not header else "is not a valid bearer token"
        await _discard(receive, 1024 * 1024)
        await _send_error(
            send,
            ApiError(
                401,
                f"the Authorization header {reason}; send 'Authorization: Bearer <token>' with a "
                "token from AUDIENCEHUB_API_TOKENS",
                field="Authorization (header)",
                headers={"WWW-Authenticate": 'Bearer realm="audiencehub"'},
            ),
        )


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length up front, and by counting
    while the route reads (chunked uploads announce no length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _discard(receive, self.limit * DRAIN_FACTOR)
            await _send_error(send, too_large(self.limit))
            return
        seen = 0
        limit = self.limit

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await _discard(receive, limit * DRAIN_FACTOR)
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SameOriginWrites:
    """Without tokens (demo and test modes) anyone who can reach the API may use it, and so could
    any web page the operator opens: a page's script or form can POST to ``127.0.0.1:8000``
    (``/collect`` reads text/plain bodies, ``/jobs/…/pause`` needs none). Browsers say where such
    a request comes from, so a state-changing request from a browser must come from the API's
    own origin: its ``Origin`` names the host it was sent to, and ``Sec-Fetch-Site`` (when sent)
    is ``same-origin`` or ``none``. Clients that are not browsers send neither header and pass.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _refusal(scope: Scope) -> str | None:
        headers = dict(scope["headers"])
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if site in ("cross-site", "same-site"):
            return f"Sec-Fetch-Site is {site}"
        origin = headers.get(b"origin")
        if origin is None:
            return None
        host = headers.get(b"host", b"").decode("latin-1").lower()
        text = origin.decode("latin-1").lower()
        _, _, netloc = text.partition("://")
        if not host or netloc.rstrip("/") != host:
            return f"Origin {text[:100]!r} is not this API ({host[:100]!r})"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in STATE_CHANGING:
            reason = self._refusal(scope)
            if reason is not None:
                await _discard(receive, 1024 * 1024)
                await _send_error(
                    send,
                    ApiError(
                        403,
                        f"a state-changing request from another web page is refused while the "
                        f"API runs without tokens ({reason}); set AUDIENCEHUB_API_TOKENS",
                        field="Origin (header)",
                    ),
                )
                return
        await self.app(scope, receive, send)
