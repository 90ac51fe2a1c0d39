"""The hub stand-in's CPU per message received, old tree against new, same sitting.

Posts pre-built REST batches shaped like the deliverers' (``encode_item``: ~400-byte JSON body,
an idempotency property, the user id as PartitionKey; each batch to the partition its keys hash
to, over 100,000 users) to a stand-in started from each ``--trees`` entry in turn, and reads the
stand-in's own CPU time (utime + stime from /proc) around the posting. The client's CPU is not
counted, so the figure is the stand-in's alone, whatever else the machine is doing (up to the
cache and frequency noise a shared machine adds).

    .venv/bin/python bench/_hub_cpu.py [--trees /work/base-hub,/work/hub] [--rounds 3]
        [--messages 60000] [--batches 20,250,1600] [--partitions 4]

Not part of ``make bench`` (leading underscore): a tool for comparing stand-in changes.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import sample_message  # noqa: E402

from workers.delivery.eventhub.connstr import parse_connection_string  # noqa: E402
from workers.delivery.eventhub.partitions import partition_for_key  # noqa: E402
from workers.delivery.eventhub.sas import make_token  # noqa: E402

USERS = 100_000
CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"


def build(batch: int, partitions: int, seed: int, count: int) -> list[tuple[str, bytes, int]]:
    """``count`` batches of ``batch`` messages, each to one partition: (partition, body, n)."""
    rng = random.Random(seed)
    ids = [str(i) for i in range(partitions)]
    groups: dict[str, list[bytes]] = {pid: [] for pid in ids}
    out: list[tuple[str, bytes, int]] = []
    n = 0
    while len(out) < count:
        user = f"user{rng.randrange(USERS):06d}"
        pid = partition_for_key(user, ids)
        item = orjson.dumps(
            {
                "Body": sample_message(rng, user, n).decode(),
                "UserProperties": {"idempotency_key": f"{rng.getrandbits(96):024x}"},
                "BrokerProperties": {"PartitionKey": user},
            }
        )
        n += 1
        group = groups[pid]
        group.append(item)
        if len(group) == batch:
            out.append((pid, b"[" + b",".join(group) + b"]", batch))
            groups[pid] = []
    return out


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(tree: str, partitions: int) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ, PYTHONPATH=tree)
    argv = [
        sys.executable,
        "-m",
        "audiencehub.emulator",
        "--port",
        "0",
        "--hub",
        "bench",
        "--partitions",
        str(partitions),
        "--max-events",
        "5000000",
        "--when-full",
        "drop-oldest",
    ]
    proc = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("Endpoint="):
        proc.kill()
        raise RuntimeError(f"stand-in from {tree} did not start: {line!r}")
    return proc, line


def run(tree: str, batches: list[tuple[str, bytes, int]], partitions: int) -> tuple[float, int]:
    """The stand-in's CPU seconds for posting every batch once, and the messages posted."""
    proc, connstr = start(tree, partitions)
    try:
        conn = parse_connection_string(connstr)
        token = make_token(conn.resource_uri, conn.key_name, conn.key, int(time.time()) + 3600)
        base = conn.rest_base
        pool = urllib3.HTTPConnectionPool(
            base.split("//", 1)[1].split("/")[0].split(":")[0],
            int(base.split("//", 1)[1].split("/")[0].split(":")[1]),
            maxsize=1,
        )
        path = "/" + base.split("//", 1)[1].split("/", 1)[1]
        headers = {"Authorization": token, "Content-Type": CONTENT_TYPE}
        # Warm up: imports, the token cache, the first allocations.
        for pid, body, _ in batches[:3]:
            pool.request("POST", f"{path}/partitions/{pid}/messages", body=body, headers=headers)
        before = cpu_s(proc.pid)
        sent = 0
        for pid, body, n in batches:
            resp = pool.request(
                "POST",
                f"{path}/partitions/{pid}/messages?timeout=60&api-version=2014-01",
                body=body,
                headers=headers,
            )
            if resp.status != 201:
                raise RuntimeError(f"{tree}: {resp.status} {resp.data[:300]!r}")
            sent += n
        used = cpu_s(proc.pid) - before
        return used, sent
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=f"/work/base-hub,{ROOT}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--batches", default="20,250,1600")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    trees = args.trees.split(",")
    for size in (int(s) for s in args.batches.split(",")):
        batches = build(size, args.partitions, 7, max(4, args.messages // size))
        per: dict[str, list[float]] = {t: [] for t in trees}
        for _ in range(args.rounds):
            for tree in trees:
                used, sent = run(tree, batches, args.partitions)
                per[tree].append(used / sent * 1e6)
        for tree in trees:
            us = sorted(per[tree])
            print(
                f"batch {size:5d}  {tree:24s}  hub CPU per message: "
                f"{us[0]:5.2f} - {us[-1]:5.2f} us (median {us[len(us) // 2]:5.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
