"""Re-checking every user against audiences: now, once later, or on a cron schedule.

A run walks each shard's users with HSCAN and appends pages of re-evaluation requests to the
shard's stream, so the shard's drainer stays the only writer of every user and a run over a
million users costs a few thousand stream entries, never a task per user. A page written twice
after a crash re-checks those users twice, which changes nothing (evaluation is idempotent).

Keys: ``p:reeval:runs`` (hash run id -> JSON) and ``p:reeval:schedules`` (hash id -> JSON).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import cast

import orjson
from croniter import croniter

from workers.audiences.registry_store import Conflict, new_id
from workers.engine import Engine
from workers.pipeline.entries import encode_page
from workers.timefmt import NS_PER_S

PAGE_USERS = 500
MAX_PAGES_IN_FLIGHT = 4
"""Per shard and run: pages queued but not yet drained. Keeps live events from waiting behind a
million re-checks, since both share the shard's stream."""


def _id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Run:
    """One re-check of all users. ``cursors`` are HSCAN cursors per shard (-1: scan finished);
    ``pending`` lists, per shard, the pages queued but not yet drained as [stream id, users]."""

    id: str
    audiences: list[str]
    requested: int
    total: int
    cursors: dict[str, int] = field(default_factory=dict)
    pending: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    checked: int = 0
    finished_at: int = 0
    reason: str = ""

    @property
    def scanning(self) -> bool:
        return any(c != -1 for c in self.cursors.values())


@dataclass
class Schedule:
    id: str
    audiences: list[str]
    next_at: int
    cron: str = ""


KEEP_FINISHED_S = 3600


class Reevaluations:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._runs = engine.keys.reeval_runs
        self._schedules = engine.keys.reeval_schedules

    # -- runs ----------------------------------------------------------------------------------
    def start(self, audiences: list[str], reason: str = "") -> Run:
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            pipe.hlen(e.keys.users(shard))
        run = Run(
            new_id(),
            audiences,
            time.time_ns(),
            sum(pipe.execute()),
            cursors={str(s): 0 for s in range(e.cfg.shards)},
            reason=reason,
        )
        self._save(run)
        return run

    def get(self, run_id: str) -> Run | None:
        raw = self.e.r.hget(self._runs, run_id)
        return _load_run(cast(bytes, raw)) if raw else None

    def runs(self) -> list[Run]:
        raw = cast(dict[bytes, bytes], self.e.r.hgetall(self._runs))
        return sorted((_load_run(v) for v in raw.values()), key=lambda r: r.requested)

    def _save(self, run: Run) -> None:
        self.e.r.hset(self._runs, run.id, orjson.dumps(asdict(run)))

    def progress(self, run: Run) -> tuple[int, int]:
        """(users re-checked so far, users to check); equal when the run is done."""
        applied = self._applied_versions()
        drained = sum(
            n
            for s, pages in run.pending.items()
            for i, n in pages
            if _id_tuple(i) <= applied[int(s)]
        )
        checked = run.checked + drained
        if run.finished_at:
            return checked, checked
        return checked, max(run.total, checked + 1)

    def _applied_versions(self) -> list[tuple[int, int]]:
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            pipe.get(e.keys.applied(shard))
        return [_id_tuple(v.decode()) if v else (0, 0) for v in pipe.execute()]

    def advance(self) -> int:
        """Queue the next pages of every unfinished run; returns pages queued. Run by beat.

        Two beats running this at once may queue a page twice: harmless, see the module doc.
        """
        runs = self.runs()
        if not runs:
            return 0
        queued = 0
        applied = self._applied_versions()
        now = time.time_ns()
        for run in runs:
            if run.finished_at:
                if now - run.finished_at > KEEP_FINISHED_S * NS_PER_S:
                    self.e.r.hdel(self._runs, run.id)
                continue
            queued += self._advance_run(run, applied)
        return queued

    def _advance_run(self, run: Run, applied: list[tuple[int, int]]) -> int:
        e = self.e
        touched: list[int] = []
        for shard_key, cursor in run.cursors.items():
            shard = int(shard_key)
            pages = run.pending.get(shard_key, [])
            waiting = [(i, n) for i, n in pages if _id_tuple(i) > applied[shard]]
            run.checked += sum(n for _, n in pages) - sum(n for _, n in waiting)
            while cursor != -1 and len(waiting) < MAX_PAGES_IN_FLIGHT:
                next_cursor, found = cast(
                    tuple[int, dict[bytes, bytes]],
                    e.r.hscan(e.keys.users(shard), cursor, count=PAGE_USERS),
                )
                users = [u.decode() for u in found]
                if users:
                    page = encode_page(users, run.audiences)
                    entry_id = cast(bytes, e.r.xadd(e.keys.events(shard), {"d": page}))
                    waiting.append((entry_id.decode(), len(users)))
                    touched.append(shard)
                cursor = -1 if next_cursor == 0 else next_cursor
            run.pending[shard_key] = waiting
            run.cursors[shard_key] = cursor
        if not run.scanning and not any(run.pending.values()):
            run.finished_at = time.time_ns()
        self._save(run)
        e.kicker.drains(touched)
        return len(touched)

    # -- schedules ----------------------------------------------------------------------------
    def schedule(self, audiences: list[str], at: int | None = None, cron: str = "") -> Schedule:
        if cron:
            if not croniter.is_valid(cron):
                raise Conflict(f"--every {cron!r} is not a cron expression like '0 3 * * *'")
            at = self._next_cron(cron, self.e.clock.now_ns())
        if at is None:
            raise Conflict("give a time (--at) or a cron expression (--every)")
        item = Schedule(new_id(), audiences, at, cron)
        self.e.r.hset(self._schedules, item.id, orjson.dumps(asdict(item)))
        return item

    def schedules(self) -> list[Schedule]:
        raw = cast(dict[bytes, bytes], self.e.r.hgetall(self._schedules))
        return sorted((Schedule(**orjson.loads(v)) for v in raw.values()), key=lambda s: s.next_at)

    def unschedule(self, schedule_id: str) -> bool:
        return bool(self.e.r.hdel(self._schedules, schedule_id))

    def start_due(self) -> list[Run]:
        """Start a run for every schedule whose time has come. A one-off schedule is claimed by
        HDEL, so two beats cannot both start it; a cron schedule just moves to its next time."""
        now = self.e.clock.now_ns()
        started = []
        for item in self.schedules():
            if item.next_at > now:
                continue
            if item.cron:
                item.next_at = self._next_cron(item.cron, now)
                self.e.r.hset(self._schedules, item.id, orjson.dumps(asdict(item)))
            elif not self.e.r.hdel(self._schedules, item.id):
                continue  # another beat took it
            started.append(self.start(item.audiences, reason=f"schedule {item.id}"))
        return started

    @staticmethod
    def _next_cron(cron: str, now_ns: int) -> int:
        base = datetime.fromtimestamp(now_ns / NS_PER_S, UTC)
        nxt: datetime = croniter(cron, base).get_next(datetime)
        return int(nxt.timestamp()) * NS_PER_S


def _load_run(raw: bytes) -> Run:
    run = Run(**orjson.loads(raw))
    run.pending = {s: [(i, n) for i, n in pages] for s, pages in run.pending.items()}
    return run
