"""How a profile is stored: compact MessagePack (version 2), reading versions 1 and 0 (JSON) too.

All state lives in Redis memory, so bytes per profile are the bill; and a drain reads and writes
the profile of every user an event touches, so the codec's CPU is paid per event. Version 2 is a
MessagePack array (ormsgpack: Rust, the fastest to pack and unpack here) whose first element is
the version:

    [2, created, modified - created, fields, field times, occurrences,
     membership audiences, membership times, next-change audiences, next-change times,
     (recorded audiences, recorded times, field times when some field has none)]  <- if present

- Audiences are numbers from the registry (workers/audiences/numbers.py), not 32 hex: one byte
  string per table, a byte an audience while every number is below 256, else two.
- Field times: most fields are set by the first event, so only the fields whose time is not
  ``created`` (and the times of fields a null removed) are written, as a map of name -> ns;
  when most fields have a time of their own (a large profile), one time per field in the
  fields' order instead (the names would cost more than the times).
- Occurrences: each list as [its base, then each time], in whole ms (event ``_ts`` carries ms):
  five bytes a time instead of nine. The base is the list's first time when written, in ms
  after ``created`` (floored to the ms), so its times stay small however old the profile is. A
  list holding a finer time is [nil, times in ns].
- ``fields["user_id"]`` is the user's id (the ingest sets it on every event), which the users
  hash already holds as the key: it is written as nil and read back as the id.
- Membership, next-change and recorded times are processing instants in ns, written whole
  (messages carry their nanosecond digits).

Nothing is rounded: every profile reads back equal to what was written. Version 1 differed in
the field times (positions among the fields, ns after ``created``) and wrote ``user_id`` and
audience numbers (2 bytes) whole; version 0 is the JSON of before (a blob beginning with ``{``).
Both are still read, and the next commit writes a profile as version 2, so a store moves over as
its users are drained (tests/test_drain.py drains a store holding all three). A profile
MessagePack cannot hold (nothing the ingest accepts), or with a nil ``user_id`` field, is
written as JSON, which stays readable.

Speed: per-time Python arithmetic (ms back to ns) and per-field work are what MessagePack costs
over orjson's C, so a read profile converts nothing it does not have to. Its occurrence lists
stay in their stored form (``StoredTimes``): an occurrence at the end of a list (a whole ms, no
earlier than the last: the usual one) is appended to it as stored (StoredTimes.append), and a
compiled timewindow reads a list's count and its n-th most recent time from it
(StoredTimes.nth_last), so a drain converts no list at all. A list is converted when something
asks for it whole (Profile.times: an earlier occurrence, the FilterQL walker, explain; all of
them for ``occurrences``), and writing back reuses the stored form of every list not changed
since (a list that gained one time at its end converts that one time). Its field times stay a
map of the few not ``created``, which Profile.merge updates as it is and which is written back
as it is.

Realistic profile, CPU per profile, best of 15 on 2 shared cores (``bench/_codec_versions.py
--old-tree <version 1 checkout>``, all three in one process): read and write back 6.5 µs (JSON
6.9, version 1 7.2); read, apply one event, write back 8.5 µs (JSON 8.3, version 1 16.1). In
instructions (callgrind): 0.91x and 0.95x JSON's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import ormsgpack

from workers.audiences.numbers import AudienceCodes

if TYPE_CHECKING:
    from workers.pipeline.profile import Profile

VERSION = 2
MS = 1_000_000
USER_ID = "user_id"
_JSON = ord("{")
_pack = ormsgpack.packb
_unpack = ormsgpack.unpackb


class StoredTimes:
    """A read profile's times in their stored form, turned into full ones only when used.

    Occurrences: ``wire`` is every list as read; ``live`` the lists handed out since, each with a
    copy of it as converted (None for a new list): the profile's owner may change them in place,
    and writing back tells an unchanged list (its stored form as it was) or one grown at its end
    from the copy. Once the whole ``occurrences`` dict is asked for, ``done`` is set and it is
    the truth. Field times: ``later`` holds the times of the fields whose time is not ``base``
    (the profile's ``created`` when read), and the profile merges into it as it is
    (Profile.merge), until ``field_ts`` is asked for (then None).
    """

    __slots__ = ("base", "done", "later", "live", "wire")

    def __init__(
        self, created: int, wire: dict[str, list[Any]], later: dict[str, int] | None
    ) -> None:
        self.base = created
        self.wire = wire
        self.later = later
        self.live: dict[str, tuple[list[int], list[int] | None]] = {}
        self.done = False

    def field_ts(self, fields: dict[str, Any]) -> dict[str, int]:
        """Every field time: ``base`` for the fields not in ``later``."""
        ft = dict.fromkeys(fields, self.base)
        ft.update(self.later or ())
        self.later = None  # from now on the profile's own field times are the truth
        return ft

    def times(self, name: str, create: bool = False) -> list[int] | None:
        """One event's list, converted on first use (a new empty one with ``create``)."""
        got = self.live.get(name)
        if got is not None:
            return got[0]
        wire = self.wire.get(name)
        if wire is None:
            if not create:
                return None
            times: list[int] = []
            self.live[name] = (times, None)
            return times
        if not wire or wire[0] is None:
            times = wire[1:]
        else:
            base = self.base - self.base % MS + wire[0] * MS
            times = [base + t * MS for t in wire[1:]]
        self.live[name] = (times, times.copy())
        return times

    def append(self, name: str, ts: int, keep: int) -> bool:
        """Add ``ts`` at the end of an unconverted list, in its stored form, keeping the ``keep``
        most recent; False (nothing done) unless it is a whole ms no earlier than the last."""
        wire = self.wire.get(name)
        if wire is None or len(wire) < 2 or wire[0] is None or name in self.live:
            return False
        ms, rest = divmod(ts - self.base + self.base % MS - wire[0] * MS, MS)
        if rest or ms < wire[-1]:
            return False
        wire.append(ms)
        extra = len(wire) - 1 - keep
        if extra > 0:
            del wire[1 : 1 + extra]
        return True

    def nth_last(self, name: str, n: int) -> tuple[int, int] | None:
        """(how many times one event's list holds, its ``n``-th most recent: 0 if fewer), or
        None if the profile has no such list; converts nothing (a timewindow reads only this)."""
        got = self.live.get(name)
        if got is not None:
            times = got[0]
            return len(times), times[-n] if len(times) >= n else 0
        wire = self.wire.get(name)
        if wire is None:
            return None
        count = len(wire) - 1
        if count < n:
            return max(count, 0), 0
        if wire[0] is None:
            return count, wire[-n]
        return count, self.base - self.base % MS + (wire[0] + wire[-n]) * MS

    def occurrences(self) -> dict[str, list[int]]:
        """Every list, the ones handed out as they are now."""
        times = self.times
        occurrences = {name: times(name) or [] for name in self.wire}
        for name, (got, _) in self.live.items():
            occurrences[name] = got
        self.done = True
        return occurrences

    def wire_out(self) -> dict[str, list[Any]]:
        """The stored form of every list, some handed out (and maybe changed) since read."""
        occurrences = self.wire.copy()
        floor = self.base - self.base % MS
        for name, (times, old) in self.live.items():
            occurrences[name] = self._list_out(name, times, old, floor)
        return occurrences

    def lists_out(self, now: dict[str, list[int]]) -> dict[str, list[Any]]:
        """The stored form of ``now`` (the profile's whole ``occurrences``)."""
        floor = self.base - self.base % MS
        live = self.live
        return {
            name: self._list_out(name, times, live[name][1] if name in live else None, floor)
            for name, times in now.items()
        }

    def _list_out(
        self, name: str, times: list[int], old: list[int] | None, floor: int
    ) -> list[Any]:
        """``times`` stored: as read if unchanged since (``old``), extended if it grew by one."""
        if old is not None:
            wire = self.wire[name]
            if old == times:
                return wire  # unchanged since read: its stored form as it was
            drop = len(old) + 1 - len(times)
            if drop >= 0 and wire and wire[0] is not None and times[:-1] == old[drop:]:
                # One more at the end, the oldest dropped (the usual change): same list base.
                ms, rest = divmod(times[-1] - floor - wire[0] * MS, MS)
                if not rest:
                    return [wire[0], *wire[1 + drop :], ms]
        return _times_out(times, floor)


def encode(p: Profile, codes: AudienceCodes) -> bytes:
    created = p.created
    fields = p.fields
    stored = p.stored
    occurrences: dict[str, list[Any]]
    later: dict[str, int] | list[int] | None
    ft: dict[str, int] | None = None
    if stored is not None and stored.base == created and not stored.done:
        # A read profile (the drain's): what was not used is written back as it was read.
        occurrences = stored.wire_out() if stored.live else stored.wire
        later = stored.later
    else:
        floor = created - created % MS
        if stored is None or stored.base - stored.base % MS != floor:
            occurrences = {name: _times_out(t, floor) for name, t in p.occurrences.items()}
        else:
            occurrences = stored.lists_out(p.occurrences)
        later = None
    if later is None:
        later = _field_times_out(fields, ft := p.field_ts, created)
    mem = p.membership
    nxt = p.next_change
    rec = p.recorded
    packed = codes.packed
    pack = codes.pack
    out: list[Any] = [
        VERSION,
        created,
        p.modified - created,
        fields,
        later,
        occurrences,
        packed.get(tuple(mem)) or pack(mem),
        list(mem.values()),
        packed.get(tuple(nxt)) or pack(nxt),
        list(nxt.values()),
    ]
    if rec or later is None:
        out += (pack(rec), list(rec.values()), None if later is not None else ft)
    uid = fields.get(USER_ID)
    if uid is None:
        if USER_ID in fields:  # a nil user_id would read back as the id: JSON keeps it
            return legacy_encode(p)
    elif uid == p.user_id and type(uid) is str:
        # The users hash's key: written as nil (the value goes back in place, its order kept).
        fields[USER_ID] = None
        try:
            return _pack(out)
        except (ormsgpack.MsgpackEncodeError, TypeError):
            pass
        finally:
            fields[USER_ID] = uid
        return legacy_encode(p)
    try:
        return _pack(out)
    except (ormsgpack.MsgpackEncodeError, TypeError):
        return legacy_encode(p)


def _times_out(times: list[int], floor: int) -> list[Any]:
    """[list base as ms after ``floor``, then each time as ms after the list base]; or, when a
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
    return [(first - floor) // MS, *ms]


def _field_times_out(
    fields: dict[str, Any], ft: dict[str, int], created: int
) -> dict[str, int] | list[int] | None:
    """The field times not ``created``, by name (and the times of fields a null removed); one
    time per field in the fields' order when most fields have one of their own (50 names cost
    more than 50 times); None when a field has no time: then they are written whole."""
    if len(ft) == len(fields):
        try:
            times = list(map(ft.__getitem__, fields))
        except KeyError:  # same count, other names: a removed field and an untimed one
            return None
        if (len(times) - times.count(created)) * 2 > len(times) > 4:
            return times
        return {k: t for k, t in zip(fields, times, strict=True) if t != created}
    if ft.keys() >= fields.keys():
        return {k: t for k, t in ft.items() if t != created or k not in fields}
    return None


def decode(cls: type[Profile], user_id: str, blob: bytes, codes: AudienceCodes) -> Profile:
    """The profile stored in ``blob`` (any version); its occurrence lists are converted when
    first used (Profile.times, Profile.__getattr__), its field times likewise (Profile.merge
    merges into them as stored)."""
    if blob[0] == _JSON:
        return legacy_decode(cls, user_id, blob)
    d = _unpack(blob)
    created: int = d[1]
    fields: dict[str, Any] = d[3]
    ids = codes.unpack
    try:  # the audience sets seen before (nearly all): one lookup each
        mem, nxt = codes.unpacked[d[6]], codes.unpacked[d[8]]
    except (KeyError, TypeError):  # a set new to this snapshot, or ids without a number
        mem, nxt = ids(d[6]), ids(d[8])
    p = cls.__new__(cls)
    p.user_id = user_id
    p.created = created
    p.modified = created + d[2]
    p.membership = dict(zip(mem, d[7], strict=False))
    p.next_change = dict(zip(nxt, d[9], strict=False))
    later = d[4]
    if len(d) > 10:
        p.recorded = dict(zip(ids(d[10]), d[11], strict=True))
        if later is None:
            p.field_ts = d[12]
    else:
        p.recorded = {}
    if type(later) is list and d[0] == VERSION:  # one time per field, in the fields' order
        p.field_ts = dict(zip(fields, later, strict=True))
        later = None
    if d[0] == VERSION:
        if fields.get(USER_ID, 0) is None:
            fields[USER_ID] = user_id
    elif d[0] == 1:
        if later is not None:
            p.field_ts = _field_times_v1(fields, later, created)
            later = None
    else:
        raise ValueError(f"profile encoding version {d[0]!r} is newer than this code reads")
    p.fields = fields
    p.stored = StoredTimes(created, d[5], later)
    return p


def decode_members(cls: type[Profile], user_id: str, blob: bytes, codes: AudienceCodes) -> Profile:
    """What an Existing Users backfill page reads of a stored profile, and no more: its id,
    ``created``, ``modified``, fields, membership and recorded times. Its next changes,
    occurrences and field times are left out (reading any of them raises), so it is a view to
    render from, never one to write back. Versions other than 2 are read whole (:func:`decode`).
    """
    if blob[0] == _JSON:
        return legacy_decode(cls, user_id, blob)
    d = _unpack(blob)
    if d[0] != VERSION:
        return decode(cls, user_id, blob, codes)
    created: int = d[1]
    fields: dict[str, Any] = d[3]
    stored = d[6]
    mem = codes.unpacked.get(stored) if type(stored) is bytes else None
    if mem is None:
        mem = codes.unpack(stored)
    p = cls.__new__(cls)
    p.user_id = user_id
    p.created = created
    p.modified = created + d[2]
    p.membership = dict(zip(mem, d[7], strict=False))
    # (often written empty: it is, whenever the field times are written whole)
    p.recorded = dict(zip(codes.unpack(d[10]), d[11], strict=True)) if len(d) > 10 and d[10] else {}
    if fields.get(USER_ID, 0) is None:
        fields[USER_ID] = user_id
    p.fields = fields
    p.stored = None
    return p


def _field_times_v1(fields: dict[str, Any], later: list[int], created: int) -> dict[str, int]:
    """Version 1's field times: (position among the fields, ns after created) for the fields
    whose time is not ``created``."""
    names = list(fields)
    ft = dict.fromkeys(names, created)
    for i in range(0, len(later), 2):
        ft[names[later[i]]] = created + later[i + 1]
    return ft


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
