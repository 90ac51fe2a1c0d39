"""The Celery application, configured from ``celeryconfig``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from workers.redisconn import write_refusal

log = logging.getLogger("audiencehub.tasks")


class RidesOutRedis(Task):  # type: ignore[misc]
    """Every task's base: when Redis refuses a write (full, read-only, loading) or does not
    answer, the task ends with a warning instead of a traceback, and the worker goes on.

    Most tasks are wake-ups for work that is already durable (a shard to drain, an outbox to
    send, users due): beat's sweep and tick ask again within seconds, so the task just ends.
    A task whose message carries the work itself (``keep_on_refusal``: ingest_events) is
    rejected with requeue instead, so the message is kept (see tasks/ingest.py).
    """

    keep_on_refusal = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except redis.RedisError as exc:
            reason = write_refusal(exc)
            if reason is None:
                raise
            if self.keep_on_refusal:
                log.error("%s: %s; message requeued", self.name, reason)
                raise Reject(reason, requeue=True) from None
            log.warning("%s: %s; it runs again when beat asks", self.name, reason)
            return {"refused": reason}


def make_app(broker_url: str | None = None) -> Celery:
    """An app with every setting from ``celeryconfig``; ``broker_url`` overrides the broker only
    (for a client that talks to a Redis chosen at run time, such as a test's own server)."""
    application = Celery("audiencehub", task_cls=RidesOutRedis)
    application.config_from_object("celeryconfig")
    if broker_url:
        application.conf.broker_url = broker_url
    return application


app = make_app()
