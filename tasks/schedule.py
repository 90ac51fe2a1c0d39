"""Beat's tasks: every second release due users and move re-evaluation runs along; every few
seconds sweep for stranded work."""

from __future__ import annotations

from typing import Any

from tasks.app import app
from tasks.runtime import runtime
from workers.audiences.sizes import AudienceSizes
from workers.schedule.sweep import sweep as sweep_engine


@app.task(name="audiencehub.tick")
def tick() -> dict[str, Any]:
    rt = runtime()
    report = rt.releaser.release()
    started = rt.reevaluations.start_due()
    pages = rt.reevaluations.advance()
    backfills = rt.backfills.advance(rt.engine.registry.get())
    AudienceSizes(rt.engine).sample_if_due()  # one point a minute for the dashboard's charts
    return {
        "backfill_kicks": backfills,
        "released": report.released,
        "lateness_ms": report.worst_lateness_ms,
        "runs_started": len(started),
        "pages": pages,
    }


@app.task(name="audiencehub.sweep")
def sweep() -> dict[str, Any]:
    report = sweep_engine(runtime().engine)
    return {"drains": report.drains, "delivers": report.delivers}
