"""The due index: memory per scheduled user, release speed, and lateness under load.

1. Memory: 1,000,000 users scheduled with due times spread over a simulated week (the due index
   as the drains write it); Redis memory per scheduled user.
2. Release: all of them due at once; users moved from the due index into their shard streams
   per second by the release script (what beat's tick runs), without workers.
3. Lateness under load: real profiles in a "did it in the last day" audience whose windows run
   out at a steady rate over the next seconds; real worker (2 processes) and beat re-evaluate
   them; lateness = commit of the exit - the instant the window ran out, sampled from the
   drains' own record. Prints figures; asserts nothing.

    .venv/bin/python bench/schedule.py [--users 1000000] [--load-users 200000] [--load-seconds 10]
"""

from __future__ import annotations

import argparse
import time

from _common import CpuMeter, Stack, percentile

from workers.audiences.store import AudienceStore
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.keys import shard_of
from workers.pipeline.commit import Committer, ShardCommit
from workers.pipeline.member_index import MemberIndex
from workers.pipeline.profile import Profile
from workers.redisconn import as_bytes
from workers.schedule.release import Releaser
from workers.timefmt import NS_PER_DAY, NS_PER_MS, NS_PER_S, ns_to_ms_ceil


def schedule_week(stack: Stack, users: int) -> float:
    """Write due entries through the drains' own commit script, as drains would."""
    e = stack.engine
    now_ms = e.clock.now_ns() // NS_PER_MS
    week_ms = 7 * 86_400_000
    before = int(e.r.info("memory")["used_memory"])
    committer = Committer(e.r)
    pending: dict[int, ShardCommit] = {}
    for i in range(users):
        uid = f"user{i:07d}"
        shard = shard_of(uid, e.cfg.shards)
        commit = pending.setdefault(shard, ShardCommit(e.keys, shard, "", ""))
        commit.due[uid] = (None, now_ms + (i * 7919) % week_ms)
        if len(commit.due) >= 5000:
            committer.run(pending.pop(shard))
    for commit in pending.values():
        committer.run(commit)
    e.r.delete(*(e.keys.applied(s) for s in range(e.cfg.shards)))
    return (int(e.r.info("memory")["used_memory"]) - before) / users


def release_all(stack: Stack, users: int) -> float:
    e = stack.engine
    e.r.incrby(e.keys.clock_offset, 8 * NS_PER_DAY)
    releaser = Releaser(e)
    released = 0
    start = time.perf_counter()
    while released < users:
        report = releaser.release(limit=10_000)
        if report.released == 0:
            break
        released += report.released
    took = time.perf_counter() - start
    e.r.set(e.keys.clock_offset, 0)
    return released / took


def lateness_under_load(stack: Stack, users: int, seconds: float, tag: str) -> None:
    e = stack.engine
    audience = AudienceStore(e.r, e.keys).create(f"daily_{tag}", "FILTER timewindow(visit, 1, 1)")
    hub = stack.hub
    assert hub is not None
    # Labels are unique: each run (steady, then burst) its own authorization.
    auth = AuthStore(e.r, e.keys, e.cfg).create(f"hub_{tag}", hub.connection_string)
    create_job(e, f"exits_{tag}", auth.id, [audience.slug])
    time.sleep(1)
    start = e.clock.now_ns() + 3 * NS_PER_S
    pipe = e.r.pipeline(transaction=False)
    flips: dict[str, int] = {}
    for i in range(users):
        uid = f"{tag}{i:07d}"
        flip = flips[uid] = start + int(i * seconds * NS_PER_S / users)
        shard = shard_of(uid, e.cfg.shards)
        p = Profile(
            uid, fields={"user_id": uid}, created=flip - NS_PER_DAY, modified=flip - NS_PER_DAY
        )
        p.occurrences["visit"] = [flip - NS_PER_DAY]
        p.membership[audience.id] = flip - NS_PER_DAY
        p.next_change[audience.id] = flip
        pipe.hset(e.keys.users(shard), uid, p.dumps())
        MemberIndex(e.keys, shard, audience.id).add(pipe, [uid])
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    # The due entries go in through the commit script, fenced by each shard's current version.
    committer = Committer(e.r)
    for shard in range(e.cfg.shards):
        version = as_bytes(e.r.get(e.keys.applied(shard)))
        current = version.decode() if version else ""
        commit = ShardCommit(e.keys, shard, current, current)
        for uid, flip in flips.items():
            if shard_of(uid, e.cfg.shards) == shard:
                commit.due[uid] = (None, ns_to_ms_ceil(flip))
        committer.run(commit)
    e.r.delete(e.keys.lateness)
    meter = CpuMeter(stack.pids())
    samples: list[float] = []
    seen_total = 0
    deadline = time.perf_counter() + seconds + 60
    while time.perf_counter() < deadline:
        raw = e.r.lrange(e.keys.lateness, 0, -1)
        e.r.delete(e.keys.lateness)
        samples += [int(x) for x in raw]
        members = sum(MemberIndex(e.keys, s, audience.id).count(e.r) for s in range(e.cfg.shards))
        seen_total = users - members
        if seen_total >= users:
            break
        time.sleep(0.1)
    samples += [int(x) for x in e.r.lrange(e.keys.lateness, 0, -1)]
    print(
        f"lateness under load: {users:,} windows running out over {seconds:.0f}s "
        f"({users / seconds:,.0f}/s); {seen_total:,} exits committed; "
        f"sampled {len(samples):,}: p50 {percentile(samples, 0.5):.0f} ms, "
        f"p99 {percentile(samples, 0.99):.0f} ms, max {max(samples, default=0):.0f} ms"
    )
    print(f"    {meter.report()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--load-users", type=int, default=200_000)
    parser.add_argument("--load-seconds", type=float, default=10)
    args = parser.parse_args()
    stack = Stack(shards=16, mode="test")  # moves the clock to release a week at once
    try:
        stack.start_hub()
        per_user = schedule_week(stack, args.users)
        print(
            f"memory: {per_user:.1f} bytes of Redis per scheduled user ({args.users:,} users, "
            "11-character ids, due times over a week)"
        )
        rate = release_all(stack, args.users)
        print(f"release: {rate:,.0f} users/s moved from the due index into their shard streams")
        for shard in range(stack.cfg.shards):
            stack.engine.r.delete(stack.engine.keys.events(shard))
        stack.start_workers(2)
        lateness_under_load(stack, 1_000 * int(args.load_seconds), args.load_seconds, "steady")
        lateness_under_load(stack, args.load_users, args.load_seconds, "burst")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
