"""Settings read from the environment, once, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

MODES = ("production", "demo", "test")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the engine needs to know about its deployment.

    ``redis_url`` holds the state; the Celery broker defaults to the same server, whose keys it
    never collides with because every state key starts with ``prefix``. With ``redis_cluster``
    the state lives on a Redis Cluster (``redis_url`` names any node) and the broker must be
    given separately.
    """

    redis_url: str
    broker_url: str
    redis_cluster: bool
    prefix: str
    shards: int
    mode: str
    secret_key: str | None
    drain_batch: int
    gc_threshold: int
    deliver_batch_bytes: int
    allow_emulator: bool = False
    max_future_skew_s: int = 900
    """An event's ``_ts`` may be at most this far ahead of the engine clock."""
    max_profile_fields: int = 1000
    """Fields one profile may hold; an event that would add more is refused."""
    max_profile_bytes: int = 256 * 1024
    """Size of one stored profile; an event that would make it larger is refused."""
    occurrences_kept: int = 32
    """Occurrences kept per event name that no audience counts (those an audience's
    ``timewindow`` counts keep as many as the largest count asks for, at least this many)."""
    task_time_limit_s: int = 60
    """Hard time limit of every task (the soft limit is 3/4 of it)."""
    max_attempts: int = 3
    """Drains of a shard entry that may fail or time out before it is set aside."""
    max_backlog: int = 1_000_000
    """Unapplied entries the shards may hold in all; each shard takes its share (see intake)."""
    dedup_window_s: int = 3600
    """How long an event id (``_id`` / ``messageId``) is remembered; 0 turns dedup off."""
    max_request_events: int = 10_000
    """Events stored by one all-or-nothing write (one /collect request, one ingest() call)."""
    metrics_host: str = "127.0.0.1"
    shards_per_drain: int = 4
    """Shards one drain task works in turns (``workers/pipeline/drain_groups.py``)."""
    drain_kick_interval_ms: int = 50
    """The intake kicks a drain group at most once per this many ms per process (0: at once;
    ``workers/schedule/pacing.py``)."""

    @property
    def testing(self) -> bool:
        return self.mode == "test"

    @property
    def emulator_allowed(self) -> bool:
        """``UseDevelopmentEmulator=true`` sends plain http to any host and port: a way for
        whoever can create an authorization to reach internal services. Only in demo and test
        mode, unless the operator says so (``AUDIENCEHUB_ALLOW_EMULATOR=1``)."""
        return self.mode in ("demo", "test") or self.allow_emulator


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} must be between {low} and {high}")
    return value


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}={raw[:20]!r} must be 1/true/yes or 0/false/no")


def load_settings() -> Settings:
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    mode = os.environ.get("AUDIENCEHUB_MODE", "production")
    if mode not in MODES:
        raise ConfigError(f"AUDIENCEHUB_MODE={mode!r} must be one of {', '.join(MODES)}")
    cluster = os.environ.get("AUDIENCEHUB_REDIS_CLUSTER", "").lower() in ("1", "true", "yes")
    broker_url = os.environ.get("AUDIENCEHUB_BROKER_URL") or ""
    if cluster and not broker_url:
        raise ConfigError(
            "AUDIENCEHUB_REDIS_CLUSTER is on but AUDIENCEHUB_BROKER_URL is not set: Celery's "
            "broker must be a plain Redis (or RabbitMQ); set it to one"
        )
    prefix = os.environ.get("AUDIENCEHUB_PREFIX", "ah")
    if not prefix or any(c in prefix for c in "{}: "):
        raise ConfigError(
            f"AUDIENCEHUB_PREFIX={prefix!r} must be non-empty without braces, ':' or spaces"
        )
    return Settings(
        redis_url=redis_url,
        broker_url=broker_url or redis_url,
        redis_cluster=cluster,
        prefix=prefix,
        shards=_int("AUDIENCEHUB_SHARDS", 16, 1, 4096),
        mode=mode,
        secret_key=os.environ.get("AUDIENCEHUB_SECRET_KEY") or None,
        drain_batch=_int("AUDIENCEHUB_DRAIN_BATCH", 2000, 1, 100_000),
        gc_threshold=_int("AUDIENCEHUB_GC_THRESHOLD", 50_000, 0, 10_000_000),
        deliver_batch_bytes=_int("AUDIENCEHUB_BATCH_BYTES", 1_000_000, 1_000, 16_000_000),
        allow_emulator=_flag("AUDIENCEHUB_ALLOW_EMULATOR"),
        max_future_skew_s=_int("AUDIENCEHUB_MAX_FUTURE_SKEW", 900, 0, 366 * 86_400),
        max_profile_fields=_int("AUDIENCEHUB_MAX_PROFILE_FIELDS", 1000, 10, 100_000),
        max_profile_bytes=_int("AUDIENCEHUB_MAX_PROFILE_BYTES", 256 * 1024, 4096, 64 * 1024**2),
        occurrences_kept=_int("AUDIENCEHUB_OCCURRENCES_KEPT", 32, 1, 100_000),
        task_time_limit_s=_int("AUDIENCEHUB_TASK_TIME_LIMIT", 60, 5, 600),
        max_attempts=_int("AUDIENCEHUB_MAX_ATTEMPTS", 3, 1, 100),
        max_backlog=_int("AUDIENCEHUB_MAX_BACKLOG", 1_000_000, 1, 1_000_000_000),
        dedup_window_s=_int("AUDIENCEHUB_DEDUP_WINDOW_S", 3600, 0, 7 * 86400),
        max_request_events=_int("AUDIENCEHUB_MAX_REQUEST_EVENTS", 10_000, 1, 100_000),
        metrics_host=os.environ.get("AUDIENCEHUB_METRICS_HOST") or "127.0.0.1",
        shards_per_drain=_int("AUDIENCEHUB_SHARDS_PER_DRAIN", 4, 1, 4096),
        drain_kick_interval_ms=_int("AUDIENCEHUB_DRAIN_KICK_INTERVAL_MS", 50, 0, 1000),
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings; tests that change the environment call ``settings.cache_clear``."""
    return load_settings()
