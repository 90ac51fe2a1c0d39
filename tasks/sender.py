"""The engine's TaskSender over Celery: tasks by name, with ids as args and nothing else."""

from __future__ import annotations

from celery import Celery


class CeleryTaskSender:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def drain(self, shard: int) -> None:
        """The drain of ``shard``'s drain group (the kicker passes the group's lead)."""
        self._app.send_task("audiencehub.drain_shard", args=[shard])

    def deliver(self, job: str) -> None:
        self._app.send_task("audiencehub.deliver", args=[job])

    def backfill(self, job: str, shard: int) -> None:
        self._app.send_task("audiencehub.backfill", args=[job, shard])
