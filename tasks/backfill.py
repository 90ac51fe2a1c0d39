"""audiencehub.backfill: write pages of existing members into a job's outbox (kicked by beat)."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime


@app.task(name="audiencehub.backfill")
def backfill(job: str, shard: int) -> dict[str, Any]:
    report = runtime().backfills.run(job, shard)
    return {"job": job, "shard": shard, "written": report.written, "done": report.done}
