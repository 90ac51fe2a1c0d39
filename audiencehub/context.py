"""The engine as the interfaces (CLI, Python API, demo) use it: wired to Celery for kicks."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.config import Settings, settings
from workers.engine import Engine

PROBE_TIMEOUT_S = 3.0


def probe(cfg: Settings) -> None:
    """One quick PING before anything else: a Redis that is not there at all is reported at once
    (redis.ConnectionError, which the CLI turns into one line) instead of after the engine
    client's ten seconds of retries, which are meant for riding out a restart, not a typo."""
    if cfg.redis_cluster:
        return  # the cluster client finds its nodes itself
    client = redis.Redis.from_url(
        cfg.redis_url,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    finally:
        client.close()


@lru_cache(maxsize=1)
def engine() -> Engine:
    from tasks.app import app
    from tasks.sender import CeleryTaskSender

    probe(settings())
    return Engine.create(CeleryTaskSender(app))
