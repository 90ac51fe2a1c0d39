"""Profiles as version 1 wrote them (the codec of before version 2), so tests can build stores
that hold them: production stores do until each user is drained again."""

from __future__ import annotations

from typing import Any

import ormsgpack

from workers.pipeline.profile import Profile

MS = 1_000_000


def _ids(audiences: dict[str, int], numbers: dict[str, int]) -> bytes | list[int | str]:
    nums = [numbers.get(a, a) for a in audiences]
    if all(isinstance(n, int) and 0 <= n < 65536 for n in nums):
        return b"".join(n.to_bytes(2, "little") for n in nums)  # type: ignore[union-attr]
    return nums


def _times(times: list[int], floor: int) -> list[Any]:
    if not times:
        return []
    first = times[0]
    if first % MS or any(t % MS for t in times):
        return [None, *times]
    return [(first - floor) // MS, *((t - first) // MS for t in times)]


def encode_v1(p: Profile, numbers: dict[str, int]) -> bytes:
    """Version 1: [1, created, modified - created, fields, later field times, occurrences,
    membership audiences, times, next-change audiences, times, (recorded audiences, times,
    field times when not one per field)]."""
    created = p.created
    floor = created - created % MS
    fields, ft = p.fields, p.field_ts
    later: list[int] | None = None
    if list(ft) == list(fields):
        later = []
        for i, t in enumerate(ft.values()):
            if t != created:
                later += (i, t - created)
    out: list[Any] = [
        1,
        created,
        p.modified - created,
        fields,
        later,
        {name: _times(t, floor) for name, t in p.occurrences.items()},
        _ids(p.membership, numbers),
        list(p.membership.values()),
        _ids(p.next_change, numbers),
        list(p.next_change.values()),
    ]
    if p.recorded or later is None:
        out += (
            _ids(p.recorded, numbers),
            list(p.recorded.values()),
            None if later is not None else ft,
        )
    return ormsgpack.packb(out)
