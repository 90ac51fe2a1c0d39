"""The Celery app and its tasks: thin wrappers over ``workers``. ``celery -A tasks worker|beat``."""

from tasks import backfill, deliver, drain, ingest, schedule, signals  # noqa: F401  (registers)
from tasks.app import app

__all__ = ["app"]
