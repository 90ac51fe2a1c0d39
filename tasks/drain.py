"""audiencehub.drain_shard: apply a shard's pending events (kicked on arrival, swept by beat)."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime


@app.task(name="audiencehub.drain_shard")
def drain_shard(shard: int) -> dict[str, Any]:
    report = runtime().drainer.drain(shard)
    return {"shard": shard, "entries": report.entries, "messages": report.messages}
