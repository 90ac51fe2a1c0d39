"""Process-level hooks: JSON logs when asked for, and the metrics endpoint on each worker."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    worker_init,
    worker_process_init,
    worker_ready,
)

from tasks.ingest import shown_args
from tasks.runtime import runtime
from workers import gc_tuning, malloc_tuning
from workers.config import ConfigError, settings
from workers.jobs.secrets import secret_box
from workers.logs import use_json
from workers.metrics import serve


@worker_init.connect
def _refuse_without_secret_key(**_: Any) -> None:
    """Outside demo/test mode a worker without AUDIENCEHUB_SECRET_KEY stops at once (the error
    says how to make one), instead of failing later at its first delivery. SystemExit, because
    Celery logs and swallows ordinary exceptions raised by signal handlers."""
    try:
        secret_box(settings())
    except ConfigError as exc:
        print(f"audiencehub: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


@worker_init.connect
def _refuse_pools_without_time_limits(sender: Any = None, **_: Any) -> None:
    """Only the prefork pool can enforce a hard time limit (it kills the pool process); under
    solo or threads a stuck task would hold its worker for ever, so such a worker stops at once."""
    pool = getattr(sender, "pool_cls", "prefork")
    name = pool if isinstance(pool, str) else f"{pool.__module__}.{pool.__qualname__}"
    if name not in ("prefork", "processes") and "prefork" not in name:
        print(
            f"audiencehub: the worker pool {name!r} cannot enforce task time limits; "
            "run workers with -P prefork (the default)",
            file=sys.stderr,
        )
        raise SystemExit(1)


@worker_process_init.connect
def _tune_gc(**_: Any) -> None:
    """Each pool process, once forked: the collector tuned for batch work (workers/gc_tuning.py)
    and the allocator for large buffers (workers/malloc_tuning.py)."""
    gc_tuning.tune(settings())
    malloc_tuning.tune()


@before_task_publish.connect
def _hide_event_contents(
    sender: str | None = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Whoever sends ingest_events through this app (``.delay``, ``send_task``, a retry), the
    message's ``argsrepr`` (what Flower shows) is the event count, never the events."""
    if sender == "audiencehub.ingest_events" and headers is not None:
        args = body[0] if isinstance(body, tuple | list) and body else ()
        headers["argsrepr"] = shown_args(args)
        headers["kwargsrepr"] = "{}"


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger: logging.Logger, **_: Any) -> None:
    # The Event Hubs SDK logs every connection and link state change at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    if os.environ.get("AUDIENCEHUB_LOG_FORMAT", "text").lower() == "json":
        use_json(logger)
        use_json(logging.getLogger())


@worker_ready.connect
def _metrics(**_: Any) -> None:
    port = os.environ.get("AUDIENCEHUB_METRICS_PORT")
    if port:
        serve(runtime().engine, int(port), settings().metrics_host)
