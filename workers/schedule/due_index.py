"""The owner of the due index: per shard, who must be re-evaluated when, found by time.

Layout: a sorted set of time buckets (bucket number -> bucket start, ms) and per bucket a small
hash of user id -> due time (ms), plus a count of users. Small hashes stay in Redis's compact
listpack encoding, a fraction of a sorted-set entry per scheduled user. Drains move users
between buckets inside the shard commit (``commit.lua``); :meth:`DueIndex.release` takes due
users out (``due_release.lua``); reads go through :class:`DueIndex`.
"""

from __future__ import annotations

from typing import Any, cast

from workers.keys import Keys
from workers.lua import script
from workers.redisconn import Redis

BUCKET_MS = 600_000
"""Width of a due-index bucket. Ten minutes keeps a week of 1M users spread over 16 shards near
60 users a bucket: small enough for the compact encoding, few enough keys to be cheap."""


class DueIndex:
    """One shard's due index. Read methods take the client or a pipeline."""

    __slots__ = ("_keys", "_shard", "count_key", "key")

    def __init__(self, keys: Keys, shard: int) -> None:
        self._keys = keys
        self._shard = shard
        self.key = keys.due(shard)
        self.count_key = keys.due_count(shard)

    def count(self, r: Any) -> Any:
        """Users in the index (raw GET answer: bytes or None)."""
        return r.get(self.count_key)

    def first_bucket(self, r: Any) -> Any:
        """The earliest bucket number, raw (a list of at most one)."""
        return r.zrange(self.key, 0, 0)

    def started_by(self, r: Any, now_ms: int) -> Any:
        """The earliest bucket if it starts by ``now_ms`` (raw: a list of at most one); only
        then can anyone be due. Cheap to ask every shard in one pipeline."""
        return r.zrangebyscore(self.key, "-inf", now_ms, start=0, num=1)

    def bucket_times(self, r: Any, bucket: int) -> Any:
        """The due times (ms) in one bucket, raw."""
        return r.hvals(self._keys.due_bucket(self._shard, bucket))

    def entries(self, r: Redis) -> dict[str, int]:
        """Every user in the index with its due time (ms); for tests and inspection."""
        out: dict[str, int] = {}
        for bucket in cast(list[bytes], r.zrange(self.key, 0, -1)):
            raw = cast(
                dict[bytes, bytes], r.hgetall(self._keys.due_bucket(self._shard, int(bucket)))
            )
            out.update({k.decode(): int(v) for k, v in raw.items()})
        return out

    def release(self, r: Redis, now_ms: int, limit: int) -> list[bytes]:
        """Take out up to ``limit`` users due by ``now_ms`` and append a re-evaluation entry for
        each to the shard's stream, atomically; returns their due times (ms)."""
        keys = [self.key, self.count_key, self._keys.events(self._shard)]
        return cast(list[bytes], script(r, "due_release")(keys=keys, args=[now_ms, limit]))
