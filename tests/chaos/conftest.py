"""Chaos runs get their own Redis with AOF on, so it can be restarted mid-run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audiencehub.processes import RedisServer


@pytest.fixture
def aof_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "aof-redis", appendonly=True)
    (workdir / "aof-redis").mkdir(parents=True, exist_ok=True)
    server.start()
    yield server
    server.stop()
