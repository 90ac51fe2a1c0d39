"""What routes receive from the app: the engine, the metrics, and the OpenAPI error entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from audiencehub.api.metrics import ApiMetrics
from audiencehub.api.models import ErrorBody
from workers.engine import Engine

_DESCRIPTIONS = {
    400: "The body cannot be read as events (empty, or not JSON / NDJSON).",
    404: "The thing named in the path does not exist.",
    409: "The change conflicts with the current state (duplicate, in use, stopped…).",
    413: "The body is larger than AUDIENCEHUB_API_MAX_BODY.",
    415: "The Content-Type is not JSON or NDJSON.",
    422: "A field is missing or invalid; `message` and `details` name it and the fix.",
    429: "Too many events wait to be processed (AUDIENCEHUB_MAX_BACKLOG); nothing of the request "
    "was stored. Retry after `Retry-After` seconds.",
}


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all with the one error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}
