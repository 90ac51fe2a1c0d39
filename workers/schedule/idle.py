"""Is the system idle? Nothing left to apply, release, deliver or backfill up to the engine's now.

Scripts and tests that feed events (or move the test clock) and then look at the results need to
know when the workers are done, instead of sleeping and hoping. Idle means, at one instant:

* every shard's stream is empty (every accepted event and re-check is applied),
* no user is due at or before the engine's now (every time-driven flip up to now is applied),
* the outboxes of the running jobs are empty (every message was acknowledged by the hub),
* no running job's Existing Users backfill and no re-check run is unfinished.

Paused and failed jobs keep their outboxes by design, so they do not count. The checks read a few
counters per shard and job (no scans), so polling is cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.jobs.backfill import Backfills
from workers.jobs.store import JobStore
from workers.schedule.reevaluate import Reevaluations
from workers.schedule.release import due_stats
from workers.timefmt import NS_PER_MS, format_rfc3339

POLL_S = 0.1


@dataclass
class IdleReport:
    now: int
    """The engine's now (ns) the report is about."""
    pending_entries: int = 0
    due_now: bool = False
    """Some user is due at or before now (a time-driven flip not applied yet)."""
    pending_messages: int = 0
    backfills: list[str] = field(default_factory=list)
    rechecks: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (
            self.pending_entries
            or self.due_now
            or self.pending_messages
            or self.backfills
            or self.rechecks
        )

    def as_dict(self) -> dict[str, object]:
        """As JSON: ``audiencehub wait --idle --json`` and the API's ``GET /idle`` answer this."""
        return {
            "idle": self.idle,
            "now": format_rfc3339(self.now),
            "pending_entries": self.pending_entries,
            "due_now": self.due_now,
            "pending_messages": self.pending_messages,
            "backfilling_jobs": self.backfills,
            "recheck_runs": self.rechecks,
            "busy": self.busy(),
        }

    def busy(self) -> list[str]:
        """What is still going on, one short phrase each."""
        out: list[str] = []
        if self.pending_entries:
            out.append(f"{self.pending_entries} entries to apply")
        if self.due_now:
            out.append("time-driven changes due")
        if self.pending_messages:
            out.append(f"{self.pending_messages} messages to deliver")
        out += [f"job {j} backfilling" for j in self.backfills]
        out += [f"re-check run {r} running" for r in self.rechecks]
        return out


def idle_report(engine: Engine) -> IdleReport:
    e = engine
    now = e.clock.now_ns()
    report = IdleReport(now)
    running = [j.id for j in JobStore(e.r, e.keys).all() if j.state == "running"]
    pipe = e.r.pipeline(transaction=False)
    for shard in range(e.cfg.shards):
        pipe.xlen(e.keys.events(shard))
        for job in running:
            Outbox(e.keys, shard, job).length(pipe)
    answers = [int(n) for n in pipe.execute()]
    width = 1 + len(running)
    report.pending_entries = sum(answers[0::width])
    report.pending_messages = sum(answers) - report.pending_entries
    due = due_stats(e).next_due_ms
    report.due_now = due is not None and due <= now // NS_PER_MS
    backfills = Backfills(e)
    report.backfills = [job for job in running if backfills.active(job)]
    report.rechecks = [run.id for run in Reevaluations(e).runs() if not run.finished_at]
    return report


def wait_idle(engine: Engine, timeout_s: float, poll_s: float = POLL_S) -> IdleReport:
    """Poll until idle or ``timeout_s`` passed; returns the last report (check ``.idle``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = idle_report(engine)
        if report.idle or time.monotonic() >= deadline:
            return report
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
