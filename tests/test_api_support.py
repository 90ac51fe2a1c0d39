"""Helpers shared by the API tests (no tests here): the API as a real uvicorn process.

The API runs as ``python -m audiencehub.cli.api`` in its own process on a free port, exactly as
``audiencehub api`` runs it, against the session's redis-server; every response a test receives
is kept so a test can check that no secret ever appeared in one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from audiencehub.processes import Managed, RedisServer, celery_env, free_port, wait_for
from workers.config import Settings, load_settings
from workers.engine import Engine

TOKEN = "test-token-0123456789abcdef"
SHARDS = 4


class ApiProcess(Managed):
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "audiencehub.cli.api", "--port", str(self.port)]
        super().__init__("api", argv, workdir, env)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, stdout: int | None = None) -> None:
        super().start(stdout)

        def healthy() -> bool:
            if not self.running:
                raise RuntimeError(f"api exited early:\n{self.log()[-3000:]}")
            with contextlib.suppress(requests.ConnectionError):
                return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
            return False

        wait_for(healthy, timeout=30, what="the API to answer /healthz")


class Client:
    """requests with the token, remembering every response body for the secret checks."""

    def __init__(self, base_url: str, token: str | None = TOKEN) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.seen: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        resp = self.session.request(method, self.base_url + path, **kwargs)
        self.seen.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
        return resp

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@contextlib.contextmanager
def api_process(
    redis_server: RedisServer, workdir: Path, prefix: str, **extra: str
) -> Iterator[tuple[ApiProcess, Settings]]:
    """Flush the session's Redis, start the API with test settings, yield it and its settings."""
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    env = celery_env(
        redis_server.url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS=str(SHARDS),
        AUDIENCEHUB_PREFIX=prefix,
        AUDIENCEHUB_API_TOKENS=f"another-token-abcdefghijkl,{TOKEN}",
        **extra,
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in ("REDIS_URL", "AUDIENCEHUB_MODE", "AUDIENCEHUB_SHARDS", "AUDIENCEHUB_PREFIX"):
            mp.setenv(name, env[name])
        cfg = load_settings()
    proc = ApiProcess(workdir, env)
    proc.start()
    try:
        yield proc, cfg
    finally:
        proc.stop()


def engine_for(cfg: Settings) -> Engine:
    """An engine on the API's Redis and prefix, for setting up and checking state directly."""
    from tests.conftest import RecordingSender

    return Engine.create(RecordingSender(), cfg=cfg, r=redis.Redis.from_url(cfg.redis_url))
