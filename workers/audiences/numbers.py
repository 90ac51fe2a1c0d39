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
from workers.redisconn import Redis

_ASSIGN = """
-- KEYS[1] numbers (hash id -> number)  KEYS[2] last number given
for _, id in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    redis.call('HSET', KEYS[1], id, redis.call('INCR', KEYS[2]))
  end
end
return redis.call('HGETALL', KEYS[1])
"""


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


class AudienceCodes:
    """Both directions of the numbering, as one snapshot of the registry knows it."""

    __slots__ = ("ids", "numbers")

    def __init__(self, numbers: dict[str, int] | None = None) -> None:
        self.numbers = AudienceNumbers(numbers or {})
        self.ids = AudienceIds({n: aid for aid, n in (numbers or {}).items()})


NO_CODES = AudienceCodes()
"""No registry at hand: audience ids are written whole (still read back exactly)."""


class AudienceNumbering:
    """The one owner of the numbering in Redis."""

    def __init__(self, r: Redis, keys: Keys) -> None:
        self._keys = keys
        self._assign = r.register_script(_ASSIGN)

    def ensure(self, audience_ids: Iterable[str]) -> AudienceCodes:
        """Number every audience that has none yet; returns every number ever given."""
        keys = [self._keys.audience_numbers, self._keys.audience_numbers_last]
        flat = self._assign(keys=keys, args=sorted(audience_ids))
        pairs = iter(flat)
        return AudienceCodes({_text(k): int(v) for k, v in zip(pairs, pairs, strict=True)})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
