"""audiencehub.ingest_events: the Celery way in, for producers that already speak Celery."""

from __future__ import annotations

import logging
from typing import Any

from tasks.app import app
from tasks.runtime import runtime
from workers.ingest import list_items

MAX_EVENTS_PER_TASK = 1000
log = logging.getLogger("audiencehub.ingest")


@app.task(name="audiencehub.ingest_events")
def ingest_events(events: list[Any]) -> dict[str, Any]:
    """Accept a small batch. Errors are logged by index and field; the result holds counts only,
    because Flower shows task results and a rejected value may be personal data."""
    if len(events) > MAX_EVENTS_PER_TASK:
        raise ValueError(
            f"{len(events)} events in one task; send at most {MAX_EVENTS_PER_TASK} per task"
        )
    result = runtime().ingestor.ingest(list_items(events))
    for error in result.errors:
        log.warning("event rejected at %s, field %s", error.where, error.field)
    return {"accepted": result.accepted, "rejected": result.rejected}
