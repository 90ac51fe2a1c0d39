"""Memory per profile: Redis ``used_memory`` per stored profile, and decode+encode time, beside
the JSON encoding of before (version 0) in the same run.

1. The real drain path: a sample of users each get their events (a realistic profile: 10
   fields, 20 occurrences over 3 event names, 8 audiences of which 4 are time windows) through
   the ingest and ``ShardDrainer``, in process, on a private redis-server. Their stored
   profiles' bytes (``MEMORY USAGE`` of the users hashes, every field counted) are the drain's.
2. In bulk: the drained profiles are the templates of N users (user id and email changed per
   user) written through the shard commit (``Committer``, users section, 1,000 users a commit),
   once as the current version (``profile_codec.VERSION``) and once as JSON, into an emptied Redis: ``used_memory`` grown / N.
3. The same for a large profile (50 fields, 200 occurrences: AUDIENCEHUB_OCCURRENCES_KEPT=200).

CPU time per profile over the drained profiles (the best of 15 rounds, old and new interleaved):
``Profile.loads(...).dumps(...)`` untouched, and with one event applied in between (a field and
an occurrence, as a drain does). Prints figures; asserts nothing. Redis work and the bulk loop
make most of its wall time: about a minute and a half of CPU for the defaults.

    .venv/bin/python bench/memory.py [--profiles 1000000] [--large 50000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections.abc import Callable

import redis
from _common import private_redis  # (importing _common puts the project on the path)

from workers.audiences.numbers import AudienceCodes
from workers.audiences.store import AudienceStore
from workers.config import Settings
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.commit import Committer, ShardCommit
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profile import Profile
from workers.pipeline.profile_codec import VERSION, legacy_encode
from workers.timefmt import NS_PER_MS

SHARDS = 16
DAY_MS = 86_400_000
AUDIENCES = {
    "pro": 'FILTER plan == "pro"',
    "germany": 'FILTER country == "DE"',
    "regulars": "FILTER visits >= 5",
    "opted_in": "FILTER opted_in == true",
    "viewers": "FILTER timewindow(page_view, 3, 60)",
    "buyers": "FILTER timewindow(purchase, 1, 60)",
    "carts": "FILTER timewindow(add_to_cart, 2, 45)",
    "adult_viewers": "FILTER age >= 18 AND timewindow(page_view, 1, 90)",
}


def user_events(
    uid: str, fields: int, occurrences: int, now_ms: int, rnd: random.Random
) -> list[dict[str, object]]:
    """One user's events over the last 30 days: the first sets the fields, later ones count
    visits (and now and then a score or another attribute); 3/5 page views, 1/5 carts, 1/5 buys."""
    times = sorted(now_ms - rnd.randrange(1, 30 * DAY_MS) for _ in range(occurrences))
    first: dict[str, object] = {
        "user_id": uid,
        "email": f"{uid}@example.com",
        "first_name": "Alexandra",
        "country": "DE",
        "plan": "pro",
        "age": 18 + rnd.randrange(60),
        "score": round(rnd.random() * 100, 2),
        "opted_in": True,
        "city": "Berlin",
        "visits": 0,
    }
    first.update({f"attr_{k:02d}": f"value-{rnd.randrange(1000)}" for k in range(fields - 10)})
    events: list[dict[str, object]] = []
    for n, ts in enumerate(times):
        name = ("page_view", "page_view", "page_view", "add_to_cart", "purchase")[n % 5]
        data: dict[str, object] = dict(first) if n == 0 else {"user_id": uid}
        data.update({"event": name, "_ts": ts, "visits": n + 1})
        if n % 7 == 6:
            data["score"] = round(rnd.random() * 100, 2)
        if fields > 10 and n % 3 == 1:
            data[f"attr_{rnd.randrange(fields - 10):02d}"] = f"value-{rnd.randrange(1000)}"
        events.append(data)
    return events


def drain_sample(engine: Engine, users: int, fields: int, occurrences: int) -> list[Profile]:
    """Users through the real ingest and drain; returns their stored profiles."""
    rnd = random.Random(7)
    start_memory = int(engine.r.info("memory")["used_memory"])
    store = AudienceStore(engine.r, engine.keys)
    for slug, text in AUDIENCES.items():
        store.create(slug, text)
    now_ms = engine.clock.now_ns() // NS_PER_MS
    uids = [f"user{i:08d}" for i in range(users)]
    events = [e for uid in uids for e in user_events(uid, fields, occurrences, now_ms, rnd)]
    drainer = ShardDrainer(engine)
    ingest = Ingestor(engine)
    t = time.perf_counter()
    for start in range(0, len(events), 1000):
        result = ingest.ingest(list_items(events[start : start + 1000]))
        assert not result.errors, result.errors[:3]
        if start % 20_000 == 0:
            for shard in range(SHARDS):
                drainer.drain(shard, budget_s=60)
    for shard in range(SHARDS):
        drainer.drain(shard, budget_s=60)
    took = time.perf_counter() - t
    codes = engine.registry.get().codes
    profiles = []
    for uid in uids:
        blob = engine.r.hget(engine.keys.users(shard_of(uid, SHARDS)), uid)
        assert isinstance(blob, bytes)
        profiles.append(Profile.loads(uid, blob, codes))
    hashes = sum(
        int(engine.r.memory_usage(engine.keys.users(s), samples=0) or 0) for s in range(SHARDS)
    )
    p = profiles[0]
    print(
        f"  drain path: {users:,} users, {len(events):,} events drained in {took:.1f}s; a profile "
        f"holds {len(p.fields)} fields, {sum(map(len, p.occurrences.values()))} occurrences, "
        f"{len(p.membership)} audiences, {len(p.next_change)} next changes"
    )
    state = int(engine.r.info("memory")["used_memory"]) - start_memory
    print(
        f"    users hashes (MEMORY USAGE): {hashes / users:,.0f} bytes/profile (version {VERSION})"
    )
    print(
        f"    all state grown (used_memory): {state / users:,.0f} bytes/user: the profile, "
        f"{len(p.membership)} member index entries, a due index entry, the drained streams"
    )
    return profiles


def bulk_load(
    r: redis.Redis,
    engine: Engine,
    templates: list[Profile],
    count: int,
    encode: Callable[[Profile], bytes],
) -> tuple[float, float]:
    """``count`` users written through the shard commit; (used_memory grown, blob bytes) each."""
    r.flushall()
    before = int(r.info("memory")["used_memory"])
    committer = Committer(engine.r)
    versions = [0] * SHARDS
    pending: list[dict[str, bytes]] = [{} for _ in range(SHARDS)]
    blob_bytes = 0

    def commit(shard: int) -> None:
        v = versions[shard]
        expected = f"0-{v}" if v else ""
        c = ShardCommit(engine.keys, shard, expected, f"0-{v + 1}", users=pending[shard])
        assert committer.run(c)
        versions[shard] = v + 1
        pending[shard] = {}

    for i in range(count):
        t = templates[i % len(templates)]
        uid = f"user{i:08d}"
        fields = dict(t.fields)
        fields["user_id"] = uid
        fields["email"] = f"{uid}@example.com"
        p = Profile(
            uid,
            fields,
            t.field_ts,
            t.created,
            t.modified,
            t.occurrences,
            t.membership,
            t.next_change,
            t.recorded,
        )
        blob = encode(p)
        blob_bytes += len(blob)
        shard = shard_of(uid, SHARDS)
        pending[shard][uid] = blob
        if len(pending[shard]) == 1000:
            commit(shard)
    for shard in range(SHARDS):
        if pending[shard]:
            commit(shard)
    grown = int(r.info("memory")["used_memory"]) - before
    return grown / count, blob_bytes / count


def codec_us(profiles: list[Profile], codes: AudienceCodes, rounds: int = 15) -> list[float]:
    """CPU µs per profile, the best of ``rounds`` with old and new interleaved: decode+encode,
    then decode + one event applied (a field and an occurrence, as a drain does) + encode.
    Returns [old, new, old with an event, new with an event]."""
    old = [(p.user_id, legacy_encode(p)) for p in profiles]
    new = [(p.user_id, p.dumps(codes)) for p in profiles]
    ts = max(p.modified for p in profiles) + NS_PER_MS

    def plain(blobs: list[tuple[str, bytes]], write: Callable[[Profile], bytes]) -> None:
        for uid, blob in blobs:
            write(Profile.loads(uid, blob, codes))

    def event(blobs: list[tuple[str, bytes]], write: Callable[[Profile], bytes]) -> None:
        for uid, blob in blobs:
            p = Profile.loads(uid, blob, codes)
            p.merge({"visits": 99}, ts)
            p.record_occurrence("page_view", ts, 200)
            write(p)

    def dumps(p: Profile) -> bytes:
        return p.dumps(codes)

    best = [float("inf")] * 4
    for _ in range(rounds):
        for i, (run, blobs, write) in enumerate(
            [
                (plain, old, legacy_encode),
                (plain, new, dumps),
                (event, old, legacy_encode),
                (event, new, dumps),
            ]
        ):
            t = time.process_time()
            run(blobs, write)
            best[i] = min(best[i], time.process_time() - t)
    return [b / len(profiles) * 1e6 for b in best]


def run(
    title: str,
    cfg: Settings,
    r: redis.Redis,
    count: int,
    sample: int,
    fields: int,
    occurrences: int,
) -> None:
    print(f"== {title}")
    r.flushall()
    engine = Engine.create(cfg=cfg, r=r)
    templates = drain_sample(engine, sample, fields, occurrences)
    codes = engine.registry.get().codes
    old_us, new_us, old_ev, new_ev = codec_us(templates[:500], codes)
    t = time.perf_counter()
    new_mem, new_blob = bulk_load(r, engine, templates, count, lambda p: p.dumps(codes))
    new_s = time.perf_counter() - t
    t = time.perf_counter()
    old_mem, old_blob = bulk_load(r, engine, templates, count, legacy_encode)
    old_s = time.perf_counter() - t
    print(
        f"  bulk through the commit: {count:,} profiles each way ({new_s:.0f}s new, {old_s:.0f}s old)"
    )
    print(
        f"    JSON (before):  {old_blob:>7,.0f} bytes encoded, {old_mem:>7,.0f} bytes/profile in Redis"
    )
    print(
        f"    version {VERSION}:      {new_blob:>7,.0f} bytes encoded, {new_mem:>7,.0f} bytes/profile in Redis"
        f" ({new_mem / old_mem:.2f}x; {old_mem / new_mem:.1f}x fewer)"
    )
    print(
        f"    decode+encode:  JSON {old_us:.1f} µs, version {VERSION} {new_us:.1f} µs per profile "
        f"({new_us / old_us:.2f}x) [CPU time, best of 15]"
    )
    print(
        f"    decode, one event, encode: JSON {old_ev:.1f} µs, version {VERSION} {new_ev:.1f} µs "
        f"({new_ev / old_ev:.2f}x)"
    )
    for n in (10**7, 10**8, 10**9):
        print(
            f"    {n:>13,} profiles: {n * new_mem / 2**30:>8,.0f} GiB (JSON {n * old_mem / 2**30:,.0f} GiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    with private_redis("memory", SHARDS) as (cfg, r):
        run(
            "realistic profile (10 fields, 20 occurrences over 3 events, 8 audiences)",
            cfg,
            r,
            args.profiles,
            args.sample,
            10,
            20,
        )
        large = dataclasses.replace(cfg, occurrences_kept=200)
        run(
            "large profile (50 fields, 200 occurrences over 3 events, 8 audiences)",
            large,
            r,
            args.large,
            max(1, args.sample // 10),
            50,
            200,
        )


if __name__ == "__main__":
    main()
