"""audiencehub.deliver: send one job's outboxes (kicked by drains and backfills, swept by beat)."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime


@app.task(name="audiencehub.deliver")
def deliver(job: str) -> dict[str, Any]:
    report = runtime().deliverer.deliver(job)
    return {"job": job, "sent": report.sent, "batches": report.batches, "error": report.error}
