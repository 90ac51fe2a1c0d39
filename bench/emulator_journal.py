"""What ``--data DIR`` costs the hub stand-in: REST intake with and without it, and a restart.

Runs ``bench/emulator_intake.py``'s ``measure()`` (1 client, ~1 MB batches of ~400-byte JSON
bodies) against a stand-in in memory, then one with ``--data`` in a fresh directory, then in
memory again (the baseline on both sides of the figure, since the machine is shared). Then it
restarts the ``--data`` stand-in and times how long it takes to be ready with what it holds.
Prints figures; asserts nothing.

    .venv/bin/python bench/emulator_journal.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emulator_intake import IntakeResult, measure  # noqa: E402

from audiencehub.processes import HubEmulator  # noqa: E402
from workers.delivery.eventhub.connstr import parse_connection_string  # noqa: E402


def _hub(workdir: Path, data: Path | None) -> HubEmulator:
    extra = ["--partitions", "4", "--log-level", "warning", "--max-events", "5000000"]
    if data is not None:
        extra += ["--data", str(data)]
    hub = HubEmulator(workdir, hub="bench", extra=extra)
    hub.start()
    return hub


def _run(workdir: Path, data: Path | None, seconds: float) -> tuple[IntakeResult, int]:
    hub = _hub(workdir, data)
    try:
        result = measure(parse_connection_string(hub.connection_string), 1, seconds)
        held = requests.get(f"{hub.base_url}/_emulator/stats", timeout=10).json()["events"]
    finally:
        hub.stop()
    return result, int(held)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="audiencehub-bench-journal-"))
    data = workdir / "data"
    try:
        before, _ = _run(workdir, None, args.seconds)
        on_disk, held = _run(workdir, data, args.seconds)
        after, _ = _run(workdir, None, args.seconds)
        size = sum(p.stat().st_size for p in data.rglob("*.log"))
        start = time.perf_counter()
        hub = _hub(workdir, data)
        ready = time.perf_counter() - start
        hub.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    memory = (before.events_per_s + after.events_per_s) / 2
    print("hub stand-in intake, in memory and with --data (1 client, ~1 MB REST batches)")
    print(f"in memory:   {before.line()}")
    print(f"with --data: {on_disk.line()}")
    print(f"in memory:   {after.line()}")
    print(
        f"  → --data keeps {on_disk.events_per_s / memory:.0%} of the in-memory rate "
        f"({1e6 / on_disk.events_per_s - 1e6 / memory:.1f} µs more per event); "
        f"{size / held:.0f} bytes on disk per event"
    )
    print(
        f"restart with {held:,} events on disk: ready in {ready:.1f} s "
        f"({ready / held * 1e6:.0f} µs per event)"
    )


if __name__ == "__main__":
    main()
