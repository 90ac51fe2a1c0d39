"""Fixtures for the FilterQL tests: the profiles and included audiences the tables run against.

The profiles themselves are built in helpers.py, which property tests (that cannot take
function-scoped fixtures) call directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.filterql import helpers
from workers.engine import Engine
from workers.filterql import Filter
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.profile import Profile


@pytest.fixture
def customer() -> Profile:
    return helpers.customer()


@pytest.fixture
def yoda() -> Profile:
    return helpers.yoda()


@pytest.fixture
def qlbridge_includes() -> dict[str, Filter]:
    return helpers.qlbridge_includes()


@pytest.fixture
def table_includes() -> dict[str, Filter]:
    """The audiences the audiencehub table (tables.CASES) INCLUDEs."""
    return helpers.table_includes()


@pytest.fixture
def drain_all() -> Callable[[Engine], None]:
    """Drain every shard of an in-process engine once (what the drain task does per shard)."""

    def drain(engine: Engine) -> None:
        drainer = ShardDrainer(engine)
        for shard in range(engine.cfg.shards):
            drainer.drain(shard)

    return drain
