"""``/healthz`` (no token: load balancers probe it), ``/metrics`` (Prometheus text) and ``/idle``
(have the workers finished everything up to now?)."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from audiencehub.api.deps import EngineDep, MetricsDep
from audiencehub.api.models import HealthOut, IdleOut
from workers.schedule.idle import POLL_S, idle_report

log = logging.getLogger("audiencehub.api")
router = APIRouter(tags=["system"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Liveness and Redis reachability (no token needed)",
    responses={503: {"model": HealthOut, "description": "Redis does not answer."}},
)
async def healthz(request: Request) -> HealthOut | JSONResponse:
    """200 when Redis answers a PING within 2 s, else 503 (details only in the API log).

    The ping runs on asyncio's own executor, not the pool the routes share, so a probe is
    answered even while every route thread waits on a slow Redis.
    """
    client: redis.Redis = request.app.state.health_redis
    try:
        await asyncio.to_thread(client.ping)
    except (redis.exceptions.RedisError, OSError) as exc:
        log.warning("healthz: redis does not answer: %s", exc)
        body = HealthOut(status="unavailable", redis="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="ok", redis="ok")


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics of this API process",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(metrics: MetricsDep) -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


MAX_WAIT_S = 25
"""Longest a ``GET /idle`` holds the request (``Prefer: wait=N``); loop for longer waits."""
_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def _wanted_wait(prefer: str | None) -> int:
    """Seconds asked for by an RFC 7240 ``Prefer: wait=N`` header (0 without one), capped."""
    m = _WAIT.search(prefer or "")
    return min(int(m.group(1)), MAX_WAIT_S) if m and len(m.group(1)) <= 6 else 0


@router.get(
    "/idle",
    response_model=IdleOut,
    summary="Are the workers done with everything up to now? (long-poll with Prefer: wait=N)",
)
async def idle(request: Request, engine: EngineDep) -> Response:
    """Idle: every shard drained, nothing due up to the engine's now, the running jobs' outboxes
    empty, no backfill or re-check run unfinished (as ``audiencehub wait --idle``).

    Answers at once by default. With the RFC 7240 header ``Prefer: wait=N`` it holds the request
    until idle or N seconds (at most 25), checking every 0.1 s, and answers with
    ``Preference-Applied: wait=N``; a script loops for longer waits. Always 200: look at ``idle``.
    """
    wait_s = _wanted_wait(request.headers.get("prefer"))
    deadline = time.monotonic() + wait_s
    while True:
        report = await asyncio.to_thread(idle_report, engine)
        if report.idle or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    body = IdleOut.model_validate(report.as_dict())
    headers = {"Preference-Applied": f"wait={wait_s}"} if wait_s else {}
    return JSONResponse(body.model_dump(), headers=headers)
