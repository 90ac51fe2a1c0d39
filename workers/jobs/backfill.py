"""Existing Users: write every member of a job's audiences as of when it started, as ``enter``.

The backfill and the live triggers split the memberships by when they were recorded: a membership
recorded (by a drain) before the backfill started is the backfill's to send, one recorded later was
sent live. ``started`` is the engine's clock read while no drain batch runs on any shard, right
after the job (or the audience added to it) became visible to drains: every batch that could not
see the job had committed before, and every batch that can see it starts after (see
:func:`drains_paused`). So each member gets its first enter exactly once, from one side or the
other, even while users enter live during the backfill.

Pages walk each shard's member indexes in user-id order after a cursor kept in the shard's slot.
A page is committed by one script fenced by the shard version, exactly like a drain: the members
it read are the members at that version, and if a drain committed in between (say, an exit) the
page is redone. So a user who exits during a backfill always gets the ``exit`` after any
backfilled ``enter``, never a stale ``enter`` after it. A crashed page is redone, never skipped.

Flow control: a page is written only while the job's outbox for that shard holds fewer than
``BACKLOG_LIMIT`` messages, so live triggers never queue behind more than that many backfilled
ones, and nothing is held in memory beyond one page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import cast

import orjson

from workers.audiences.registry import Snapshot
from workers.audiences.registry_store import Conflict
from workers.delivery.outbox import RECORD_FIELDS, Outbox, packed_values
from workers.engine import Engine
from workers.jobs.control import JobControl
from workers.jobs.store import Job
from workers.lease import Lease
from workers.loop import LeasedLoop
from workers.lua import script
from workers.pipeline.envelope import EnterRenderer
from workers.pipeline.member_index import MemberIndex
from workers.pipeline.profile import Profile
from workers.pipeline.profile_codec import decode_members

log = logging.getLogger("audiencehub.backfill")
PAGE = 1000
BACKLOG_LIMIT = 20_000
DONE = b"done"
LEASE_MS = 10_000

PAUSE_WAIT_S = 15.0
"""How long :func:`drains_paused` waits for the running drain batches to finish (a batch holds
its shard's lease for at most a few seconds)."""


@contextmanager
def drains_paused(engine: Engine) -> Iterator[None]:
    """Hold every shard's drain lease: no drain batch runs inside, none straddles the inside.

    Drains that find a lease taken return and leave their kick; every shard is kicked again after.
    """
    e = engine
    held: list[Lease] = []
    deadline = time.monotonic() + PAUSE_WAIT_S
    try:
        for shard in range(e.cfg.shards):
            lease = Lease(e.r, e.keys.drain_lease(shard), int(PAUSE_WAIT_S * 1000) + 5_000)
            while not lease.acquire():
                if time.monotonic() > deadline:
                    raise Conflict(
                        f"shard {shard} stayed busy draining for {PAUSE_WAIT_S:.0f}s; try again "
                        "(no change was made)"
                    )
                time.sleep(0.005)
            held.append(lease)
        yield
    finally:
        for lease in held:
            lease.release()
        e.kicker.drains(range(e.cfg.shards))


@dataclass
class BackfillState:
    job: str
    audiences: list[str]
    started: int
    """Engine clock (ns): memberships recorded before this are the backfill's to send."""
    total: int  # memberships (user, audience) in the selected audiences when it started
    finished_at: int = 0


def _state(raw: object) -> BackfillState | None:
    return BackfillState(**orjson.loads(cast(bytes, raw))) if raw else None


@dataclass
class PageReport:
    written: int = 0
    done: bool = False
    conflict: bool = False
    throttled: bool = False


class Backfills:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._commit = script(engine.r, "backfill_page")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(
        self, job: Job, audiences: list[str] | None = None, started: int | None = None
    ) -> BackfillState:
        """Begin (or restart) a backfill of ``audiences`` (default: all of the job's).

        ``started``: the engine's clock read inside :func:`drains_paused`, right after the job
        (or its new audience) was saved; without it, the clock now (then a user who enters live
        while the job is being set up may get a second enter).
        """
        e = self.e
        chosen = audiences or list(job.audiences)
        if started is None:
            started = e.clock.now_ns()
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            for aid in chosen:
                MemberIndex(e.keys, shard, aid).count(pipe)
        state = BackfillState(job.id, chosen, started, int(sum(pipe.execute())))
        pipe = e.r.pipeline(transaction=False)  # cursors live in every shard's cluster slot
        for shard in range(e.cfg.shards):
            pipe.delete(e.keys.backfill_cursor(shard, job.id))
        pipe.set(e.keys.job_backfill(job.id), orjson.dumps(asdict(state)))
        pipe.execute()
        e.kicker.backfills((job.id, shard) for shard in range(e.cfg.shards))
        return state

    def get(self, job_id: str) -> BackfillState | None:
        return _state(self.e.r.get(self.e.keys.job_backfill(job_id)))

    def active(self, job_id: str) -> bool:
        state = self.get(job_id)
        return state is not None and not state.finished_at

    def progress(self, job_id: str) -> tuple[int, int]:
        """(memberships scanned, memberships to scan) for the current or last backfill.

        Counted in memberships, not users, because a user in two selected audiences is one
        message but two index entries; this way the bar moves evenly and ends at 100%.
        """
        state = self.get(job_id)
        if state is None:
            return 0, 0
        raw = self.e.r.hget(self.e.keys.job_stats(job_id), "backfill_scanned")
        scanned = int(cast(bytes, raw)) if raw else 0
        return (scanned, scanned) if state.finished_at else (scanned, max(state.total, scanned))

    def advance(self, snapshot: Snapshot) -> int:
        """Kick the next pages of every running job's backfill; mark finished ones. By beat."""
        e = self.e
        kicks: list[tuple[str, int]] = []
        for job in snapshot.jobs.values():
            if job.state != "running":
                continue
            state = self.get(job.id)
            if state is None or state.finished_at:
                continue
            pipe = e.r.pipeline(transaction=False)
            for shard in range(e.cfg.shards):
                pipe.get(e.keys.backfill_cursor(shard, job.id))
                Outbox(e.keys, shard, job.id).length(pipe)
            answers = pipe.execute()
            cursors, backlogs = answers[0::2], answers[1::2]
            if all(c == DONE for c in cursors):
                state.finished_at = e.clock.now_ns()
                e.r.set(e.keys.job_backfill(job.id), orjson.dumps(asdict(state)))
                JobControl(e).record(job.id, "running", "existing users backfill finished")
                log.info("backfill finished", extra={"job": job.id})
                continue
            for shard, (cursor, backlog) in enumerate(zip(cursors, backlogs, strict=True)):
                if cursor != DONE and backlog < BACKLOG_LIMIT:
                    kicks.append((job.id, shard))
        return e.kicker.backfills(kicks)

    # -- pages --------------------------------------------------------------------------------
    def run(self, job_id: str, shard: int, budget_s: float = 5.0) -> PageReport:
        """Write pages for one (job, shard) until done, throttled or out of time (then ask for
        another run; a throttled backfill waits for beat's :meth:`advance`)."""
        e = self.e
        total = PageReport()

        def step(_: str, __: Lease) -> bool:
            report = self.page(job_id, shard)
            total.written += report.written
            if report.written:
                e.kicker.delivers([job_id])
            if report.done or report.throttled:
                total.done, total.throttled = report.done, report.throttled
                return False
            return True

        requeue = lambda: e.kicker.backfills([(job_id, shard)])  # noqa: E731
        kick = e.keys.backfill_kick(shard, job_id)
        loop = LeasedLoop(e.r, e.keys.backfill_lease(shard, job_id), LEASE_MS, kick, requeue)
        loop.run(budget_s, lambda: job_id, step, lambda: not (total.done or total.throttled))
        return total

    def page(self, job_id: str, shard: int) -> PageReport:
        e = self.e
        k = e.keys
        pipe = e.r.pipeline(transaction=False)  # what a page starts from, in one round trip
        pipe.get(k.registry_version)
        pipe.get(k.job_backfill(job_id))
        pipe.get(k.applied(shard))
        pipe.get(k.backfill_cursor(shard, job_id))
        Outbox(k, shard, job_id).length(pipe)
        registry_version, raw_state, *first = pipe.execute()
        snapshot = e.registry.get(int(registry_version or 0))
        job = snapshot.jobs.get(job_id)
        state = _state(raw_state)
        if job is None or state is None or state.finished_at or job.state != "running":
            return PageReport(done=True)
        audiences = [a for a in state.audiences if a in snapshot.audiences]
        version = first[0].decode() if first[0] else ""
        cursor = cast(bytes | None, first[1])
        if cursor == DONE:
            return PageReport(done=True)
        if first[2] >= BACKLOG_LIMIT:
            return PageReport(throttled=True)
        after = cursor.decode()[2:] if cursor else None
        pipe = e.r.pipeline(transaction=False)
        for aid in audiences:
            MemberIndex(k, shard, aid).page_after(pipe, after, PAGE)
        lists = [[u.decode() for u in found] for found in pipe.execute()]
        full = [found[-1] for found in lists if len(found) == PAGE]
        cutoff = min(full) if full else None
        covered = [[u for u in found if cutoff is None or u <= cutoff] for found in lists]
        users = sorted({u for found in covered for u in found})
        if not users:
            ok = self._commit(keys=self._keys(shard, job_id), args=[version, DONE, *RECORD_FIELDS])
            return PageReport(done=bool(ok), conflict=not ok)
        blobs = cast(list[bytes | None], e.r.hmget(k.users(shard), users))
        wanted = [aid for aid in job.audiences if aid in audiences]
        # One renderer for the page: every message of it shares its instant.
        renderer = EnterRenderer(
            job, e.clock.now_ns(), snapshot.slugs, {a: snapshot.audiences[a].slug for a in wanted}
        )
        render, codes, started = renderer.render, snapshot.codes, state.started
        values: list[bytes] = []  # an OutboxRecord's values per message, in RECORD_FIELDS order
        for uid, blob in zip(users, blobs, strict=True):
            # Only what a message needs: no next changes, occurrences or field times.
            profile = decode_members(Profile, uid, blob, codes) if blob else Profile(uid)
            membership, recorded = profile.membership, profile.recorded
            moved = [  # only what was recorded before the backfill started: the rest went live
                aid
                for aid in wanted
                if aid in membership and recorded.get(aid, membership[aid]) < started
            ]
            if moved:
                body, key = render(profile, moved)
                values += (uid.encode(), key.encode(), body)
        written = len(values) // 3
        args = [version, "u:" + users[-1], *RECORD_FIELDS, *packed_values(values)]
        if not self._commit(keys=self._keys(shard, job_id), args=args):
            return PageReport(conflict=True)  # a drain committed meanwhile: redo from its version
        pipe = e.r.pipeline(transaction=False)
        pipe.hincrby(k.job_stats(job_id), "backfilled", written)
        pipe.hincrby(e.keys.metrics, f"backfilled|{job_id}", written)
        pipe.hincrby(k.job_stats(job_id), "backfill_scanned", sum(len(c) for c in covered))
        pipe.execute()
        return PageReport(written=written)

    def _keys(self, shard: int, job_id: str) -> list[str]:
        k = self.e.keys
        return [k.applied(shard), k.backfill_cursor(shard, job_id), Outbox(k, shard, job_id).key]
