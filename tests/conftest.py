"""Fixtures named by what they start: a real redis-server, engines on it, real processes.

Every test that starts a process (a fixture below, or its own) carries the ``e2e`` marker, so
``make test-fast`` (``-m "not e2e"``) runs what needs none: see ``pytest_collection_modifyitems``.
Plain helpers shared across folders are in tests/helpers.py; each folder's conftest.py holds what
only its tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from audiencehub.processes import RedisServer
from tests.helpers import SHARDS, SHARDS_PER_DRAIN, RecordingSender
from workers.config import Settings, load_settings
from workers.engine import Engine


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
    monkeypatch.setenv("AUDIENCEHUB_SHARDS_PER_DRAIN", str(SHARDS_PER_DRAIN))
    return load_settings()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def engine(cfg: Settings, sender: RecordingSender) -> Iterator[Engine]:
    r = redis.Redis.from_url(cfg.redis_url)
    yield Engine.create(sender, cfg=cfg, r=r)
    r.close()


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
    return celery_env(
        cfg.redis_url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS=str(SHARDS),
        AUDIENCEHUB_SHARDS_PER_DRAIN=str(SHARDS_PER_DRAIN),
    )


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


# -- which tests start processes ---------------------------------------------------------------
PROCESS_FIXTURES = frozenset({"redis_server", "aof_redis", "hub", "worker", "beat"})
"""Fixtures that start a process (directly, or through the fixtures that use them)."""

PROCESS_FOLDERS = frozenset({"e2e", "chaos", "emulator"})
"""Folders whose every test starts processes of its own."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every test that starts a process: one asking for a process fixture (the
    fixture closure includes what the test's fixtures ask for), one in a folder of process
    tests, or one that says so itself (``@pytest.mark.e2e``)."""
    tests = Path(__file__).parent
    for item in items:
        inside = item.path.is_relative_to(tests)
        folder = item.path.relative_to(tests).parts[0] if inside else ""
        names = set(getattr(item, "fixturenames", ()))
        if folder in PROCESS_FOLDERS or names & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.e2e)
