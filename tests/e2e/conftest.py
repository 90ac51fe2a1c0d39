"""Fixtures for the end-to-end tests: real redis-server, hub stand-in, celery worker(s) and beat.

The one-worker ``worker`` and ``beat`` come from tests/conftest.py; the helpers that wait on a
signal instead of sleeping (``settle``) and read what the hub received are in helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audiencehub.processes import CeleryWorker


@pytest.fixture
def worker2(workdir: Path, proc_env: dict[str, str]) -> Iterator[CeleryWorker]:
    """One worker with two pool processes: backfill and live drains run side by side."""
    proc = CeleryWorker(workdir, proc_env, concurrency=2)
    proc.start()
    yield proc
    proc.stop()
