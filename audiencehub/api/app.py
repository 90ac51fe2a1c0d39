"""The FastAPI application: routes, the token and body-size checks, metrics, one error shape.

``create_app`` takes an engine (tests build their own) or makes the process's one on startup
(``audiencehub.context.engine``: kicks go to Celery, like the CLI's).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import redis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from audiencehub import __version__
from audiencehub.api import errors
from audiencehub.api.metrics import ApiMetrics, MetricsMiddleware
from audiencehub.api.middleware import BearerAuth, BodyLimit, SameOriginWrites
from audiencehub.api.routes_audiences import router as audiences
from audiencehub.api.routes_auths import router as authorizations
from audiencehub.api.routes_collect import collect_pool
from audiencehub.api.routes_collect import route as collect_route
from audiencehub.api.routes_collect import router as collect
from audiencehub.api.routes_explain import router as explain
from audiencehub.api.routes_jobs import router as jobs
from audiencehub.api.routes_profiles import router as profiles
from audiencehub.api.routes_reevaluations import router as reevaluations
from audiencehub.api.routes_system import router as system
from audiencehub.api.settings import ApiSettings, load_api_settings
from audiencehub.ui.app import UiGate
from workers.config import Settings, settings
from workers.engine import Engine
from workers.jobs.secrets import secret_box
from workers.metrics import EngineCollector
from workers.pipeline.group_commit import GroupCommit
from workers.redisconn import async_state_redis

log = logging.getLogger("audiencehub.api")

HEALTH_TIMEOUT_S = 2.0
RETRY_AFTER = {
    "description": "Seconds to wait before retrying the same request.",
    "schema": {"type": "integer"},
}
DESCRIPTION = """Collect events, manage audiences, authorizations and export jobs, and follow them.

Every route except `/healthz` needs `Authorization: Bearer <token>` (tokens from
`AUDIENCEHUB_API_TOKENS`); `/metrics` too unless `AUDIENCEHUB_API_METRICS_PUBLIC=true`.
Errors are JSON: `{"error", "message", "field", "details"}`. See docs/api.md.
"""


def _default_engine() -> Engine:
    from audiencehub.context import engine

    return engine()


def health_client(cfg: Settings) -> redis.Redis:
    """A separate client with short timeouts, so a hung Redis fails the probe instead of
    hanging it (the engine's client waits as long as a drain needs)."""
    if getattr(cfg, "redis_cluster", False):
        from redis.cluster import RedisCluster

        return cast(
            redis.Redis,
            RedisCluster.from_url(
                cfg.redis_url,
                socket_timeout=HEALTH_TIMEOUT_S,
                socket_connect_timeout=HEALTH_TIMEOUT_S,
            ),
        )
    return redis.Redis.from_url(
        cfg.redis_url, socket_timeout=HEALTH_TIMEOUT_S, socket_connect_timeout=HEALTH_TIMEOUT_S
    )


def _openapi(app: FastAPI, public: frozenset[str]) -> Callable[[], dict[str, Any]]:
    """The generated document, plus what middleware adds: bearer auth on every operation but the
    public ones, 401/413/503 answers, and our error body for 422 (FastAPI's default differs)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title="audiencehub", version=__version__, description=DESCRIPTION, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from AUDIENCEHUB_API_TOKENS.",
        }
        for path, operations in schema.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                if path in public:
                    op["security"] = []
                else:
                    op["security"] = [{"bearerAuth": []}]
                    responses["401"] = {
                        "description": "Missing or invalid bearer token.",
                        "content": error,
                    }
                if "requestBody" in op:
                    responses.setdefault(
                        "400",
                        {"description": "The body is not valid UTF-8 JSON.", "content": error},
                    )
                    responses["413"] = {
                        "description": "The body is larger than AUDIENCEHUB_API_MAX_BODY.",
                        "content": error,
                    }
                if "422" in responses:
                    responses["422"]["content"] = error
                if path != "/healthz":
                    responses["503"] = {
                        "description": "Redis does not answer, or refuses writes (full, read-only)"
                        ". Retry after `Retry-After` seconds.",
                        "content": error,
                        "headers": {"Retry-After": RETRY_AFTER},
                    }
                if "429" in responses:
                    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
                if "requestBody" in op and path.startswith("/collect/"):
                    responses["413"]["description"] += (
                        " Also: more valid events than AUDIENCEHUB_MAX_REQUEST_EVENTS."
                    )
        schemas = components.get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    return build


def create_app(
    engine: Engine | None = None,
    api_settings: ApiSettings | None = None,
    engine_factory: Callable[[], Engine] = _default_engine,
) -> FastAPI:
    """The API; without ``engine`` it is made at startup, so a bad setting fails the start."""
    cfg = engine.cfg if engine is not None else settings()
    api_cfg = api_settings or load_api_settings(cfg)
    secret_box(cfg)  # refuse to start in production without a valid AUDIENCEHUB_SECRET_KEY
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        e = engine if engine is not None else engine_factory()
        app.state.engine = e
        # The deployment-wide engine metrics (kept in Redis) beside the API's own.
        metrics.registry.register(EngineCollector(e))
        app.state.health_redis = health_client(e.cfg)
        app.state.collect_pool = collect_pool()
        app.state.group_commit = None
        if not e.cfg.redis_cluster:
            app.state.group_commit = GroupCommit(
                e, async_state_redis(e.cfg), app.state.collect_pool
            )
        if not api_cfg.auth_required:
            log.warning(
                "AUDIENCEHUB_API_TOKENS is not set: every request is accepted (mode %s)", cfg.mode
            )
        try:
            yield
        finally:
            if e.kicker.pacer is not None:  # hand held-back drain kicks on, not to the sweep
                e.kicker.pacer.flush()
            app.state.health_redis.close()
            if app.state.group_commit is not None:
                await app.state.group_commit.r.aclose()
            app.state.collect_pool.shutdown(wait=False)

    app = FastAPI(
        title="audiencehub",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.api_settings = api_cfg
    # explain before profiles: /profiles/{user_id:anytext} would take "u1/explain" as a user id.
    routers = (collect, audiences, authorizations, jobs, explain, profiles, reevaluations, system)
    for router in routers:
        app.include_router(router)
    app.router.routes.insert(0, collect_route)  # answers /collect ahead of its documented route
    errors.install(app)
    public = frozenset({"/healthz", "/metrics"} if api_cfg.metrics_public else {"/healthz"})
    # add_middleware puts the last one outermost: metrics see every answer, even a 401 or 413.
    app.add_middleware(BodyLimit, limit=api_cfg.max_body)
    app.add_middleware(BearerAuth, tokens=api_cfg.tokens, public=public)
    # /ui is the dashboard, with its own session-cookie login (audiencehub/ui, docs/dashboard.md).
    app.add_middleware(UiGate, api=app, api_settings=api_cfg)
    if not api_cfg.auth_required:
        app.add_middleware(SameOriginWrites)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = _openapi(app, public)  # type: ignore[method-assign]
    return app
