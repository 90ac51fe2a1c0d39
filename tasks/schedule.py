"""Beat's tasks: every second release due users and move re-evaluation runs along; every few
seconds sweep for stranded work."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tasks.app import app
from tasks.runtime import runtime
from workers.schedule.sweep import sweep as sweep_engine


@app.task(name="audiencehub.tick")
def tick() -> dict[str, Any]:
    return asdict(runtime().ticker.tick())


@app.task(name="audiencehub.sweep")
def sweep() -> dict[str, Any]:
    report = sweep_engine(runtime().engine)
    return {"drains": report.drains, "delivers": report.delivers}
