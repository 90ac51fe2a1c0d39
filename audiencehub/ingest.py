"""The Python way in: ``audiencehub.ingest.ingest(events)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audiencehub.context import engine
from workers.pipeline.ingest import Ingestor, IngestRefused, IngestResult, TooManyEvents, list_items

__all__ = ["IngestRefused", "IngestResult", "TooManyEvents", "ingest", "send_events"]


def ingest(events: Iterable[Any]) -> IngestResult:
    """Validate and durably accept events; each bad one is reported, the rest go through.

    The valid events are stored all-or-nothing. Raises ``IngestRefused`` (``kind`` "backlog" or
    "unavailable", ``retry_after_s``) when nothing could be stored, and ``TooManyEvents`` for more
    than ``AUDIENCEHUB_MAX_REQUEST_EVENTS`` valid events in one call (split the call).
    """
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
