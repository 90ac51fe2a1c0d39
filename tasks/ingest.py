"""audiencehub.ingest_events: the Celery way in, for producers that already speak Celery."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime
from workers.ingest import list_items

MAX_EVENTS_PER_TASK = 1000


@app.task(name="audiencehub.ingest_events")
def ingest_events(events: list[Any]) -> dict[str, Any]:
    """Accept a small batch; per-event errors come back in the (ignored by default) result."""
    if len(events) > MAX_EVENTS_PER_TASK:
        raise ValueError(
            f"{len(events)} events in one task; send at most {MAX_EVENTS_PER_TASK} per task"
        )
    return runtime().ingestor.ingest(list_items(events)).as_dict()
