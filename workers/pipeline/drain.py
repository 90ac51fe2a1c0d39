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
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

from workers import faults
from workers.audiences.registry import ALWAYS_CHANGED, LiveAudience, Snapshot
from workers.engine import Engine
from workers.loop import LeasedGroupLoop
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


@dataclass(slots=True)
class _Part:
    """One shard's share of a batch: its entries, and the commit they make."""

    shard: int
    snapshot: Snapshot
    attempt: Attempt
    entries: list[Entry] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)
    raw_sizes: list[int] = field(default_factory=list)
    """Each entry's stored bytes: a bound on what it adds to its profile."""
    commit: ShardCommit = field(init=False)
    user_ids: list[str] = field(default_factory=list)
    flips: list[int] = field(default_factory=list)
    """Instants of time-driven flips applied (their lateness is recorded after the commit)."""
    tallies: Tallies = field(default_factory=Tallies)
    report: DrainReport = field(default_factory=lambda: DrainReport(-1))
    """What the part did, added to the task's report once it is committed."""
    alone: bool = False
    """Its head entry failed before: it is drained alone, in a batch of its own."""
    failed: bool = False


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
        self._retry = False
        """A failed attempt was counted: kick the group again once the leases are let go."""
        self._ahead: dict[int, list[Any]] = {}
        """Each shard's next batch's read, taken in the round trip after a commit (under the
        shard's lease, used by the next step of the same drain only)."""

    def drain(self, shard: int, budget_s: float = 0.3) -> DrainReport:
        """Drain ``shard``'s drain group (``workers/pipeline/drain_groups.py``) until its shards
        are empty or the time budget is spent (then ask for another run).

        The group's shards are drained together: each batch takes every shard that has entries,
        in shared round trips (one read, one load of the users, one pipeline of the shards'
        commit scripts, one for the counters and the next read), so a task's cost does not grow
        with the number of shards. The budget is short on purpose: a busy group re-queues itself
        behind the other groups' drains and the deliveries, instead of holding a worker process
        while entries keep coming.
        """
        e = self.e
        k = e.keys
        shards = e.drain_groups.members(shard)
        report = DrainReport(shards[0])
        requeue = lambda: e.kicker.drains([shards[0]])  # noqa: E731
        loop = LeasedGroupLoop(
            e.r,
            [k.drain_lease(s) for s in shards],
            [k.events(s) for s in shards],
            LEASE_MS,
            k.drain_kick(shards[0]),
            requeue,
            read_ahead=lambda i, pipe: self._read_ahead(shards[i], pipe),
        )
        self._retry = False
        self._ahead.clear()

        def step(held: list[int]) -> list[int]:
            left = set(self._step([shards[i] for i in held], report))
            return [i for i in held if shards[i] in left]

        try:
            report.more = loop.run(budget_s, step)
        except Exception:
            if self._retry:  # after the loop let the leases go, so the new task can take them
                e.kicker.drains([shards[0]])
            raise
        finally:
            self._ahead.clear()  # read under leases now let go: never used by a later drain
        return report

    def _step(self, shards: list[int], report: DrainReport) -> list[int]:
        """One batch of the ``shards`` that have entries (a shard whose head entry failed
        before takes that entry alone, first); returns the shards that had entries."""
        e = self.e
        reads = {s: self._ahead.pop(s) for s in shards if s in self._ahead}
        missing = [s for s in shards if s not in reads]
        if missing:
            pipe = e.r.pipeline(transaction=False)
            for s in missing:
                self._queue_read(s, pipe)
            got = pipe.execute()
            width = len(got) // len(missing)
            for j, s in enumerate(missing):
                reads[s] = got[j * width : (j + 1) * width]
        worked: list[int] = []
        together: list[_Part] = []
        alone: list[_Part] = []
        for s in shards:
            part = self._part(s, reads[s], report)
            if part is None:
                continue
            worked.append(s)
            if isinstance(part, _Part):
                (alone if part.alone else together).append(part)
        if len(together) > 1:
            for part in together:
                part.attempt = Attempt(part.attempt.entry_id, 0, shared=True)
        failure: Exception | None = None
        for parts in [[part] for part in alone] + ([together] if together else []):
            try:
                self._batch(parts, report)
            except RedisError:
                raise
            except Exception as exc:  # counted against its entry: the other batches go on
                failure = failure or exc
        if failure is not None:
            raise failure
        return worked

    def _part(self, shard: int, read: list[Any], report: DrainReport) -> _Part | bool | None:
        """What ``shard``'s read holds for the next batch: None when nothing, True when its
        head entry was set aside instead (the shard has more to look at), else its part."""
        e = self.e
        applied_raw, version_raw, raw_rows, attempt_raw = read
        applied = applied_raw.decode() if (applied_raw := as_bytes(applied_raw)) else ""
        rows = stream_rows(raw_rows)
        if not rows:
            return None
        head = rows[0][0].decode()
        last = Attempt.decode(attempt_raw)
        tries = last.count if last is not None and last.entry_id == head else 0
        if last is not None and tries >= e.cfg.max_attempts:
            return self._set_aside_head(shard, applied, rows[0][1][b"d"], last, report)
        part = _Part(shard, e.registry.get(int(version_raw or 0)), Attempt(head, tries + 1))
        if last is not None and last.entry_id == head:
            rows = rows[:1]  # it failed before: this time the first entry alone
            part.alone = True
        for count, (row_id, fields) in enumerate(rows, start=1):
            raw = fields[b"d"]
            decoded = Entry.decode(raw)
            part.entries += decoded
            part.entry_ids += [row_id.decode()] * len(decoded)
            part.raw_sizes += [len(raw)] * len(decoded)
            if len(part.entries) >= e.cfg.drain_batch:  # pages expand to many users: cap it
                rows = rows[:count]
                break
        last_id = rows[-1][0].decode()
        part.commit = ShardCommit(e.keys, shard, applied, last_id, next_stream_id(last_id))
        return part

    def _batch(self, parts: list[_Part], report: DrainReport) -> None:
        """Apply one batch of each part, then commit each part's shard, all in shared round
        trips. A part that fails is not committed and is counted against its head entry (then
        raised, once the others are committed); a store that fails counts against nobody."""
        e = self.e
        k = e.keys
        pipe = e.r.pipeline(transaction=False)
        for part in parts:
            # The attempt is written down in the round trip that reads the users, before any
            # entry is applied.
            part.user_ids = list(dict.fromkeys(entry.user_id for entry in part.entries))
            pipe.hmget(k.users(part.shard), part.user_ids)
            self.attempts.begin(part.shard, part.attempt, pipe)
        try:
            loaded = pipe.execute()
            faults.fire(e.cfg, e.r, "drain.stall")
            failure: Exception | None = None
            for part, blobs in zip(parts, loaded[::2], strict=True):
                try:
                    self._apply_part(part, blobs)
                except RedisError:
                    raise
                except Exception as exc:  # the entry's fault until proven otherwise: counted
                    self.attempts.stopped(part.shard, part.attempt, _stop_reason(exc))
                    self._retry = True  # try again now: the entry alone, then set aside
                    part.failed = True
                    failure = failure or exc
            ready = [part for part in parts if not part.failed]
            faults.fire(e.cfg, e.r, "drain.before_commit")
            committed_ok = self._committer.run_all([part.commit for part in ready])
        except RedisError:
            with contextlib.suppress(RedisError):  # still down: at worst one count too many
                self.attempts.forget([part.shard for part in parts])
            raise
        except Exception as exc:  # outside any one part's entries: whose it was is unknown
            for part in parts:
                if not part.failed:
                    with contextlib.suppress(RedisError):
                        self.attempts.stopped(part.shard, part.attempt, _stop_reason(exc))
            self._retry = True
            raise
        faults.fire(e.cfg, e.r, "drain.after_commit")
        committed = [part for part, ok in zip(ready, committed_ok, strict=True) if ok]
        report.conflicts += len(ready) - len(committed)  # another committed first: read again
        if committed:
            self._after_commit(committed, report)
        if failure is not None:
            raise failure

    def _apply_part(self, part: _Part, blobs: list[bytes | None]) -> None:
        """Apply a part's entries to its users' profiles in order, and fill its commit."""
        e = self.e
        snapshot, commit = part.snapshot, part.commit
        profiles = {
            uid: Profile.loads(uid, blob, snapshot.codes)
            for uid, blob in zip(part.user_ids, blobs, strict=True)
        }
        sizes = {uid: len(blob or b"") for uid, blob in zip(part.user_ids, blobs, strict=True)}
        before = {uid: set(p.membership) for uid, p in profiles.items()}
        due_before = {uid: _due_ms(p) for uid, p in profiles.items()}
        released = {entry.user_id for entry in part.entries if entry.kind == REEVALUATE}
        for p in profiles.values():
            forget_unknown(p, snapshot)

        now = e.clock.now_ns()
        flips, tallies, report = part.flips, part.tallies, part.report
        offset = now - time.time_ns()  # the test clock's offset; zero in production
        at = now - 1
        evaluations = 0
        for entry, entry_id, raw_size in zip(
            part.entries, part.entry_ids, part.raw_sizes, strict=True
        ):
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

    def _after_commit(self, committed: list[_Part], report: DrainReport) -> None:
        """The committed parts' counters, each shard's next read and the kick flags of the jobs
        given messages: one round trip (each read is the same as at the next step's start, a
        moment earlier, under the same lease; the commit's fence guards it all the same)."""
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        committed_at = e.clock.now_ns()
        tallies = Tallies()
        flips: list[int] = []
        jobs: set[str] = set()
        for part in committed:
            tallies.merge(part.tallies)
            tallies.add("profiles_updated", len(part.user_ids))
            tallies.add("entries_drained", len(part.entries))
            tallies.add("drain_batches", 1)
            flips += part.flips
            jobs.update(part.commit.outbox)
            report.batches += 1
            report.entries += len(part.entries)
            report.transitions += part.report.transitions
            report.messages += part.report.messages
            report.set_aside += part.report.set_aside
        if flips:
            record_lateness(e, [(committed_at - at) // NS_PER_MS for at in flips], pipe)
            for flip in flips:
                tallies.lateness((committed_at - flip) // NS_PER_MS)
        tallies.flush(e, pipe)
        first = len(pipe)
        for part in committed:
            self._queue_read(part.shard, pipe)
        end = len(pipe)
        results = e.kicker.delivers_after(jobs, pipe)[first:end]
        width = (end - first) // len(committed)
        for j, part in enumerate(committed):
            self._ahead[part.shard] = results[j * width : (j + 1) * width]

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
            self._ahead[shard] = results

        return use

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
