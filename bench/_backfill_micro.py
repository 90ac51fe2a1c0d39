"""An Existing Users backfill's two halves in one process: CPU per member of the pages and of the
delivery, apart, without Celery in between.

bench/backfill.py times the whole flow through real workers, where the machine's other load
moves the figures more than most changes do; this measures each half with ``process_time`` (its
own threads included) and counts the page faults each takes, and the stand-in's CPU per message.
Same state as bench/backfill.py (its ``populate``). To compare trees, run each tree's copy:

    PYTHONPATH=TREE .venv/bin/python TREE/bench/_backfill_micro.py [--members 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from _common import Stack
from backfill import populate

from workers.delivery.deliver import Deliverer, SenderPool
from workers.gc_tuning import tune as tune_gc
from workers.jobs.auths import AuthStore
from workers.jobs.backfill import Backfills
from workers.jobs.setup import create_job
from workers.malloc_tuning import tune as tune_malloc


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def process_cpu(pid: int) -> float:
    """CPU seconds of another process (the stand-in)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    stack = Stack(shards=16)
    try:
        hub = stack.start_hub()
        populate(stack, args.members)
        tune_gc(stack.cfg)  # as a worker process tunes itself (tasks/signals.py)
        tune_malloc()
        e = stack.engine
        auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
        job = create_job(e, "backfill", auth.id, ["vip", "active"], existing_users=True)
        backfills, pool = Backfills(e), SenderPool(e)
        deliverer = Deliverer(e, pool.get)
        hub_pid = hub.proc.pid if hub.proc else 0
        page_s = deliver_s = hub_s = 0.0
        page_faults = deliver_faults = written = sent = 0
        open_shards = set(range(e.cfg.shards))
        while open_shards or deliverer.backlog(job.id):
            f, t = faults(), time.process_time()
            for shard in sorted(open_shards):
                while True:  # until done, or throttled by the outbox's backlog
                    report = backfills.page(job.id, shard)
                    written += report.written
                    if report.done:
                        open_shards.discard(shard)
                    if report.done or report.throttled:
                        break
            page_s += time.process_time() - t
            page_faults += faults() - f
            f, t, h = faults(), time.process_time(), process_cpu(hub_pid)
            while deliverer.backlog(job.id):
                sent += deliverer.deliver(job.id, budget_s=5.0).sent
            deliver_s += time.process_time() - t
            deliver_faults += faults() - f
            hub_s += process_cpu(hub_pid) - h
        deliverer.close()
        pool.close()
        n = args.members
        assert written == sent == n, (written, sent, n)
        print(
            f"page {1e6 * page_s / n:.2f} us/member ({1000 * page_faults / n:.0f} page faults "
            f"per 1,000), delivery {1e6 * deliver_s / n:.2f} us/member "
            f"({1000 * deliver_faults / n:.0f}), stand-in {1e6 * hub_s / n:.2f} us/message"
        )
    finally:
        stack.close()


if __name__ == "__main__":
    main()
