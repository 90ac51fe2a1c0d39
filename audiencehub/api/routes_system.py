"""``/healthz`` (no token: load balancers probe it) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import asyncio
import logging

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from audiencehub.api.deps import MetricsDep
from audiencehub.api.models import HealthOut

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
