"""Prometheus metrics of the API process: requests by route and status, events accepted/rejected.

A registry per app (not the global one) so several apps in one process (tests) stay apart. One
uvicorn process exposes its own counters; run several API processes behind a load balancer and
let Prometheus sum them, rather than uvicorn ``--workers`` (which would need multiprocess mode).
"""

from __future__ import annotations

import threading
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_STREAM_LABELS = 100
"""Streams are named by clients; past this many distinct names the rest count as ``_other``,
so a client inventing names cannot blow up the series count."""
OTHER_STREAM = "_other"
STATIC_PATHS = frozenset({"/openapi.json"})
"""Served by FastAPI itself, outside the routers, so no route template is recorded for them."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SCORES_STREAM = "_scores"
"""Label for profile score updates (PATCH /profiles/…); no client stream can start with '_'."""


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "audiencehub_api_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "audiencehub_api_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "audiencehub_api_requests_in_progress",
            "Requests being answered right now.",
            registry=self.registry,
        )
        self.events = Counter(
            "audiencehub_api_events",
            "Events received, by stream and outcome (accepted = durable in Redis; rejected = "
            "invalid, reported back per event). Stream _scores counts profile score updates.",
            ["stream", "outcome"],
            registry=self.registry,
        )
        self.body_bytes = Histogram(
            "audiencehub_api_collect_body_bytes",
            "Size of accepted /collect request bodies.",
            buckets=(1_000, 10_000, 100_000, 1_000_000, 5_000_000, 20_000_000),
            registry=self.registry,
        )
        self._streams: set[str] = set()
        self._lock = threading.Lock()
        # The labelled children, looked up once: ``labels()`` checks and locks on every call,
        # a cost /collect paid three times a request. The label sets are bounded (route
        # templates, known methods, status codes, MAX_STREAM_LABELS streams).
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._counted: dict[tuple[str, str], Counter] = {}

    def stream_label(self, stream: str) -> str:
        with self._lock:
            if stream in self._streams:
                return stream
            if len(self._streams) < MAX_STREAM_LABELS:
                self._streams.add(stream)
                return stream
        return OTHER_STREAM

    def count_events(self, stream: str, accepted: int, rejected: int) -> None:
        label = stream if stream.startswith("_") else self.stream_label(stream)
        if accepted:
            self._events(label, "accepted").inc(accepted)
        if rejected:
            self._events(label, "rejected").inc(rejected)

    def _events(self, label: str, outcome: str) -> Counter:
        child = self._counted.get((label, outcome))
        if child is None:
            child = self._counted[label, outcome] = self.events.labels(label, outcome)
        return child

    def answered(self, method: str, template: str, status: int, seconds: float) -> None:
        """One request answered: counted by method, route template and status, and timed."""
        children = self._answered.get((method, template, status))
        if children is None:
            children = self._answered[method, template, status] = (
                self.requests.labels(method, template, str(status)),
                self.duration.labels(method, template),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every answer, including 401s and 413s given before routing, by route template
    (``/jobs/{job_ref}``, never the raw path, so ids do not become series)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        m = self.metrics
        m.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = scope["path"] if scope["path"] in STATIC_PATHS else "unmatched"
            method = scope.get("method", "GET")
            method = method if method in KNOWN_METHODS else "OTHER"
            m.answered(method, template, status, time.perf_counter() - started)
