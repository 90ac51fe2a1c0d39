"""Per-process engine objects, built lazily after fork and closed on shutdown.

A Redis connection pool, a sender's HTTP session or SDK client must not cross a fork, so nothing
here exists until a task first needs it in its own process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from celery.signals import worker_process_shutdown

from tasks.app import app
from tasks.sender import CeleryTaskSender
from workers.delivery.deliver import Deliverer, SenderPool
from workers.engine import Engine
from workers.jobs.backfill import Backfills
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor
from workers.schedule.tick import Ticker


@dataclass
class Runtime:
    pid: int

    @cached_property
    def engine(self) -> Engine:
        return Engine.create(CeleryTaskSender(app))

    @cached_property
    def drainer(self) -> ShardDrainer:
        return ShardDrainer(self.engine)

    @cached_property
    def senders(self) -> SenderPool:
        return SenderPool(self.engine)

    @cached_property
    def deliverer(self) -> Deliverer:
        return Deliverer(self.engine, self.senders.get)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.engine)

    @cached_property
    def backfills(self) -> Backfills:
        return Backfills(self.engine)

    @cached_property
    def ticker(self) -> Ticker:
        return Ticker(self.engine)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = Runtime(os.getpid())
    return _runtime


@worker_process_shutdown.connect
def _close(**_: object) -> None:
    if _runtime is None:
        return
    if "engine" in _runtime.__dict__ and _runtime.engine.kicker.pacer is not None:
        _runtime.engine.kicker.pacer.flush()  # the ingest_events task's held-back kicks
    if "senders" in _runtime.__dict__:
        _runtime.senders.close()
