"""``POST /collect/{stream}``: events in over HTTP, with the CLI's per-event errors.

The body is one JSON event, a JSON array of events, or NDJSON (one event per line), chosen by
Content-Type or, for text/plain and no type, by looking at it. Valid events are appended to their
users' shard streams and the answer (202) comes only once that append returned: accepted means
durable. Bad events are listed one by one beside the count of accepted ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import State
from starlette.routing import Match, Route
from starlette.types import Scope

from audiencehub.api.deps import errors
from audiencehub.api.errors import ApiError
from audiencehub.api.metrics import ApiMetrics
from audiencehub.api.models import STREAM_PATTERN, CollectOut, EventErrorOut
from workers.pipeline.events import EventError
from workers.pipeline.group_commit import GroupCommit
from workers.pipeline.ingest import Ingestor, IngestResult, Item, list_items, ndjson_items

router = APIRouter(tags=["collect"])

MAX_ERRORS_RETURNED = 1000
POOL_THREADS = 40
"""Threads that wait on Redis for /collect at once: as many as Starlette's shared pool holds."""
INLINE_BODY_BYTES = 32 * 1024
"""Bodies up to this size are read and checked on the event loop (at most a few ms of CPU);
bigger ones on a thread, so one large batch does not hold every other request and /healthz."""
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
    }
)
SNIFFED_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"}
)
"""Read by looking at the body. The last is what ``curl -d`` sends when no type is given."""
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An event: `user_id` (string or integer), optional `event` (name), optional "
    "`_ts` (RFC 3339 or epoch ms), optional id (`_id`, or `messageId` as Segment sends it) that "
    "makes a repeat within the dedup window a duplicate, any other fields (merged into the "
    "profile).",
    "properties": {
        "user_id": {"type": ["string", "integer"]},
        "event": {"type": "string"},
        "_ts": {"type": ["string", "integer", "number"]},
        "_id": {"type": ["string", "integer"]},
        "messageId": {"type": ["string", "integer"]},
    },
    "additionalProperties": True,
}
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One JSON event, a JSON array of events, or NDJSON (one event per line).",
        "content": {
            "application/json": {
                "schema": {"anyOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]},
                "example": [
                    {"user_id": "u1", "event": "purchase", "email": "a@example.com"},
                    {"user_id": "u2", "_ts": "2026-11-27T09:30:00Z", "plan": "pro"},
                ],
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"user_id": "u1", "event": "login"}\n{"user_id": "u2", "plan": "pro"}\n',
            },
        },
    }
}

StreamParam = Annotated[
    str,
    Path(
        pattern=STREAM_PATTERN,
        description="The source that sent these events (e.g. `web`, `crm`): 1-64 letters, digits, "
        "'.', '_' or '-'. Echoed back and counted per stream in /metrics; it does not change how "
        "the events are stored (every stream's fields merge into the one profile per user).",
    ),
]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def parse_body(body: bytes, media: str) -> Iterable[Item]:
    """The events the body holds, as ingest items; an ApiError when it cannot be read at all."""
    if media not in NDJSON_TYPES and media not in SNIFFED_TYPES and not _is_json(media):
        raise ApiError(
            415,
            f"Content-Type {media!r} is not supported; send application/json (one event or an "
            "array) or application/x-ndjson (one event per line)",
            field="Content-Type (header)",
        )
    stripped = body.strip()
    if not stripped:
        raise ApiError(
            400,
            "the body is empty; send one JSON event, a JSON array of events, or NDJSON",
            field="body",
        )
    if media in NDJSON_TYPES:
        return ndjson_items(body.split(b"\n"))
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        if b"\n" in stripped:  # NDJSON sent as application/json or without a type
            return ndjson_items(body.split(b"\n"))
        raise ApiError(
            400,
            f"the body is not valid JSON ({exc.args[0]}); send one JSON event, a JSON array of "
            "events, or NDJSON with Content-Type: application/x-ndjson",
            field="body",
        ) from None
    if isinstance(value, list):
        if not value:
            raise ApiError(400, "the JSON array is empty; put events in it", field="body")
        return list_items(value, owned=True)  # decoded here: validation may keep its dicts
    return [("index 0", value, len(stripped))]


def _error_out(error: EventError) -> EventErrorOut:
    kind, _, number = error.where.partition(" ")
    n = int(number) if number.isdigit() else None
    return EventErrorOut(
        at=error.where,
        index=n if kind == "index" else None,
        line=n if kind == "line" else None,
        field=error.field,
        reason=error.reason,
    )


@router.post(
    "/collect/{stream}",
    status_code=202,
    response_model=CollectOut,
    summary="Accept events (JSON, JSON array or NDJSON)",
    responses={
        **errors(400, 415, 422, 429),
        202: {
            "description": "The valid events are durable (a request is stored all-or-nothing); "
            "`errors` lists each refused one, `duplicates` counts repeats of an event id."
        },
    },
    openapi_extra=REQUEST_BODY,
)
async def collect(stream: StreamParam, request: Request) -> Response:
    """202 once every valid event is durable in Redis; 422 when none was valid; 429 or 503 (with
    Retry-After, nothing stored) when the backlog is over its bound or Redis refuses writes."""
    # What the OpenAPI document shows. create_app puts ``route`` (below) ahead of it, which
    # answers the same requests the same way without FastAPI's parameter solving.
    return await _collect(stream, request)


_STREAM = re.compile(STREAM_PATTERN.removeprefix("^").removesuffix("$"))


async def _plain(request: Request) -> Response:
    stream: str = request.path_params["stream"]
    if _STREAM.fullmatch(stream) is None:  # as FastAPI words it for StreamParam's pattern
        raise RequestValidationError(
            [
                {
                    "type": "string_pattern_mismatch",
                    "loc": ("path", "stream"),
                    "msg": f"String should match pattern '{STREAM_PATTERN}'",
                    "input": stream,
                }
            ]
        )
    return await _collect(stream, request)


class _PlainRoute(Route):
    """Names itself in the scope as FastAPI's routes do (FastAPI's router leaves that to the
    route), so /metrics counts its requests by template, a 405 too."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


route = _PlainRoute("/collect/{stream}", _plain, methods=["POST"])
"""``POST /collect/{stream}`` as a plain Starlette route: the hot path of the API
(bench/collect.py), where FastAPI's dependency solving and validated path parameter were a
quarter of a single-event request's CPU. The documented route above never sees a request."""


async def _collect(stream: str, request: Request) -> Response:
    # The engine and metrics come from app.state, not Depends, and the answer is encoded once
    # with orjson rather than validated into CollectOut and dumped again; response_model above
    # still documents it.
    state = request.app.state
    metrics: ApiMetrics = state.metrics
    body = await request.body()
    media = _media_type(request)
    group: GroupCommit | None = getattr(state, "group_commit", None)
    if group is not None:
        # One Redis server: the write joins the loop's next group commit, no thread.
        on_thread = len(body) > INLINE_BODY_BYTES
        result = await group.ingest(lambda: parse_body(body, media), on_thread=on_thread)
    else:
        result = await _ingest_on_thread(state, body, media)
    metrics.count_events(stream, result.accepted, result.rejected)
    shown = [_error_out(e) for e in result.errors[:MAX_ERRORS_RETURNED]]
    if result.accepted == 0:
        raise ApiError(
            422,
            f"none of the {result.rejected} event(s) was accepted; `events` says why each was "
            "refused (every event needs a user_id; see docs/api.md)",
            field=shown[0].at if shown else "body",
            extra={"events": [e.model_dump() for e in shown]},
        )
    metrics.body_bytes.observe(len(body))
    answer = {
        "stream": stream,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "duplicates": result.duplicates,
        "errors": [e.model_dump() for e in shown],
        "errors_truncated": result.rejected > len(shown),
    }
    return Response(orjson.dumps(answer), status_code=202, media_type="application/json")


async def _ingest_on_thread(state: State, body: bytes, media: str) -> IngestResult:
    """A Redis Cluster's intake is a blocking call per shard: on a thread of the app's own pool,
    through the loop's executor hook (about half the CPU of Starlette's run_in_threadpool, and
    apart from the pool /healthz pings on, so a probe is answered while every collect thread
    waits on a slow Redis)."""
    ingestor = _ingestor(state)

    def work() -> IngestResult:
        return ingestor.ingest(parse_body(body, media))

    ctx = contextvars.copy_context()
    pool: ThreadPoolExecutor = state.collect_pool
    return await asyncio.get_running_loop().run_in_executor(pool, ctx.run, work)


def collect_pool() -> ThreadPoolExecutor:
    """The threads /collect waits on Redis with; the app makes one at startup."""
    return ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="collect")


def _ingestor(state: State) -> Ingestor:
    """One Ingestor per app (it holds the registered intake script), made on first use."""
    ingestor: Ingestor | None = getattr(state, "ingestor", None)
    if ingestor is None or ingestor.e is not state.engine:
        ingestor = state.ingestor = Ingestor(state.engine)
    return ingestor
