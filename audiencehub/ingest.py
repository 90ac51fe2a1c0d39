"""The Python way in: ``audiencehub.ingest.ingest(events)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audiencehub.context import engine
from workers.ingest import Ingestor, IngestResult, list_items


def ingest(events: Iterable[Any]) -> IngestResult:
    """Validate and durably accept events; each bad one is reported, the rest go through."""
    return Ingestor(engine()).ingest(list_items(events))
