"""One error shape for every failure, and the mapping from engine errors to HTTP statuses.

Every error body is ``{"error": code, "message": sentence, "field": name-or-null, "details": […]}``
(plus ``filterql`` with line, column and a caret for FilterQL errors), so a client needs one
parser. Request values are never echoed back: a rejected body may hold a connection string.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers.audiences.registry_store import Conflict, NotFound
from workers.config import ConfigError
from workers.delivery.eventhub.connstr import ConnectionStringError
from workers.filterql import FilterQLError
from workers.jobs.secrets import SecretUnreadable
from workers.pipeline.ingest import IngestRefused, TooManyEvents
from workers.pipeline.intake import RETRY_AFTER_S
from workers.redisconn import write_refusal

log = logging.getLogger("audiencehub.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "busy",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere in a route; the handler renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        details: Sequence[dict[str, Any]] = (),
        filterql: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.extra = extra
        self.status = status
        self.message = message
        self.field = field
        self.details = list(details)
        self.filterql = filterql
        self.headers = headers

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": CODES.get(self.status, "error"),
            "message": self.message,
            "field": self.field,
            "details": self.details,
        }
        if self.filterql is not None:
            out["filterql"] = self.filterql
        if self.extra:
            out.update(self.extra)
        return out

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class BodyTooLarge(Exception):
    """Raised from the request stream once the body passes the limit (see limits.py)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit:,} bytes")
        self.limit = limit


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than {limit:,} bytes (AUDIENCEHUB_API_MAX_BODY); "
        "split it into smaller requests",
    )


def refused(exc: IngestRefused) -> ApiError:
    """429 when the workers are behind (the backlog bound), 503 when Redis refuses writes.

    Either way nothing of the request was stored (on a Redis Cluster: nothing after ``stored``,
    which the body then carries), so the client retries the same request after Retry-After.
    """
    headers = {"Retry-After": str(exc.retry_after_s)}
    extra = {"stored": exc.stored} if exc.stored else None
    if exc.kind == "backlog":
        return ApiError(
            429,
            f"too many events are waiting to be processed: {exc.reason}; nothing of this request "
            f"was stored, retry it in {exc.retry_after_s} s",
            headers=headers,
            extra=extra,
        )
    done = (
        f"{exc.stored} event(s) were stored before the refusal (Redis Cluster: per shard); "
        "retry the request, event ids (_id) make the retry exactly-once"
        if exc.stored
        else "nothing of this request was stored"
    )
    return ApiError(
        503, f"{exc.reason}; {done}, retry in {exc.retry_after_s} s", headers=headers, extra=extra
    )


def filterql_error(exc: FilterQLError, field: str = "filter", text: str = "") -> ApiError:
    """A FilterQL error with where it went wrong, so an editor can point at it."""
    if not exc.text and text:
        exc.text = text
    return ApiError(
        422,
        f"{field}: {exc}",
        field=field,
        filterql={
            "line": exc.line,
            "column": exc.column,
            "expected": list(exc.expected),
            "caret": exc.caret() if exc.text else "",
        },
    )


_PLAIN_PARTS = frozenset(
    {"endpoint", "sharedaccesskeyname", "entitypath", "usedevelopmentemulator"}
)
_PART_NAMES = _PLAIN_PARTS | {"sharedaccesskey", "sharedaccesssignature"}
_WINDOW = 8
"""A quote holding this many consecutive characters of a secret counts as quoting it."""


def _quotes_secret(text: str, secrets: set[str]) -> bool:
    return any(
        s[i : i + _WINDOW] in text for s in secrets for i in range(max(len(s) - _WINDOW + 1, 0))
    )


def scrub(message: str, secret_text: str) -> str:
    """Mask every secret-bearing part of ``secret_text`` that an error message might quote.

    The engine's connection string errors avoid the key, but a malformed string (say, a key pasted
    without ``SharedAccessKey=``) could be quoted as "a part"; this makes sure it never is. Values
    of the plain parts (endpoint, key name, hub) stay readable: they help fix the string.
    """
    message = message.replace(secret_text.strip(), "***") if secret_text.strip() else message
    hidden: set[str] = set()
    for piece in secret_text.split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep and name.strip().lower() in _PLAIN_PARTS:
            continue
        if sep and name.strip().lower() in ("sharedaccesskey", "sharedaccesssignature"):
            hidden.add(value.strip())
            continue
        hidden.add(piece.strip())  # not a known Name=value: it may be a bare key
        hidden.update(piece.split())
        hidden.update(part.strip() for part in piece.split("="))
    hidden = {p for p in hidden if len(p) >= 4 and p.lower() not in _PART_NAMES}
    for part in sorted(hidden, key=len, reverse=True):
        message = message.replace(part, "***")
    # A quote may hold a truncated piece of a secret ("part 'SharedAccessKey abc…'[:40]").
    message = re.sub(
        r"'[^']*'", lambda m: "'***'" if _quotes_secret(m.group(0), hidden) else m.group(0), message
    )
    if _quotes_secret(message, hidden):
        return "the connection string is malformed (its text is not repeated here)"
    return message


def _loc(loc: Sequence[int | str]) -> str:
    """``("body", "jobs", 0, "label")`` -> ``jobs[0].label``; path/query names say where."""
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "path", "query", "header") else ""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if where in ("path", "query", "header"):
        return f"{text} ({where})" if text else where
    return text or "body"


UNREADABLE_BODY = (
    "the request body is not valid UTF-8 JSON; send a JSON object with "
    "Content-Type: application/json"
)


def _validation(exc: RequestValidationError) -> ApiError:
    """422 naming each bad field; 400 when the body is not JSON at all (nothing to name)."""
    errs = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errs):
        return ApiError(400, UNREADABLE_BODY, field="body")
    details = []
    for err in errs:
        field = _loc(err.get("loc", ()))
        reason = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        details.append({"field": field, "reason": reason})
    summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    first = details[0]["field"] if details else None
    return ApiError(422, f"invalid request: {summary}{more}", field=first, details=details)


def install(app: FastAPI) -> None:
    """Register the handlers that give every failure the one error shape."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(BodyTooLarge)
    async def _large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return too_large(exc.limit).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation(exc).response()

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> JSONResponse:
        return ApiError(404, str(exc)).response()

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return ApiError(409, str(exc)).response()

    @app.exception_handler(FilterQLError)
    async def _fql(request: Request, exc: FilterQLError) -> JSONResponse:
        return filterql_error(exc).response()

    @app.exception_handler(ConnectionStringError)
    async def _connstr(request: Request, exc: ConnectionStringError) -> JSONResponse:
        # Routes that take a connection string catch this themselves and scrub the text; this is
        # the safety net, and the engine's messages never quote the key.
        return ApiError(422, str(exc), field="connection_string").response()

    @app.exception_handler(SecretUnreadable)
    async def _unreadable(request: Request, exc: SecretUnreadable) -> JSONResponse:
        return ApiError(409, str(exc)).response()

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        log.error("configuration error on %s %s: %s", request.method, request.url.path, exc)
        return ApiError(500, "the server is misconfigured; the API log says what to set").response()

    @app.exception_handler(IngestRefused)
    async def _refused(request: Request, exc: IngestRefused) -> JSONResponse:
        log.warning("write refused on %s %s: %s", request.method, request.url.path, exc.reason)
        return refused(exc).response()

    @app.exception_handler(TooManyEvents)
    async def _too_many(request: Request, exc: TooManyEvents) -> JSONResponse:
        return ApiError(413, str(exc), field="body").response()

    @app.exception_handler(redis.exceptions.RedisError)
    async def _redis_refused(request: Request, exc: Exception) -> JSONResponse:
        reason = write_refusal(exc)
        if reason is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return ApiError(500, "internal error; the API log has the details").response()
        log.error("redis unavailable on %s %s: %s", request.method, request.url.path, reason)
        return ApiError(
            503,
            f"the state store (Redis) is unavailable: {reason}; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; see /openapi.json for the routes"
        elif exc.status_code == 400:  # FastAPI could not decode the body
            message = UNREADABLE_BODY
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        return ApiError(exc.status_code, message, headers=headers).response()

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiError(500, "internal error; the API log has the details").response()
