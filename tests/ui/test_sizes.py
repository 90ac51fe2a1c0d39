"""The audience size sampler behind the dashboard's size charts (workers/audiences/sizes.py)."""

from __future__ import annotations

import time
from typing import Any

from workers.audiences.sizes import (
    KEEP_MINUTES,
    MINUTE_S,
    TRIM_SLACK,
    AudienceSizes,
)
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.pipeline.member_index import MemberIndex


def _members(engine: Engine, audience_id: str, users: list[str]) -> None:
    from workers.keys import shard_of

    for u in users:
        MemberIndex(engine.keys, shard_of(u, engine.cfg.shards), audience_id).add(engine.r, [u])


def test_audience_sizes_sample_once_a_minute_and_keep_a_day(engine: Engine) -> None:
    a = AudienceStore(engine.r, engine.keys).create("sized", "FILTER EXISTS email")
    b = AudienceStore(engine.r, engine.keys).create("empty", "FILTER EXISTS phone")
    _members(engine, a.id, [f"u{i}" for i in range(7)])
    sizes = AudienceSizes(engine)
    assert sizes.current() == {a.id: 7, b.id: 0}
    t0 = 1_800_000_000 // MINUTE_S * MINUTE_S
    assert sizes.sample_if_due(now_s=t0) == {a.id: 7, b.id: 0}
    _members(engine, a.id, ["u7", "u8"])
    assert sizes.sample_if_due(now_s=t0 + 30) is None  # this minute was taken
    assert sizes.sample_if_due(now_s=t0 + 61) == {a.id: 9, b.id: 0}
    series = sizes.series([a.id], minutes=3, now_s=t0 + 61)[a.id]
    assert series == [(t0 - 60, None), (t0, 7), (t0 + 60, 9)]
    assert sizes.series([a.id], minutes=10**6, now_s=t0)[a.id][0][0] == t0 - (KEEP_MINUTES - 1) * 60

    # A day of points is kept; older ones are dropped once the series outgrows the day (samples
    # that skipped minutes leave points the usual one-for-one drop misses).
    minute = t0 // MINUTE_S
    pipe = engine.r.pipeline(transaction=False)
    for k in range(KEEP_MINUTES + TRIM_SLACK):
        pipe.hset(engine.keys.audience_sizes(a.id), str(minute - KEEP_MINUTES - k), 1)
    pipe.execute()
    sizes.record({a.id: 9}, minute + 2)
    kept = [int(k) for k in engine.r.hkeys(engine.keys.audience_sizes(a.id))]
    assert min(kept) > minute + 2 - KEEP_MINUTES and len(kept) == 3
    sizes.forget(a.id)
    assert engine.r.exists(engine.keys.audience_sizes(a.id)) == 0


def test_sampling_is_cheap_when_not_due(engine: Engine) -> None:
    AudienceStore(engine.r, engine.keys).create("cheap", "FILTER EXISTS email")
    sizes = AudienceSizes(engine)
    now = time.time()
    sizes.sample_if_due(now_s=now)
    calls: list[Any] = []
    original = engine.r.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    engine.r.pipeline = counted  # type: ignore[method-assign]
    try:
        assert sizes.sample_if_due(now_s=now) is None
    finally:
        engine.r.pipeline = original  # type: ignore[method-assign]
    assert calls == []  # one SET NX, no ZCARDs
