"""Fixtures named by what they start: a real redis-server, engines on it, real processes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from audiencehub.processes import RedisServer
from workers.config import Settings, load_settings
from workers.engine import Engine

SHARDS = 4


class RecordingSender:
    """A TaskSender that remembers what would have been queued, for in-process engine tests."""

    def __init__(self) -> None:
        self.drains: list[int] = []
        self.delivers: list[str] = []
        self.backfills: list[tuple[str, int]] = []

    def drain(self, shard: int) -> None:
        self.drains.append(shard)

    def deliver(self, job: str) -> None:
        self.delivers.append(job)

    def backfill(self, job: str, shard: int) -> None:
        self.backfills.append((job, shard))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    return redis_server.url


@pytest.fixture
def cfg(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AUDIENCEHUB_MODE", "test")
    monkeypatch.setenv("AUDIENCEHUB_SHARDS", str(SHARDS))
    return load_settings()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def engine(cfg: Settings, sender: RecordingSender) -> Iterator[Engine]:
    r = redis.Redis.from_url(cfg.redis_url)
    yield Engine.create(sender, cfg=cfg, r=r)
    r.close()


def with_settings(cfg: Settings, **changes: object) -> Settings:
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


# -- real processes ---------------------------------------------------------------------------
from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator, celery_env  # noqa: E402


@pytest.fixture
def hub(workdir: Path) -> Iterator[HubEmulator]:
    emulator = HubEmulator(workdir)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def proc_env(cfg: Settings) -> dict[str, str]:
    """Environment for worker and beat processes: same Redis, test mode, same shard count."""
    return celery_env(cfg.redis_url, AUDIENCEHUB_MODE="test", AUDIENCEHUB_SHARDS=str(SHARDS))


@pytest.fixture
def live_engine(cfg: Settings) -> Iterator[Engine]:
    """An in-process engine whose kicks go to the real broker, like the CLI's."""
    from tasks.app import make_app
    from tasks.sender import CeleryTaskSender

    r = redis.Redis.from_url(cfg.redis_url)
    yield Engine.create(CeleryTaskSender(make_app(cfg.redis_url)), cfg=cfg, r=r)
    r.close()


@pytest.fixture
def worker(workdir: Path, proc_env: dict[str, str]) -> Iterator[CeleryWorker]:
    proc = CeleryWorker(workdir, proc_env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def beat(workdir: Path, proc_env: dict[str, str]) -> Iterator[CeleryBeat]:
    proc = CeleryBeat(workdir, proc_env)
    proc.start()
    yield proc
    proc.stop()
