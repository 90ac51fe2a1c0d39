"""One place that turns settings into Redis clients."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import hiredis
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from workers.config import ConfigError, Settings, settings
from workers.keys import Keys

Redis = redis.Redis
AsyncRedis = redis.asyncio.Redis
StreamRows = list[tuple[bytes, dict[bytes, bytes]]]


def stream_rows(raw: object) -> StreamRows:
    """XRANGE's answer, typed: the client returns bytes because ``decode_responses`` is off."""
    return cast(StreamRows, raw)


def next_stream_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (for XTRIM MINID, which keeps ids >= it)."""
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def as_bytes(raw: object) -> bytes | None:
    return cast(bytes | None, raw)


@lru_cache(maxsize=8)
def _client(url: str, cluster: bool) -> Redis:
    if cluster:
        from redis.cluster import RedisCluster

        # Every multi-key operation the engine runs stays in one slot (see workers/keys.py), and
        # the calls it makes exist with the same signatures on RedisCluster.
        return cast(Redis, RedisCluster.from_url(url, decode_responses=False))
    # Ride out a Redis restart or failover: retry on connection errors for about ten seconds.
    retry = Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=10)
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def state_redis(cfg: Settings | None = None) -> Redis:
    """The state store client (bytes in, bytes out; callers decode what they need)."""
    cfg = cfg or settings()
    return _client(cfg.redis_url, cfg.redis_cluster)


class _PackedInC(redis.asyncio.Connection):
    """A TCP connection whose commands hiredis packs: the asyncio client packs them in Python,
    a tenth of a single-event /collect request's CPU (about 20 arguments a call)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str) and " " in head:  # "SCRIPT LOAD": one word an argument
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # what hiredis does not take (a memoryview): the client's own packer
            return super().pack_command(*args)


ASYNC_CONNECTIONS = 32
"""Connections one asyncio client opens at most; more callers wait for one (the group commit
needs one or two: a flood of requests queues for a connection, it does not open a thousand)."""
ASYNC_CONNECTION_WAIT_S = 20
"""How long a caller waits for a free connection before it is told Redis does not answer."""


def async_state_redis(cfg: Settings) -> AsyncRedis:
    """An asyncio client to the state store, for the API's hot path (one Redis server only: a
    cluster goes through the sync client). It retries as the sync client does; a write it
    repeats must be idempotent, as the intake's token makes it."""
    if cfg.redis_cluster:
        raise ConfigError("the asyncio client is for one Redis server, not a Redis Cluster")
    retry = redis.asyncio.retry.Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=10)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        cfg.redis_url,
        max_connections=ASYNC_CONNECTIONS,
        timeout=ASYNC_CONNECTION_WAIT_S,
        connection_class=_PackedInC,  # a rediss:// or unix:// URL keeps its own (the URL's wins)
        decode_responses=False,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return redis.asyncio.Redis.from_pool(pool)  # closing the client closes the pool too


def keys(cfg: Settings | None = None) -> Keys:
    return Keys((cfg or settings()).prefix)


def check_shard_count(r: Redis, cfg: Settings | None = None) -> None:
    """Refuse to run with a shard count other than the one the data was written with.

    Users are placed by ``crc32(user_id) % shards``; a silent change would split users' state.
    """
    cfg = cfg or settings()
    k = Keys(cfg.prefix)
    r.set(k.shards, cfg.shards, nx=True)
    stored = int(r.get(k.shards) or cfg.shards)
    if stored != cfg.shards:
        raise ConfigError(
            f"AUDIENCEHUB_SHARDS={cfg.shards} but the data in {cfg.redis_url} was written with "
            f"{stored} shards; set AUDIENCEHUB_SHARDS={stored}"
        )


_REFUSALS = (
    ("OOM", "Redis is full (maxmemory reached) and refuses writes"),
    ("READONLY", "Redis is a read-only replica and refuses writes"),
    ("MISCONF", "Redis refuses writes because it cannot persist (see its log)"),
    ("LOADING", "Redis is loading its data"),
    ("MASTERDOWN", "Redis has lost its primary and refuses writes"),
    ("NOREPLICAS", "Redis has too few replicas to accept writes"),
    ("BUSY", "Redis is busy running a script"),
    ("TRYAGAIN", "the Redis Cluster is moving slots"),
    ("CLUSTERDOWN", "the Redis Cluster is down"),
)


def write_refusal(exc: BaseException) -> str | None:
    """Why Redis refused (or could not take) a write that may succeed later, or None for a bug.

    redis-py maps some refusals to their own classes (OutOfMemoryError, ReadOnlyError,
    BusyLoadingError) but a refusal raised inside a Lua script arrives as a plain ResponseError
    whose text carries Redis's error code (``-OOM command not allowed…``), so the code is read
    from the text too.
    """
    if isinstance(exc, redis.exceptions.BusyLoadingError):
        return "Redis is loading its data"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "Redis does not answer"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return _REFUSALS[0][1]
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return _REFUSALS[1][1]
    if isinstance(exc, redis.ResponseError):
        text = str(exc)
        for code, reason in _REFUSALS:
            if text.startswith(code) or f"-{code} " in text or f" {code} " in f" {text} ":
                return reason
        if "maxmemory" in text:
            return _REFUSALS[0][1]
    return None
