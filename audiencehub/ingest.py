"""The Python way in: ``audiencehub.ingest.ingest(events)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audiencehub.context import engine
from workers.ingest import Ingestor, IngestResult, list_items


def ingest(events: Iterable[Any]) -> IngestResult:
    """Validate and durably accept events; each bad one is reported, the rest go through."""
    return Ingestor(engine()).ingest(list_items(events))


def send_events(events: list[Any]) -> None:
    """The Celery way in: queue a small batch for ``audiencehub.ingest_events``.

    The task's ``argsrepr`` is a count, so Flower and logs never show event contents.
    """
    from tasks.app import app
    from tasks.ingest import MAX_EVENTS_PER_TASK

    for start in range(0, len(events), MAX_EVENTS_PER_TASK):
        chunk = events[start : start + MAX_EVENTS_PER_TASK]
        app.send_task(
            "audiencehub.ingest_events", args=[chunk], argsrepr=f"(<{len(chunk)} events>,)"
        )
