"""The owner of the member indexes: per (shard, audience), the user ids currently members.

A sorted set with every score 0, so members come back in user-id order (ZRANGEBYLEX): a
backfill pages through it after a cursor. Drains change it only inside the shard commit
(``commit.lua`` gets the key as a KEY); everything else goes through :class:`MemberIndex`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workers.keys import Keys


class MemberIndex:
    """One audience's members in one shard. Methods take the client or a pipeline."""

    __slots__ = ("key",)

    def __init__(self, keys: Keys, shard: int, audience: str) -> None:
        self.key = keys.members(shard, audience)

    def count(self, r: Any) -> Any:
        return r.zcard(self.key)

    def page_after(self, r: Any, after: str | None, count: int) -> Any:
        """Up to ``count`` members after user id ``after`` (None: from the first), in order."""
        start = "(" + after if after is not None else "-"
        return r.zrangebylex(self.key, start, "+", start=0, num=count)

    def all(self, r: Any) -> Any:
        """Every member, in order; for inspection and tests."""
        return r.zrange(self.key, 0, -1)

    def add(self, r: Any, users: Iterable[str]) -> Any:
        """Record members directly (benchmarks and tests seed state this way)."""
        return r.zadd(self.key, dict.fromkeys(users, 0))

    def delete(self, r: Any) -> Any:
        return r.delete(self.key)
