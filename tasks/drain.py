"""audiencehub.drain_shard: apply the pending events of a shard's drain group (kicked on arrival,
swept by beat); the argument is the group's lead shard (any shard of it drains the same group)."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime


@app.task(name="audiencehub.drain_shard")
def drain_shard(shard: int) -> dict[str, Any]:
    report = runtime().drainer.drain(shard)
    return {"shard": shard, "entries": report.entries, "messages": report.messages}
