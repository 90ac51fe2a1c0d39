"""Drain a shard: apply its pending entries to profiles, find who moved, commit it all at once.

One drainer per shard at a time (a lease), each batch fenced by the shard version, so per-user
order holds and a replayed batch is skipped. A batch is: read entries -> load their users ->
for each entry in order, replay time-driven flips up to now, apply the entry, evaluate the
audiences it can affect -> render one message per (job, user, instant) -> one atomic commit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError

from workers import faults
from workers.audiences.registry import ALWAYS_CHANGED, LiveAudience, Snapshot
from workers.engine import Engine
from workers.loop import LeasedLoop, StreamLength
from workers.metrics import Tallies
from workers.pipeline.commit import Committer, ShardCommit
from workers.pipeline.entries import DATA, REEVALUATE, Entry
from workers.pipeline.envelope import render
from workers.pipeline.membership import Transition, catch_up, evaluate, forget_unknown
from workers.pipeline.profile import Profile
from workers.pipeline.set_aside import FAILED, LIMIT, TIMED_OUT, Attempt, DrainAttempts
from workers.redisconn import as_bytes, next_stream_id, stream_rows
from workers.schedule.release import record_lateness
from workers.timefmt import NS_PER_MS, ns_to_ms_ceil

LEASE_MS = 5_000


@dataclass
class DrainReport:
    shard: int
    batches: int = 0
    entries: int = 0
    transitions: int = 0
    messages: int = 0
    conflicts: int = 0
    set_aside: int = 0
    more: bool = False


def _stop_reason(exc: BaseException) -> str:
    """Why a drain stopped, without the exception's text (it may quote an event)."""
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's, raised into the task
        return "timed out (the task's soft time limit)"
    return f"failed ({type(exc).__name__})"


def first_targets(profile: Profile, snapshot: Snapshot) -> list[LiveAudience]:
    """The audiences a new profile's first entry can put it in (a new user's first event
    otherwise evaluates every audience)."""
    return snapshot.first_targets(
        {*profile.fields, *profile.occurrences, "_created", ALWAYS_CHANGED}
    )


def _due_ms(profile: Profile) -> int | None:
    due = profile.due()
    return None if due is None else ns_to_ms_ceil(due)


class ShardDrainer:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._committer = Committer(engine.r)
        self.attempts = DrainAttempts(engine)
        self._working: Attempt | None = None
        """The attempt being worked (written down before its entries, cleared by the commit)."""
        self._retry = False
        """A failed attempt was counted: kick the shard again once the lease is let go."""
        self._ahead: list[Any] | None = None
        """The next batch's read, taken in the round trip after a commit (under the lease,
        used by the next step of the same drain only)."""

    def drain(self, shard: int, budget_s: float = 0.3) -> DrainReport:
        """Drain until the shard is empty or the time budget is spent (then ask for another run).

        The budget is short on purpose: a busy shard re-queues itself behind the other shards'
        drains and the deliveries, instead of holding a worker process while entries keep coming.
        """
        e = self.e
        report = DrainReport(shard)
        requeue = lambda: e.kicker.drains([shard])  # noqa: E731
        loop = LeasedLoop(
            e.r,
            e.keys.drain_lease(shard),
            LEASE_MS,
            e.keys.drain_kick(shard),
            requeue,
            read_ahead=lambda pipe: self._read_ahead(shard, pipe),
        )
        self._retry = False
        self._ahead = None
        try:
            report.more = loop.run(
                budget_s,
                prepare=lambda: shard,
                step=lambda _, __: self._step(shard, report),
                more=StreamLength(e.keys.events(shard)),
            )
        except Exception:
            if self._retry:  # after the loop let the lease go, so the new task can take it
                e.kicker.drains([shard])
            raise
        finally:
            self._ahead = None  # read under a lease now let go: never used by a later drain
        return report

    def _step(self, shard: int, report: DrainReport) -> bool:
        """One batch under the lease, its failures counted against the head entry."""
        try:
            return self._batch(shard, report)
        except RedisError:
            self._working = None
            self._forget_attempt(shard)  # the store failed, not the entry
            raise
        except Exception as exc:  # the entry's fault until proven otherwise: counted
            working, self._working = self._working, None
            if working is not None:
                self.attempts.stopped(shard, working, _stop_reason(exc))
                self._retry = True  # try again now: the entry alone, then set aside
            raise

    def _batch(self, shard: int, report: DrainReport) -> bool:
        """Apply one batch; False when there was nothing to apply."""
        e = self.e
        k = e.keys
        read, self._ahead = self._ahead, None
        if read is None:
            pipe = e.r.pipeline(transaction=False)
            self._queue_read(shard, pipe)
            read = pipe.execute()
        applied_raw, version_raw, raw_rows, attempt_raw = read
        applied = applied_raw.decode() if (applied_raw := as_bytes(applied_raw)) else ""
        rows = stream_rows(raw_rows)
        if not rows:
            return False
        head = rows[0][0].decode()
        last = Attempt.decode(attempt_raw)
        tries = last.count if last is not None and last.entry_id == head else 0
        if last is not None and tries >= e.cfg.max_attempts:
            return self._set_aside_head(shard, applied, rows[0][1][b"d"], last, report)
        if tries:
            rows = rows[:1]  # it failed before: this time the first entry alone
        snapshot = e.registry.get(int(version_raw or 0))
        now = e.clock.now_ns()
        entries: list[Entry] = []
        entry_ids: list[str] = []
        raw_sizes: list[int] = []  # each entry's stored bytes: a bound on what it adds
        for count, (row_id, fields) in enumerate(rows, start=1):
            raw = fields[b"d"]
            decoded = Entry.decode(raw)
            entries += decoded
            entry_ids += [row_id.decode()] * len(decoded)
            raw_sizes += [len(raw)] * len(decoded)
            if len(entries) >= e.cfg.drain_batch:  # pages expand to many users: cap the batch
                rows = rows[:count]
                break
        last_id = rows[-1][0].decode()
        commit = ShardCommit(k, shard, applied, last_id, next_stream_id(last_id))

        user_ids = list(dict.fromkeys(entry.user_id for entry in entries))
        # The attempt is written down in the round trip that reads the users, before any entry
        # is applied.
        self._working = Attempt(head, tries + 1)
        pipe = e.r.pipeline(transaction=False)
        pipe.hmget(k.users(shard), user_ids)
        self.attempts.begin(shard, self._working, pipe)
        blobs: list[bytes | None] = pipe.execute()[0]
        profiles = {
            uid: Profile.loads(uid, blob, snapshot.codes)
            for uid, blob in zip(user_ids, blobs, strict=True)
        }
        sizes = {uid: len(blob or b"") for uid, blob in zip(user_ids, blobs, strict=True)}
        faults.fire(e.cfg, e.r, "drain.stall")
        before = {uid: set(p.membership) for uid, p in profiles.items()}
        due_before = {uid: _due_ms(p) for uid, p in profiles.items()}
        released = {entry.user_id for entry in entries if entry.kind == REEVALUATE}
        for p in profiles.values():
            forget_unknown(p, snapshot)

        flips: list[int] = []
        tallies = Tallies()
        offset = now - time.time_ns()  # the test clock's offset; zero in production
        at = now - 1
        evaluations = 0
        for entry, entry_id, raw_size in zip(entries, entry_ids, raw_sizes, strict=True):
            # Each entry gets its own processing instant, strictly increasing, so an enter and
            # an exit applied in one batch keep distinct, ordered times.
            at = max(time.time_ns() + offset, at + 1)
            profile = profiles[entry.user_id]
            evaluated = 0
            pending_flips = profile.next_change
            if pending_flips and min(pending_flips.values()) <= at:  # else nothing to catch up
                steps, evaluated = catch_up(profile, snapshot, at)
                for step in steps:
                    flips.append(step.at)
                    self._emit(
                        commit,
                        snapshot,
                        profile,
                        step.changes,
                        step.at,
                        report,
                        tallies,
                        step.membership,
                    )
            refused = self._over_limits(profile, entry, raw_size, snapshot, sizes)
            if refused is not None:
                commit.set_aside.append((entry_id, refused, now // NS_PER_MS, entry.encode()))
                tallies.add("entries_set_aside", 1, LIMIT)
                report.set_aside += 1
                continue
            targets = self._apply(profile, entry, snapshot, e.cfg.occurrences_kept)
            changes = evaluate(profile, targets, at)
            evaluations += evaluated + len(targets)
            if changes:
                self._emit(commit, snapshot, profile, changes, at, report, tallies)
        tallies.add("evaluations", evaluations)

        for uid, profile in profiles.items():
            commit.users[uid] = profile.dumps(snapshot.codes)
            due = _due_ms(profile)
            # A released user left the due index; write its entry back even if unchanged (a
            # worker whose clock runs behind beat's may find nothing due yet).
            if due != due_before[uid] or uid in released:
                commit.due[uid] = (due_before[uid], due)
            after = set(profile.membership)
            for aid in after - before[uid]:
                commit.member_add[aid].append(uid)
            for aid in before[uid] - after:
                if aid in snapshot.audiences:
                    commit.member_rem[aid].append(uid)

        faults.fire(e.cfg, e.r, "drain.before_commit")
        committed_ok = self._committer.run(commit)
        self._working = None
        if not committed_ok:
            report.conflicts += 1
            return True  # someone else committed first; re-read from their version
        faults.fire(e.cfg, e.r, "drain.after_commit")
        tallies.add("profiles_updated", len(profiles))
        tallies.add("entries_drained", len(entries))
        tallies.add("drain_batches", 1)
        pipe = e.r.pipeline(transaction=False)
        if flips:
            committed = e.clock.now_ns()
            record_lateness(e, [(committed - at) // NS_PER_MS for at in flips], pipe)
            for flip in flips:
                tallies.lateness((committed - flip) // NS_PER_MS)
        tallies.flush(e, pipe)
        # The counters, the next batch's read and the kick flags of the jobs given messages:
        # one round trip (the read is the same as at the next step's start, a moment earlier,
        # under the same lease; the commit's fence guards it all the same).
        first = len(pipe)
        self._queue_read(shard, pipe)
        end = len(pipe)
        self._ahead = e.kicker.delivers_after(commit.outbox, pipe)[first:end]
        report.batches += 1
        report.entries += len(entries)
        return True

    def _queue_read(self, shard: int, pipe: Any) -> None:
        """A batch's read: the stream holds only unapplied entries (each commit trims what it
        applied), so the entries come in the same round trip as the version that fences the
        commit; if another drainer commits in between, the fence refuses this batch and it is
        read again."""
        e = self.e
        k = e.keys
        pipe.get(k.applied(shard))
        pipe.get(k.registry_version)
        pipe.xrange(k.events(shard), min="-", max="+", count=e.cfg.drain_batch)
        pipe.get(self.attempts.key(shard))

    def _read_ahead(self, shard: int, pipe: Any) -> Callable[[list[Any]], None]:
        """The first batch's read, in the round trip that takes the lease."""
        self._queue_read(shard, pipe)

        def use(results: list[Any]) -> None:
            self._ahead = results

        return use

    def _forget_attempt(self, shard: int) -> None:
        with contextlib.suppress(RedisError):  # still down: counted, at worst one time too many
            self.attempts.forget(shard)

    def _set_aside_head(
        self, shard: int, applied: str, payload: bytes, last: Attempt, report: DrainReport
    ) -> bool:
        """Move the shard past an entry whose drains kept failing, keeping it with the reason."""
        e = self.e
        why = last.why or "killed (the task's hard time limit, or its worker died)"
        kind = FAILED if why.startswith("failed") else TIMED_OUT
        reason = f"drained {last.count} times without committing; the last one {why}"
        commit = ShardCommit(e.keys, shard, applied, last.entry_id, next_stream_id(last.entry_id))
        commit.set_aside.append((last.entry_id, reason, e.clock.now_ns() // NS_PER_MS, payload))
        if self._committer.run(commit):
            tallies = Tallies()
            tallies.add("entries_set_aside", 1, kind)
            pipe = e.r.pipeline(transaction=False)
            tallies.flush(e, pipe)
            pipe.execute()
            report.set_aside += 1
        else:
            report.conflicts += 1
        return True

    def _over_limits(
        self,
        profile: Profile,
        entry: Entry,
        raw_size: int,
        snapshot: Snapshot,
        sizes: dict[str, int],
    ) -> str | None:
        """Why the entry cannot be applied to this profile (fields or bytes over the limits), or
        None; a cheap upper bound on the growth decides unless the profile is near its limit.

        ``raw_size`` is the entry's stored JSON, which holds its fields' JSON and its name: the
        bound takes it instead of encoding the fields again (once per drained event)."""
        if entry.kind == REEVALUATE or not entry.fields:
            return None
        cfg = self.e.cfg
        fields = entry.fields
        held = len(profile.fields)
        new = (
            [k for k, v in fields.items() if v is not None and k not in profile.fields]
            if held + len(fields) > cfg.max_profile_fields  # else cannot be over, whatever is new
            else None
        )
        if new and held + len(new) > cfg.max_profile_fields:
            more = f" and {len(new) - 1:,} more" if len(new) > 1 else ""
            return (
                f"field {new[0][:60]!r}{more} would make {len(profile.fields) + len(new):,} fields; "
                f"a profile holds at most {cfg.max_profile_fields:,} (AUDIENCEHUB_MAX_PROFILE_FIELDS)"
            )
        uid = profile.user_id
        # The stored JSON holds the fields' JSON and the name once: twice it, plus per field
        # and per entry overheads, bounds what applying the entry can add (an occurrence too).
        growth = 2 * raw_size + 24 * len(fields) + 64
        if entry.name:
            growth += len(entry.name) * 2
        if sizes[uid] + growth <= cfg.max_profile_bytes:
            sizes[uid] += growth
            return None
        # Near the limit: apply to a copy and measure.
        trial = Profile.loads(uid, profile.dumps(snapshot.codes), snapshot.codes)
        self._apply(trial, entry, snapshot, cfg.occurrences_kept)
        size = len(trial.dumps(snapshot.codes))
        if size > cfg.max_profile_bytes:
            biggest = max(fields, key=lambda k: len(orjson.dumps(fields[k])))
            return (
                f"the profile would be {size:,} bytes (largest field of the event: "
                f"{biggest[:60]!r}); the limit is {cfg.max_profile_bytes:,} "
                "(AUDIENCEHUB_MAX_PROFILE_BYTES)"
            )
        sizes[uid] = size
        return None

    @staticmethod
    def _apply(
        profile: Profile, entry: Entry, snapshot: Snapshot, occurrences_floor: int
    ) -> list[LiveAudience]:
        """Apply the entry's data; returns the audiences whose answer it can have changed."""
        if entry.kind == REEVALUATE:
            if entry.audiences:
                return [snapshot.audiences[a] for a in entry.audiences if a in snapshot.audiences]
            return list(snapshot.audiences.values())
        new = profile.is_new
        created = profile.created
        changed = profile.merge(entry.fields or {}, entry.ts)
        if entry.kind == DATA and entry.name:
            keep = snapshot.occurrences_to_keep(entry.name, occurrences_floor)
            profile.record_occurrence(entry.name, entry.ts, keep)
        changed.add(ALWAYS_CHANGED)
        if profile.created != created:
            changed.add("_created")
        if new:
            return first_targets(profile, snapshot)
        return snapshot.affected(changed, entry.name)

    @staticmethod
    def _emit(
        commit: ShardCommit,
        snapshot: Snapshot,
        profile: Profile,
        changes: list[Transition],
        at: int,
        report: DrainReport,
        tallies: Tallies,
        membership: dict[str, int] | None = None,
    ) -> None:
        """Queue one message per job whose audiences moved, holding all of them at once, beside
        the job's other audiences the user is in (``membership``: at ``at``)."""
        report.transitions += len(changes)
        per_job: dict[str, list[Transition]] = {}
        jobs_by_audience = snapshot.jobs_by_audience
        for t in changes:
            tallies.add("transitions", 1, t.audience, t.event)
            for job in jobs_by_audience.get(t.audience, ()):
                if t.event in job.events:
                    moved = per_job.get(job.id)
                    if moved is None:
                        per_job[job.id] = [t]
                    else:
                        moved.append(t)
        for job_id, moved in per_job.items():
            body, key = render(
                snapshot.jobs[job_id], profile, moved, at, snapshot.slugs, membership
            )
            commit.outbox[job_id].append((profile.user_id, key, body))
            report.messages += 1
