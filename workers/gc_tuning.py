"""The cyclic garbage collector, tuned for a process that works through batches.

A drain batch allocates hundreds of thousands of short-lived containers (entries, profiles,
transitions, message dicts) that reference counting frees at once. With CPython's default
threshold (a young collection every 700 net allocations) the collector runs hundreds of times
per batch and every tenth young collection also walks the middle generation, and every so often
a full collection walks every long-lived object of the process (the Celery app, compiled
audiences, connection pools). Measured in-process (``bench/_profile_drain.py``, 30,000 events,
best of 3): 58-69 µs of CPU per event at the default, 53-54 µs with a young threshold of 50,000;
the collector disabled gives the same, so the rest is not the collector's.

``tune()`` freezes what the process holds when it starts working (those objects are never
garbage: full collections skip them) and raises the young threshold. Cycles are still collected;
they wait for 50,000 allocations instead of 700, a few MB at most. AUDIENCEHUB_GC_THRESHOLD=0
keeps Python's defaults.
"""

from __future__ import annotations

import gc

from workers.config import Settings


def tune(cfg: Settings) -> None:
    """Freeze the start-up heap and set the young generation's threshold (0: leave both)."""
    if cfg.gc_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(cfg.gc_threshold, 20, 100)
