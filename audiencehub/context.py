"""The engine as the interfaces (CLI, Python API, demo) use it: wired to Celery for kicks."""

from __future__ import annotations

from functools import lru_cache

from workers.engine import Engine


@lru_cache(maxsize=1)
def engine() -> Engine:
    from tasks.app import app
    from tasks.sender import CeleryTaskSender

    return Engine.create(CeleryTaskSender(app))
