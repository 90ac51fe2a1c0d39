"""In-process figures for /collect's own work on a 100-event batch (not a benchmark to publish):
CPU per request of each step, from parsing the body to the group commit's answer.

    .venv/bin/python bench/_collect_micro.py [--n 2000] [--profile]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
if "--tree" in sys.argv:  # another checkout's code (say main's), this file's figures
    ROOT = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from audiencehub.api.routes_collect import parse_body  # noqa: E402
from workers.engine import Engine  # noqa: E402
from workers.keys import Keys  # noqa: E402
from workers.pipeline import intake  # noqa: E402
from workers.pipeline.group_commit import GroupCommit  # noqa: E402
from workers.redisconn import async_state_redis  # noqa: E402
from workers.schedule.kicks import NoSender  # noqa: E402
from workers.timefmt import NS_PER_MS  # noqa: E402

# isort: split
# After the tree's own modules above: these two put this checkout on sys.path, and anything of
# the project they import is then already bound to --tree's.
from _common import private_redis  # noqa: E402
from collect import event  # noqa: E402

SHARDS = 16
JSON = "application/json"


def cpu_us(fn: Callable[[], object], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--only", default="")
    p.add_argument("--tree", default="", help="measure another checkout's code")
    args = p.parse_args()
    bodies = [
        orjson.dumps([event(b * args.batch + i) for i in range(args.batch)]) for b in range(64)
    ]
    nd = [b"\n".join(orjson.dumps(e) for e in orjson.loads(b)) + b"\n" for b in bodies]
    print(f"tree {Path(sys.modules[Engine.__module__].__file__ or '').parent.parent}")
    with private_redis("micro", SHARDS) as (cfg, r):
        r.set(Keys(cfg.prefix).shards, SHARDS)
        engine = Engine.create(NoSender(), cfg=cfg, r=r)
        i = [0]

        def body() -> bytes:
            i[0] += 1
            return bodies[i[0] % len(bodies)]

        async def run() -> None:
            group = GroupCommit(engine, async_state_redis(cfg), None)  # type: ignore[arg-type]
            ing = group.ingestor
            now = engine.clock.now_ns()

            def prepare(media: str = "application/json", src: list[bytes] = bodies) -> object:
                b = src[i[0] % len(src)]
                i[0] += 1
                _, valid = ing.check(parse_body(b, media), now)
                if not hasattr(intake, "Row"):  # a tree before the intake took events as they are
                    from workers.pipeline.intake import IntakeItem

                    valid = [IntakeItem(ev.user_id, ev.entry, ev.event_id) for ev in valid]  # type: ignore[misc]
                return ing.intake.call(valid, now // NS_PER_MS)

            steps: dict[str, Callable[[], object]] = {
                "orjson.loads": lambda: orjson.loads(body()),
                "parse_body": lambda: parse_body(body(), "application/json"),
                "parse+check": lambda: ing.check(parse_body(body(), "application/json"), now),
                "prepare (json)": prepare,
                "prepare (ndjson)": lambda: prepare("application/x-ndjson", nd),
            }
            for name, fn in steps.items():
                if args.only and args.only not in name:
                    continue
                fn()
                print(f"  {name:<20} {cpu_us(fn, args.n):8.1f} us CPU/request")
            if not args.only or "ingest" in args.only:
                b0 = bodies[0]
                for _ in range(50):
                    await group.ingest(lambda: parse_body(b0, "application/json"))
                start = time.process_time()
                ru0 = resource.getrusage(resource.RUSAGE_SELF)
                for k in range(args.n):
                    await group.ingest(partial(parse_body, bodies[k % len(bodies)], JSON))
                us = (time.process_time() - start) / args.n * 1e6
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
                sys_us = (ru1.ru_stime - ru0.ru_stime) / args.n * 1e6
                print(
                    f"  {'group.ingest':<20} {us:8.1f} us CPU/request (this process; "
                    f"{sys_us:.0f} us of it in the kernel)"
                )
            await group.r.aclose()

        uvloop.run(run())  # as the API runs


if __name__ == "__main__":
    main()
