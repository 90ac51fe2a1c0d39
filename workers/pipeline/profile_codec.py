"""How a profile is stored: compact MessagePack (version 1), reading the older JSON too.

All state lives in Redis memory, so bytes per profile are the bill. Version 1 is a MessagePack
array (ormsgpack: Rust, the fastest to pack and unpack here) whose first element is the version:

    [1, created, modified - created, fields, later field times, occurrences,
     membership audiences, membership times, next-change audiences, next-change times,
     (recorded audiences, recorded times, field times when not one per field)]  <- if present

- Audiences are 2-byte numbers from the registry (workers/audiences/numbers.py), not 32 hex;
  a table's audiences are one byte string.
- Field times: most fields are set by the first event, so only the fields whose time is not
  ``created`` are written, as (position among the fields, ns after ``created``).
- Occurrences: each list as [its base, then each time], in whole ms (event ``_ts`` carries
  ms): five bytes a time instead of nine. A list holding a finer time is [nil, times in ns].
- Membership, next-change and recorded times are processing instants in ns, written whole
  (messages carry their nanosecond digits).

Nothing is rounded: every profile reads back equal to what was written. A stored profile that
begins with ``{`` is the JSON of before (version 0) and is read as such; the next commit writes
it as version 1, so a store moves over as its users are drained. A profile MessagePack cannot
hold (nothing the ingest accepts) is written as JSON, which stays readable.

Speed: per-element time arithmetic in Python is what version 1 costs over orjson's C, so a
profile remembers its occurrence lists as read (``StoredTimes``) and writing back converts only
the lists that changed (an append converts one time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import ormsgpack

from workers.audiences.numbers import AudienceCodes

if TYPE_CHECKING:
    from workers.pipeline.profile import Profile

VERSION = 1
MS = 1_000_000
_JSON = ord("{")
_pack = ormsgpack.packb
_unpack = ormsgpack.unpackb


class StoredTimes:
    """A read profile's times in their stored form, turned into nanoseconds only when used.

    Backfill pages and readers of membership never look at occurrences or field times, so they
    never pay for converting them; and writing a profile back reuses the stored form of what was
    not changed: ``wire`` until the occurrences are used, then ``lists`` (event name -> (times as
    read, their stored form)); ``later`` until the field times are used.
    """

    __slots__ = ("base", "created", "later", "lists", "names", "wire")

    def __init__(
        self, created: int, names: list[str], later: list[int] | None, wire: dict[str, list[Any]]
    ) -> None:
        self.created = created
        self.base = created - created % MS
        self.names = names
        self.later = later
        self.wire: dict[str, list[Any]] | None = wire
        self.lists: dict[str, tuple[list[int], list[Any]]] = {}

    def occurrences(self) -> dict[str, list[int]]:
        base = self.base
        occurrences: dict[str, list[int]] = {}
        for name, wire in (self.wire or {}).items():
            if not wire or wire[0] is None:
                times = wire[1:]
            else:
                first = base + wire[0] * MS
                times = [first + t * MS for t in wire[1:]]
            occurrences[name] = times
            self.lists[name] = (times.copy(), wire)
        self.wire = None  # from now on the profile's own lists are the truth
        return occurrences

    def field_ts(self) -> dict[str, int]:
        created = self.created
        names = self.names
        ft = dict.fromkeys(names, created)
        later = self.later or ()
        for i in range(0, len(later), 2):
            ft[names[later[i]]] = created + later[i + 1]
        self.later = None  # from now on the profile's own field times are the truth
        return ft


def encode(p: Profile, codes: AudienceCodes) -> bytes:
    created = p.created
    base = created - created % MS
    fields = p.fields
    stored = p.stored
    occurrences: dict[str, list[Any]]
    if stored is not None and stored.base == base:
        if stored.wire is not None:
            occurrences = stored.wire  # never used since read: as it was
        else:
            occurrences = _occurrences_out(p.occurrences, stored.lists, base)
    else:
        occurrences = _occurrences_out(p.occurrences, {}, base)
    later: list[int] | None
    if (
        stored is not None
        and stored.later is not None
        and created == stored.created
        and list(fields) == stored.names
    ):
        later = stored.later  # never used since read: as it was
    else:
        later = _field_times_out(fields, p.field_ts, created)
    pack = codes.pack
    mem = p.membership
    nxt = p.next_change
    out: list[Any] = [
        VERSION,
        created,
        p.modified - created,
        fields,
        later,
        occurrences,
        pack(mem),
        list(mem.values()),
        pack(nxt),
        list(nxt.values()),
    ]
    rec = p.recorded
    if rec or later is None:
        out += (pack(rec), list(rec.values()), None if later is not None else p.field_ts)
    try:
        return _pack(out)
    except (ormsgpack.MsgpackEncodeError, TypeError):
        return legacy_encode(p)


def _occurrences_out(
    now: dict[str, list[int]], read: dict[str, tuple[list[int], list[Any]]], base: int
) -> dict[str, list[Any]]:
    occurrences: dict[str, list[Any]] = {}
    for name, times in now.items():
        was = read.get(name)
        if was is not None:
            old, wire = was
            if old == times:
                occurrences[name] = wire  # unchanged since read: its stored form as it was
                continue
            drop = len(old) + 1 - len(times)
            if drop >= 0 and old and wire[0] is not None and times[:-1] == old[drop:]:
                # One more at the end, the oldest dropped (the usual change): same list base.
                ms, rest = divmod(times[-1] - base - wire[0] * MS, MS)
                if not rest:
                    occurrences[name] = [wire[0], *wire[1 + drop :], ms]
                    continue
        occurrences[name] = _times_out(times, base)
    return occurrences


def _times_out(times: list[int], base: int) -> list[Any]:
    """[list base as ms after ``base``, then each time as ms after the list base]; or, when a
    time is not whole ms, [nil, the times in ns]. The list base is its first time when written
    whole, so its times stay small (5 bytes within 49 days of it) however old the profile is."""
    if not times:
        return times
    first = times[0]
    ms = [(t - first) // MS for t in times]
    # Floor division leaves a remainder >= 0 per time: they are all zero exactly when the sums
    # agree, so one pass tells that every time was whole ms.
    if first % MS or sum(times) - len(times) * first != MS * sum(ms):
        return [None, *times]
    return [(first - base) // MS, *ms]


def _field_times_out(fields: dict[str, Any], ft: dict[str, int], created: int) -> list[int] | None:
    """The fields whose time is not ``created``, as (position, ns after created); None when the
    field times are not one per field (a removed field): then they are written whole."""
    if len(ft) != len(fields):
        return None
    try:
        times = list(map(ft.__getitem__, fields))
    except KeyError:  # same count, other names: a removed field and an untimed one
        return None
    later: list[int] = []
    if times.count(created) != len(times):
        for i, t in enumerate(times):
            if t != created:
                later += (i, t - created)
    return later


def decode(cls: type[Profile], user_id: str, blob: bytes, codes: AudienceCodes) -> Profile:
    """The profile stored in ``blob`` (either version); occurrences and field times of version 1
    are filled in when first used (Profile.__getattr__)."""
    if blob[0] == _JSON:
        return legacy_decode(cls, user_id, blob)
    d = _unpack(blob)
    if d[0] != VERSION:
        raise ValueError(f"profile encoding version {d[0]!r} is newer than this code reads")
    created: int = d[1]
    fields: dict[str, Any] = d[3]
    ids = codes.unpack
    p = cls.__new__(cls)
    p.user_id = user_id
    p.fields = fields
    p.created = created
    p.modified = created + d[2]
    p.membership = dict(zip(ids(d[6]), d[7], strict=False))
    p.next_change = dict(zip(ids(d[8]), d[9], strict=False))
    later: list[int] | None = d[4]
    if len(d) > 10:
        p.recorded = dict(zip(ids(d[10]), d[11], strict=True))
        if later is None:
            p.field_ts = d[12]
    else:
        p.recorded = {}
    p.stored = StoredTimes(created, list(fields), later, d[5])
    return p


def legacy_encode(p: Profile) -> bytes:
    """Version 0: the JSON profiles were stored as before version 1."""
    return orjson.dumps(
        {
            "f": p.fields,
            "ft": p.field_ts,
            "c": p.created,
            "m": p.modified,
            "o": p.occurrences,
            "a": p.membership,
            "n": p.next_change,
            **({"r": p.recorded} if p.recorded else {}),
        }
    )


def legacy_decode(cls: type[Profile], user_id: str, blob: bytes) -> Profile:
    d = orjson.loads(blob)
    return cls(user_id, d["f"], d["ft"], d["c"], d["m"], d["o"], d["a"], d["n"], d.get("r", {}))
