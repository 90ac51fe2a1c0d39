"""The safety net: wake any shard with pending entries and any outbox with unsent messages.

Kicks normally come from ingest and from drains; the sweep (run by beat every few seconds)
covers a kick lost to a crash, so an idle system still converges without anyone watching.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.delivery.outbox import Outbox
from workers.engine import Engine


@dataclass
class SweepReport:
    drains: int = 0
    delivers: int = 0


def sweep(engine: Engine) -> SweepReport:
    e = engine
    shards = range(e.cfg.shards)
    jobs = [j for j in e.registry.get().jobs.values() if j.state == "running"]
    pipe = e.r.pipeline(transaction=False)
    for shard in shards:
        pipe.xlen(e.keys.events(shard))
    pairs = [(job.id, shard) for job in jobs for shard in shards]
    for job_id, shard in pairs:
        Outbox(e.keys, shard, job_id).length(pipe)
    lengths = pipe.execute()
    pending_shards = [s for s, n in zip(shards, lengths[: len(shards)], strict=True) if n]
    pending_jobs = {job for (job, _), n in zip(pairs, lengths[len(shards) :], strict=True) if n}
    return SweepReport(e.kicker.drains(pending_shards), e.kicker.delivers(pending_jobs))
