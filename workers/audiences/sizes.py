"""Audience sizes now and over time: one point per audience per minute, kept for a day.

Size now is the sum over shards of the member indexes' ZCARD (the same indexes backfills page
through), so it is exact and costs one pipelined round trip. Nothing else in the engine keeps a
history of sizes, so this module records one: ``sample_if_due`` takes at most one sample per
minute for the whole deployment (a ``SET NX`` claims the minute), which makes it cheap enough to
call from every beat tick and from every dashboard read; whoever calls first in a minute pays.

Layout (``p`` is the configured prefix)::

    p:audience:<aud>:sizes      hash    minute (epoch seconds // 60) -> member count
    p:audience-sizes:<minute>   string  claim of that minute's sample (SET NX, expires in 2 min)

Neither key belongs to a shard, so each is a single-key operation on a Redis Cluster too.
Minutes are wall-clock time like the jobs' throughput buckets: this is an operator's view of the
deployment, not an answer about users (which would follow the engine's clock).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import cast

from workers.engine import Engine
from workers.pipeline.member_index import MemberIndex

MINUTE_S = 60
KEEP_MINUTES = 24 * 60
TRIM_SLACK = 60
"""A series may grow this far past ``KEEP_MINUTES`` (samples skipped minutes) before a trim."""


def current_minute(now_s: float | None = None) -> int:
    return int(now_s if now_s is not None else time.time()) // MINUTE_S


class AudienceSizes:
    """Read sizes now, record them once a minute, read the recorded series back."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def _audience_ids(self) -> list[str]:
        return list(self.e.registry.get().audiences)

    def current(self, audience_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Members of each audience right now (every audience when none are named)."""
        e = self.e
        ids = list(audience_ids) if audience_ids is not None else self._audience_ids()
        if not ids:
            return {}
        pipe = e.r.pipeline(transaction=False)
        for aid in ids:
            for shard in range(e.cfg.shards):
                MemberIndex(e.keys, shard, aid).count(pipe)
        counts = cast(list[int], pipe.execute())
        n = e.cfg.shards
        return {aid: sum(counts[i * n : (i + 1) * n]) for i, aid in enumerate(ids)}

    def record(self, sizes: dict[str, int], minute: int | None = None) -> None:
        """Store ``sizes`` as the point of ``minute`` (overwriting it: the latest read wins)."""
        if not sizes:
            return
        e = self.e
        at = minute if minute is not None else current_minute()
        pipe = e.r.pipeline(transaction=False)
        for aid, size in sizes.items():
            key = e.keys.audience_sizes(aid)
            pipe.hset(key, str(at), size)
            pipe.hdel(key, str(at - KEEP_MINUTES))  # the usual case: the point that fell out
            pipe.hlen(key)
        lengths = pipe.execute()[2::3]
        for aid, length in zip(sizes, lengths, strict=True):
            if int(length) > KEEP_MINUTES + TRIM_SLACK:
                self._trim(aid, at)

    def _trim(self, audience_id: str, minute: int) -> None:
        key = self.e.keys.audience_sizes(audience_id)
        fields = cast(list[bytes], self.e.r.hkeys(key))
        old = [f for f in fields if int(f) <= minute - KEEP_MINUTES]
        if old:
            self.e.r.hdel(key, *old)

    def sample_if_due(self, now_s: float | None = None) -> dict[str, int] | None:
        """Record every audience's size unless this minute was sampled already.

        Returns the sizes recorded, or None when another caller had the minute. Safe to call
        as often as you like (beat's tick, every dashboard read): one ``SET NX`` when not due.
        """
        e = self.e
        minute = current_minute(now_s)
        if not e.r.set(e.keys.audience_sizes_claim(minute), 1, nx=True, ex=2 * MINUTE_S):
            return None
        sizes = self.current()
        self.record(sizes, minute)
        return sizes

    def series(
        self, audience_ids: Sequence[str], minutes: int = 60, now_s: float | None = None
    ) -> dict[str, list[tuple[int, int | None]]]:
        """(minute start in epoch seconds, size or None where nothing was sampled) for the last
        ``minutes`` minutes, oldest first, per audience."""
        e = self.e
        last = current_minute(now_s)
        first = last - max(1, min(minutes, KEEP_MINUTES)) + 1
        pipe = e.r.pipeline(transaction=False)
        for aid in audience_ids:
            pipe.hgetall(e.keys.audience_sizes(aid))
        out: dict[str, list[tuple[int, int | None]]] = {}
        for aid, raw in zip(audience_ids, pipe.execute(), strict=True):
            points = {int(k): int(v) for k, v in cast(dict[bytes, bytes], raw).items()}
            out[aid] = [(m * MINUTE_S, points.get(m)) for m in range(first, last + 1)]
        return out

    def forget(self, audience_id: str) -> None:
        """Drop an audience's history (for whoever deletes audiences)."""
        self.e.r.delete(self.e.keys.audience_sizes(audience_id))
