"""Small numbers for audiences, so a stored profile names each audience in a byte or two.

An audience id is 32 hex characters; a profile holding eight memberships and their next changes
would spend over 500 bytes on ids alone. The registry gives each audience a number the first
time it is seen (one script, so two processes cannot give one number twice) and never takes it
back: a deleted audience keeps its number, so a profile still holding it reads back the same id
(and the drain then drops it as unknown). Numbers only grow, so none is ever reused.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.keys import Keys
from workers.lua import script
from workers.redisconn import Redis


class AudienceNumbers(dict[str, int | str]):
    """audience id -> number, for writing profiles. An id without a number (a profile built
    outside the drain, with an audience the registry never saw) is written as itself, and a
    placeholder read back for an unknown number (``#17``) as that number, so nothing is lost."""

    def __missing__(self, key: str) -> int | str:
        if key[:1] == "#" and key[1:].isdigit():
            return int(key[1:])
        return key


class AudienceIds(dict[int | str, str]):
    """number -> audience id, for reading profiles; an id stored as itself reads as itself."""

    def __missing__(self, key: int | str) -> str:
        return key if isinstance(key, str) else f"#{key}"


CACHED_SETS = 4096
"""Audience sets remembered each way; beyond that the memo starts again (users share few sets)."""


class AudienceCodes:
    """Both directions of the numbering, as one snapshot of the registry knows it.

    A profile's audiences (its membership, its next changes) are written as one byte string of
    1-byte numbers (2-byte once a number passes 255). Users share a few such sets, so each set is
    turned into bytes, and back, once per snapshot: reading a profile's audiences is then one
    lookup, not one per audience.
    """

    __slots__ = ("ids", "numbers", "packed", "unpacked")

    def __init__(self, numbers: dict[str, int] | None = None) -> None:
        self.numbers = AudienceNumbers(numbers or {})
        self.ids = AudienceIds({n: aid for aid, n in (numbers or {}).items()})
        self.packed: dict[tuple[str, ...], bytes] = {}
        """audience ids -> their stored form, for the sets seen (``pack`` fills it)."""
        self.unpacked: dict[bytes, tuple[str, ...]] = {}
        """stored form -> audience ids, for the sets seen (``unpack`` fills it)."""

    def pack(self, audiences: dict[str, int]) -> bytes | list[int | str]:
        """The stored form of a table's audience ids, in its order: bytes, or a list when an id
        has no number (or a number over 65535). A byte a number while all are 1..255 (an odd
        length: a 0 in front when the count is even; numbers start at 1), else two (even)."""
        key = tuple(audiences)
        got = self.packed.get(key)
        if got is not None:
            return got
        given = list(map(self.numbers.__getitem__, key))
        nums = [n for n in given if isinstance(n, int) and 0 <= n < 65536]
        if len(nums) != len(given):
            return given
        if nums and all(0 < n < 256 for n in nums):
            got = bytes(nums if len(nums) % 2 else [0, *nums])
        else:
            got = b"".join(n.to_bytes(2, "little") for n in nums)
        if len(self.packed) >= CACHED_SETS:
            self.packed.clear()
        self.packed[key] = got
        return got

    def unpack(self, stored: bytes | list[int | str]) -> tuple[str, ...]:
        """The audience ids ``pack`` wrote, in order."""
        if not isinstance(stored, bytes):
            return tuple(map(self.ids.__getitem__, stored))
        got = self.unpacked.get(stored)
        if got is None:
            if len(stored) % 2:
                nums = list(stored[1:] if stored[0] == 0 else stored)
            else:
                nums = [
                    int.from_bytes(stored[i : i + 2], "little") for i in range(0, len(stored), 2)
                ]
            got = tuple(map(self.ids.__getitem__, nums))
            if len(self.unpacked) >= CACHED_SETS:
                self.unpacked.clear()
            self.unpacked[stored] = got
        return got


NO_CODES = AudienceCodes()
"""No registry at hand: audience ids are written whole (still read back exactly)."""


class AudienceNumbering:
    """The one owner of the numbering in Redis."""

    def __init__(self, r: Redis, keys: Keys) -> None:
        self._keys = keys
        self._assign = script(r, "audience_numbers")

    def ensure(self, audience_ids: Iterable[str]) -> AudienceCodes:
        """Number every audience that has none yet; returns every number ever given."""
        keys = [self._keys.audience_numbers, self._keys.audience_numbers_last]
        flat = self._assign(keys=keys, args=sorted(audience_ids))
        pairs = iter(flat)
        return AudienceCodes({_text(k): int(v) for k, v in zip(pairs, pairs, strict=True)})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
