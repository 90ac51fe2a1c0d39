"""How a profile is stored: compact MessagePack (version 1), reading the older JSON too.

All state lives in Redis memory, so bytes per profile are the bill. Version 1 is a MessagePack
array (ormsgpack: Rust, the fastest to pack and unpack here) whose first element is the version:

    [1, created, modified - created, fields, field times, occurrences,
     membership numbers, membership times, next-change numbers, next-change times,
     (recorded numbers, recorded times, field times not aligned)]   <- only when present

- Audiences are small numbers from the registry (workers/audiences/numbers.py), not 32 hex.
- A field's time is stored beside the fields in the same order, as nanoseconds after
  ``created``: most fields are set by the first event, so most are a one-byte zero.
- Occurrence times are whole milliseconds after ``created`` (event ``_ts`` usually carries ms),
  five bytes instead of nine; a list holding a finer time is stored as exact nanoseconds
  (marked by a leading nil). Membership, next-change and recorded times are processing instants
  in nanoseconds, kept exact (messages carry their nanosecond digits).

Nothing is rounded: every profile reads back equal to what was written. A stored profile that
begins with ``{`` is the JSON of before (version 0) and is read as such; the next commit writes
it as version 1, so a store moves over as its users are drained. A profile MessagePack cannot
hold (nothing the ingest accepts) is written as JSON, which stays readable.
"""

from __future__ import annotations

from contextlib import suppress
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

Parts = tuple[
    dict[str, Any],
    dict[str, int],
    int,
    int,
    dict[str, list[int]],
    dict[str, int],
    dict[str, int],
    dict[str, int],
]
"""fields, field times, created, modified, occurrences, membership, next change, recorded."""


def encode(p: Profile, codes: AudienceCodes) -> bytes:
    created = p.created
    base = created - created % MS
    fields = p.fields
    ft = p.field_ts
    occurrences: dict[str, list[int | None]] = {}
    for name, times in p.occurrences.items():
        ms: list[int | None] = [(t - base) // MS for t in times]
        # Floor division leaves a remainder >= 0 per time: they are all zero exactly when the
        # sums agree, so the lists need no second pass to know every time was whole ms.
        if sum(times) - len(times) * base == MS * sum(ms):  # type: ignore[arg-type]
            occurrences[name] = ms
        else:
            occurrences[name] = [None, *times]
    aligned: list[int] | None = None
    if len(ft) == len(fields):
        with suppress(KeyError):  # same count, other names: a removed field and an untimed one
            aligned = [ft[k] - created for k in fields]
    num = codes.numbers.__getitem__
    mem = p.membership
    nxt = p.next_change
    out: list[Any] = [
        VERSION, created, p.modified - created, fields, aligned, occurrences,
        list(map(num, mem)), list(mem.values()), list(map(num, nxt)), list(nxt.values()),
    ]  # fmt: skip
    rec = p.recorded
    if rec or aligned is None:
        out += (list(map(num, rec)), list(rec.values()), None if aligned is not None else ft)
    try:
        return _pack(out)
    except (ormsgpack.MsgpackEncodeError, TypeError):
        return legacy_encode(p)


def decode(blob: bytes, codes: AudienceCodes) -> Parts:
    if blob[0] == _JSON:
        return legacy_decode(blob)
    d = _unpack(blob)
    if d[0] != VERSION:
        raise ValueError(f"profile encoding version {d[0]!r} is newer than this code reads")
    created: int = d[1]
    fields: dict[str, Any] = d[3]
    aligned: list[int] | None = d[4]
    base = created - created % MS
    occurrences: dict[str, list[int]] = d[5]
    for name, times in occurrences.items():
        if times and times[0] is None:
            del times[0]
        else:
            occurrences[name] = [base + t * MS for t in times]
    aid = codes.ids.__getitem__
    if len(d) > 10:
        recorded = dict(zip(map(aid, d[10]), d[11], strict=True))
        ft = d[12] if aligned is None else None
    else:
        recorded, ft = {}, None
    if ft is None:
        ft = dict(zip(fields, [created + t for t in aligned or ()], strict=True))
    return (
        fields,
        ft,
        created,
        created + d[2],
        occurrences,
        dict(zip(map(aid, d[6]), d[7], strict=True)),
        dict(zip(map(aid, d[8]), d[9], strict=True)),
        recorded,
    )


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


def legacy_decode(blob: bytes) -> Parts:
    d = orjson.loads(blob)
    return (d["f"], d["ft"], d["c"], d["m"], d["o"], d["a"], d["n"], d.get("r", {}))
