"""Beat's tick, every second: everything time moves along, in one engine call.

Release the users whose answers flip now, start the re-evaluation runs whose schedule came, queue
the next pages of running re-evaluations and backfills (flow-controlled), and take the minute's
audience-size sample for the dashboard's charts.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.audiences.sizes import AudienceSizes
from workers.engine import Engine
from workers.jobs.backfill import Backfills
from workers.schedule.reevaluate import Reevaluations
from workers.schedule.release import Releaser


@dataclass
class TickReport:
    released: int
    lateness_ms: int
    runs_started: int
    pages: int
    backfill_kicks: int


class Ticker:
    """Built once per process: the parts hold registered scripts and caches."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.releaser = Releaser(engine)
        self.reevaluations = Reevaluations(engine)
        self.backfills = Backfills(engine)
        self.sizes = AudienceSizes(engine)

    def tick(self) -> TickReport:
        released = self.releaser.release()
        started = self.reevaluations.start_due()
        pages = self.reevaluations.advance()
        kicks = self.backfills.advance(self.e.registry.get())
        self.sizes.sample_if_due()  # one point a minute for the dashboard's charts
        return TickReport(released.released, released.worst_lateness_ms, len(started), pages, kicks)
