"""audiencehub.ingest_events: the Celery way in, for producers that already speak Celery.

When Redis refuses the write (full, read-only) or the backlog is over its bound, the task keeps its
batch and tries again for up to ``REFUSED_WAIT_S``, with the same intake token, so a Redis Cluster
shard that took its part the first time is not written twice. It does not use ``self.retry()``:
that publishes a copy first, and when the broker refuses the copy Celery rejects the original
without requeueing it (the batch would be lost). If Redis still refuses after the wait, the
message is rejected with requeue: Redis puts it back at the head of the queue, or, if it cannot
take even that, kombu's MULTI aborts and the message stays in the unacked set, from which the
broker hands it out again after the visibility timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Reject
from celery.worker.request import Request

from tasks.app import app
from tasks.runtime import runtime
from workers.pipeline.ingest import IngestRefused, list_items

MAX_EVENTS_PER_TASK = 1000
REFUSED_WAIT_S = 60.0
log = logging.getLogger("audiencehub.ingest")


def shown_args(args: Any) -> str:
    """What Flower and the logs show of ingest_events' arguments: how many events, not them."""
    events = args[0] if isinstance(args, list | tuple) and args else None
    count = len(events) if isinstance(events, list) else 0
    return f"(<{count} events>,)"


class CountsOnly(Request):  # type: ignore[misc]
    """The worker's view of an ingest_events message, whoever sent it: the task-received event
    (Flower), the received/failed log lines and ``inspect active`` all show the event count
    instead of the events, which are people's data. (A producer can set ``argsrepr`` itself,
    ``audiencehub.ingest.send_events`` does, but one that does not must not leak them.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._argsrepr = shown_args(self._args)
        self._kwargsrepr = "{}"
        self._request_dict["argsrepr"] = self._argsrepr
        self._request_dict["kwargsrepr"] = self._kwargsrepr

    def info(self, safe: bool = False) -> dict[str, Any]:
        return dict(super().info(safe=True))


@app.task(
    name="audiencehub.ingest_events",
    bind=True,
    keep_on_refusal=True,
    Request="tasks.ingest:CountsOnly",
)
def ingest_events(self: Any, events: list[Any]) -> dict[str, Any]:
    """Accept a small batch. Errors are logged by index and field; the result holds counts only,
    because Flower shows task results and a rejected value may be personal data."""
    if len(events) > MAX_EVENTS_PER_TASK:  # refused for good: raising would only redeliver it
        log.error(
            "ingest_events got %d events; at most %d per task: batch dropped",
            len(events),
            MAX_EVENTS_PER_TASK,
        )
        return {"accepted": 0, "rejected": len(events), "error": "too many events in one task"}
    ingestor = runtime().ingestor
    deadline = time.monotonic() + REFUSED_WAIT_S
    token = f"task-{self.request.id}"
    pause = 0.5
    while True:
        try:
            result = ingestor.ingest(list_items(events), token=token)
            break
        except IngestRefused as exc:
            if time.monotonic() >= deadline:
                log.error("ingest refused for %.0f s (%s); requeued", REFUSED_WAIT_S, exc.reason)
                raise Reject(exc.reason, requeue=True) from None
            log.warning("ingest refused (%s); retrying in %.1f s", exc.reason, pause)
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, exc.retry_after_s)
    for error in result.errors:
        log.warning("event rejected at %s, field %s", error.where, error.field)
    return {
        "accepted": result.accepted,
        "rejected": result.rejected,
        "duplicates": result.duplicates,
    }
