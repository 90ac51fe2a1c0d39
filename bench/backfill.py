"""Existing Users backfill: members per second from Redis to the hub through real workers.

Writes N members straight into the state (profiles and member indexes, as drains would have),
starts one worker (2 processes) and beat, creates a job with Existing Users and times until the
hub stand-in holds every member. In the same run, a naive export (one Celery task and one HTTP
request per user) exports a sample of users for the ratio. Prints figures; asserts nothing.

    .venv/bin/python bench/backfill.py [--members 200000] [--naive 3000]
"""

from __future__ import annotations

import argparse
import time

from _common import ROOT, CpuMeter, Stack, peak_rss_mb

from audiencehub.processes import Managed
from workers.audiences.store import AudienceStore
from workers.jobs.auths import AuthStore
from workers.jobs.backfill import Backfills
from workers.jobs.setup import create_job
from workers.keys import shard_of
from workers.pipeline.member_index import MemberIndex
from workers.pipeline.profile import Profile


def populate(stack: Stack, members: int) -> tuple[str, str]:
    e = stack.engine
    store = AudienceStore(e.r, e.keys)
    vip = store.create("vip", 'FILTER tier == "vip"')
    active = store.create("active", "FILTER visits >= 3")
    now = e.clock.now_ns()
    codes = e.registry.get().codes  # audiences stored as numbers, as a drain writes them
    pipe = e.r.pipeline(transaction=False)
    for i in range(members):
        uid = f"user{i:07d}"
        shard = shard_of(uid, e.cfg.shards)
        # Times of its own for each user, as drains record them (strictly increasing instants):
        # one shared time would let every time-formatting cache hit, which no real state does.
        p = Profile(uid, created=now - 10**12 + 7919 * i, modified=now - 10**9 + 31 * i)
        p.fields = {"user_id": uid, "email": f"{uid}@example.com", "tier": "vip", "visits": i % 7}
        p.membership[vip.id] = now - 10**12 + 7919 * i + 13
        MemberIndex(e.keys, shard, vip.id).add(pipe, [uid])
        if i % 7 >= 3:
            p.membership[active.id] = now - 10**11 + 17 * i
            MemberIndex(e.keys, shard, active.id).add(pipe, [uid])
        pipe.hset(e.keys.users(shard), uid, p.dumps(codes))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    return vip.id, active.id


def wait_hub(stack: Stack, count: int, timeout: float) -> float:
    start = time.perf_counter()
    while stack.hub_count() < count:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"hub has {stack.hub_count()} of {count}")
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--naive", type=int, default=3_000)
    args = parser.parse_args()
    stack = Stack(shards=16)
    try:
        hub = stack.start_hub()
        t = time.perf_counter()
        populate(stack, args.members)
        print(f"populated {args.members:,} members in {time.perf_counter() - t:.1f}s")
        e = stack.engine
        auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)

        # -- naive: one task and one request per user ------------------------------------------
        naive_env = {**stack.env, "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"}
        naive = Managed(
            "naive-worker",
            [
                "python3",
                "-m",
                "celery",
                "-A",
                "_naive_tasks",
                "worker",
                "-l",
                "WARNING",
                "-c",
                "2",
                "-Q",
                "celery",
                "--without-gossip",
                "--without-mingle",
            ],
            stack.workdir,
            naive_env,
        )
        naive.argv[0] = __import__("sys").executable
        naive.start()
        naive.wait_log("", timeout=5)
        time.sleep(3)
        naive_job = create_job(e, "naive", auth.id, ["vip", "active"])
        from _naive_tasks import app as naive_app

        t = time.perf_counter()
        for i in range(args.naive):
            naive_app.send_task(
                "bench.naive_export", args=[naive_job.id, f"user{i:07d}"], queue="celery"
            )
        naive_s = wait_hub(stack, args.naive, 600)
        naive.stop()
        naive_rate = args.naive / naive_s
        print(
            f"naive export:   {args.naive:>8,} users in {naive_s:6.2f}s = {naive_rate:>9,.0f} users/s"
        )

        # -- the real backfill -----------------------------------------------------------------
        stack.start_workers(int(__import__("os").environ.get("BENCH_PROCS", "2")))
        before = stack.hub_count()
        meter = CpuMeter(stack.pids())
        job = create_job(e, "backfill", auth.id, ["vip", "active"], existing_users=True)
        took = wait_hub(stack, before + args.members, 900)
        cpu = meter.report()
        rate = args.members / took
        worker_pid = stack.procs[0].proc.pid if stack.procs[0].proc else 0
        print(
            f"backfill:       {args.members:>8,} users in {took:6.2f}s = {rate:>9,.0f} users/s "
            f"({rate / naive_rate:,.0f}x naive)"
        )
        print(cpu)
        print(f"peak worker RSS: {peak_rss_mb(worker_pid):.0f} MB (largest worker process)")
        done = Backfills(e).progress(job.id)
        print(f"backfill progress record: {done[0]:,}/{done[1]:,}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
