"""A user's profile: merged fields, event occurrences, and audience membership.

The whole profile is one compact blob (profile_codec.py) in the shard's ``users`` hash, so a drain reads a batch of
users with one HMGET and writes them back inside the shard's single commit.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workers.audiences.numbers import NO_CODES, AudienceCodes
from workers.pipeline.profile_codec import StoredTimes, decode, encode

MAX_OCCURRENCES = 512
"""Most recent occurrences kept per event name when the caller does not say (the drain keeps only
as many as the audiences' windows count: see Snapshot.occurrences_to_keep)."""


@dataclass(slots=True)
class Profile:
    """One user, as the evaluator and the drainer see it.

    Times are integer nanoseconds since the epoch. ``occurrences`` maps an event name to its
    ascending occurrence times (for ``timewindow``). ``membership`` maps an audience id to the time
    the user entered it; ``next_change`` maps an audience id to the next instant its answer can flip
    with no new data (the due index holds the minimum).
    """

    user_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    field_ts: dict[str, int] = field(default_factory=dict)
    created: int = 0
    modified: int = 0
    occurrences: dict[str, list[int]] = field(default_factory=dict)
    membership: dict[str, int] = field(default_factory=dict)
    next_change: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)
    """audience id -> the processing instant at which a membership was recorded, for the few
    whose enter instant is earlier (a time-driven flip applied late). The Existing Users
    backfill sends a membership only if it was recorded before the backfill started."""
    stored: StoredTimes | None = field(default=None, compare=False, repr=False)
    """A read profile's times in their stored form (profile_codec.py): an occurrence at the end of
    a list is added to it as stored, a compiled timewindow reads it as stored, a list is converted
    when asked for (``times``; all of them for ``occurrences``), the field times not ``created``
    are merged into as stored; writing back reuses what did not change."""

    @property
    def is_new(self) -> bool:
        return self.created == 0

    def merge(self, values: dict[str, Any], ts: int) -> set[str]:
        """Merge fields, latest event time winning per field; ``null`` removes a field.

        Returns the names whose value changed, so only audiences reading them are re-evaluated.
        A late event (older than the field's last write) never overwrites a newer value.
        """
        changed: set[str] = set()
        fields = self.fields
        stored = self.stored
        base: int | None = None
        if stored is not None and stored.later is not None:
            # A read profile's field times as stored: those not ``base``. Merged into as they
            # are, they need no converting, and are written back as they are.
            times, base = stored.later, stored.base
        else:
            times = self.field_ts
        for name, value in values.items():
            t = times.get(name)
            if t is None:
                t = base if base is not None and name in fields else 0
            if t > ts:
                continue
            times[name] = ts
            if value is None:
                if fields.pop(name, None) is not None:
                    changed.add(name)
            elif fields.get(name, _MISSING) != value:
                fields[name] = value
                changed.add(name)
        self._touch(ts)
        return changed

    def record_occurrence(self, event: str, ts: int, keep: int = MAX_OCCURRENCES) -> None:
        """Add one occurrence, keeping the ``keep`` most recent: timewindow(event, N, D) needs
        only the N most recent, whatever D is."""
        stored = self.stored
        if stored is None or stored.done:
            times = self.occurrences.setdefault(event, [])
        elif stored.append(event, ts, keep):  # onto its stored form, converting nothing
            self._touch(ts)
            return
        else:
            times = stored.times(event, True)  # type: ignore[assignment]
        if not times or ts >= times[-1]:
            times.append(ts)
        else:
            insort(times, ts)
        if len(times) > keep:
            del times[: len(times) - keep]
        self._touch(ts)

    def times(self, event: str) -> list[int] | None:
        """The event's occurrence times, ascending (None if it never occurred): a read profile
        converts only this list from its stored form, not every event's."""
        stored = self.stored
        if stored is None or stored.done:
            return self.occurrences.get(event)
        return stored.times(event)

    def _touch(self, ts: int) -> None:
        if self.created == 0 or ts < self.created:
            self.created = ts
        if ts > self.modified:
            self.modified = ts

    def recorded_at(self, audience: str) -> int:
        """When this profile's membership of ``audience`` was recorded (processing time)."""
        return self.recorded.get(audience, self.membership[audience])

    def due(self) -> int | None:
        """The earliest instant any audience answer can flip with no new data."""
        return min(self.next_change.values()) if self.next_change else None

    # -- storage (workers/pipeline/profile_codec.py) ---------------------------------------------
    def dumps(self, codes: AudienceCodes = NO_CODES) -> bytes:
        """The stored form; ``codes`` (the registry snapshot's) turns audience ids to numbers."""
        return encode(self, codes)

    @classmethod
    def loads(cls, user_id: str, blob: bytes | None, codes: AudienceCodes = NO_CODES) -> Profile:
        """Read either encoding; without the snapshot's ``codes`` audiences read as ``#n``."""
        if not blob:
            return cls(user_id)
        return decode(cls, user_id, blob, codes)

    if not TYPE_CHECKING:  # (so mypy still refuses attributes a Profile does not have)

        def __getattr__(self, name: str) -> Any:
            """A read profile's occurrences or field times, converted on first use."""
            if name == "occurrences":
                value = object.__getattribute__(self, "stored").occurrences()
            elif name == "field_ts":
                stored = object.__getattribute__(self, "stored")
                value = stored.field_ts(object.__getattribute__(self, "fields"))
            else:
                raise AttributeError(name)
            object.__setattr__(self, name, value)
            return value


_MISSING = object()
