"""Job lifecycle: pause, resume, stop, fail, and the state a person sees.

Stored states are set here only; ``backfilling`` and ``sleeping`` are derived when shown. A paused
or failed job keeps collecting triggers in its outbox, so resume sends everything.
"""

from __future__ import annotations

import time
from typing import Any, cast

import orjson

from workers.engine import Engine
from workers.jobs.health import JobHealth
from workers.jobs.store import Job, JobStore

HISTORY_KEEP = 200


class JobControl:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.store = JobStore(engine.r, engine.keys)
        self.health = JobHealth(engine.r, engine.keys)

    def _set(self, job_ref: str, state: str, reason: str) -> Job:
        job = self.store.set_state(self.store.get(job_ref).id, state, reason)
        self.record(job.id, state, reason)
        return job

    def record(self, job_id: str, state: str, reason: str = "") -> None:
        key = self.e.keys.job_history(job_id)
        entry = orjson.dumps({"at": time.time_ns(), "state": state, "reason": reason})
        pipe = self.e.r.pipeline(transaction=False)
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, HISTORY_KEEP - 1)
        pipe.execute()

    def history(self, job_id: str) -> list[dict[str, Any]]:
        raw = cast(list[bytes], self.e.r.lrange(self.e.keys.job_history(job_id), 0, -1))
        return [orjson.loads(x) for x in raw]

    def pause(self, job_ref: str) -> Job:
        return self._set(job_ref, "paused", "paused by request")

    def resume(self, job_ref: str) -> Job:
        job = self.store.get(job_ref)
        self.health.clear(job.id)
        resumed = self._set(job.id, "running", "resumed by request")
        self.e.kicker.delivers([job.id])
        return resumed

    def stop(self, job_ref: str) -> Job:
        return self._set(job_ref, "stopped", "stopped by request")

    def fail(self, job_id: str, reason: str) -> Job:
        return self._set(job_id, "failed", reason)

    def shown_state(self, job: Job, backfilling: bool, now: int | None = None) -> str:
        """The state a person sees: stored, unless running and sleeping or backfilling."""
        if job.state != "running":
            return job.state
        if self.health.get(job.id).sleeping(now if now is not None else time.time_ns()):
            return "sleeping"
        return "backfilling" if backfilling else "running"
