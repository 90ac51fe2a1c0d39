"""audiencehub.deliver: send one job's outbox for one shard (kicked by drains, swept by beat)."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime


@app.task(name="audiencehub.deliver")
def deliver(job: str, shard: int) -> dict[str, Any]:
    report = runtime().deliverer.deliver(job, shard)
    return {"job": job, "shard": shard, "sent": report.sent, "error": report.error}
