"""The compiled view of audiences and jobs that drainers evaluate against.

Loading and compiling every audience costs milliseconds, so each process keeps one snapshot and
reloads it only when the registry version (bumped by every definition change) moves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from workers.audiences.numbers import NO_CODES, AudienceCodes, AudienceNumbering
from workers.audiences.store import AudienceStore
from workers.filterql import Filter, compile_set
from workers.jobs.store import Job, JobStore
from workers.keys import Keys
from workers.pipeline.profile import Profile
from workers.redisconn import Redis

ALWAYS_CHANGED = "_modified"


@dataclass(frozen=True, slots=True)
class LiveAudience:
    id: str
    slug: str
    filter: Filter


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    audiences: dict[str, LiveAudience]
    jobs: dict[str, Job]
    jobs_by_audience: dict[str, tuple[Job, ...]]
    by_field: dict[str, tuple[LiveAudience, ...]] = field(default_factory=dict)
    by_event: dict[str, tuple[LiveAudience, ...]] = field(default_factory=dict)
    needs: dict[str, int] = field(default_factory=dict)
    """Event name -> the most occurrences any audience's timewindow() counts."""
    slugs: dict[str, str] = field(default_factory=dict)
    """Audience id -> slug, for naming the audiences a message carries."""
    codes: AudienceCodes = NO_CODES
    """Audience numbers, both ways, for reading and writing profiles (every audience has one)."""
    first_reads: tuple[tuple[LiveAudience, frozenset[str] | None], ...] = ()
    """Each audience with what it reads when it is quiet: false for a profile holding none of
    the fields and events it reads, at any time (no INCLUDE, no time dependence, false for an
    empty profile); None for the others. See :meth:`first_targets`."""

    def occurrences_to_keep(self, event: str, floor: int) -> int:
        """Only as many as the largest window asking about this event can count (at least
        ``floor``, so an audience created later still finds some history)."""
        return max(floor, self.needs.get(event, 0))

    def affected(self, changed: Iterable[str], event: str | None) -> list[LiveAudience]:
        """Audiences whose answer can depend on what just changed; the rest cannot flip."""
        found: dict[str, LiveAudience] = {}
        for name in changed:
            for a in self.by_field.get(name, ()):
                found[a.id] = a
        if event is not None:
            for a in self.by_event.get(event, ()):
                found[a.id] = a
        return list(found.values())

    def first_targets(self, present: Iterable[str]) -> list[LiveAudience]:
        """The audiences a new profile holding only ``present`` (field and event names) can
        enter: a quiet one reading none of it answers as for an empty profile, false, since an
        audience's fields and events are complete (:meth:`affected` rests on that too)."""
        if not self.first_reads:
            return list(self.audiences.values())
        return [
            a for a, reads in self.first_reads if reads is None or not reads.isdisjoint(present)
        ]


def build_snapshot(r: Redis, keys: Keys, version: int) -> Snapshot:
    defs = AudienceStore(r, keys).all()
    compiled = compile_set({a.slug: a.filter for a in defs})
    audiences = {a.id: LiveAudience(a.id, a.slug, compiled[a.slug]) for a in defs}
    jobs = {j.id: j for j in JobStore(r, keys).all() if j.collecting}
    by_audience: dict[str, list[Job]] = defaultdict(list)
    for job in jobs.values():
        for aid in job.audiences:
            by_audience[aid].append(job)
    by_field: dict[str, list[LiveAudience]] = defaultdict(list)
    by_event: dict[str, list[LiveAudience]] = defaultdict(list)
    needs: dict[str, int] = {}
    for a in audiences.values():
        for name in a.filter.fields:
            by_field[name].append(a)
        for name in a.filter.events:
            by_event[name].append(a)
        for name, need in a.filter.needs.items():
            needs[name] = max(needs.get(name, 0), need)
    empty = Profile("")
    first_reads = tuple(
        (a, a.filter.fields | a.filter.events)
        if not a.filter.includes and not a.filter.time_dependent and not a.filter.matches(empty, 0)
        else (a, None)
        for a in audiences.values()
    )
    return Snapshot(
        version,
        audiences,
        jobs,
        {k: tuple(v) for k, v in by_audience.items()},
        {k: tuple(v) for k, v in by_field.items()},
        {k: tuple(v) for k, v in by_event.items()},
        needs,
        {a.id: a.slug for a in audiences.values()},
        AudienceNumbering(r, keys).ensure(audiences),
        first_reads,
    )


class RegistryCache:
    def __init__(self, r: Redis, keys: Keys) -> None:
        self._r = r
        self._keys = keys
        self._snapshot: Snapshot | None = None

    def get(self, version: int | None = None) -> Snapshot:
        """The snapshot for ``version`` (read from Redis when not given), rebuilt only on change."""
        if version is None:
            version = int(self._r.get(self._keys.registry_version) or 0)
        if self._snapshot is None or self._snapshot.version != version:
            self._snapshot = build_snapshot(self._r, self._keys, version)
        return self._snapshot
