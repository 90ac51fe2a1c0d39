"""Fixtures for the hub stand-in tests: one stand-in process per module, clean before each test.

A module names the stand-in's command line in ``HUB_ARGS``; ``hub`` starts it once for the
module, and each of that module's tests starts with no events and no fault plan. The process
(``helpers.HubProcess``) and the raw AMQP peer (``rawpeer.RawPeer``, which consumer tests
subclass) are plain classes in their own modules.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator.helpers import HubProcess, started


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest) -> Iterator[HubProcess]:
    """The module's stand-in, started with its ``HUB_ARGS``."""
    args = getattr(request.module, "HUB_ARGS", None)
    if args is None:
        pytest.fail(f"{request.module.__name__} asks for the hub but sets no HUB_ARGS")
    yield from started(*args)


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    """No events and no fault plan before each test of a module with a stand-in."""
    if hasattr(request.module, "HUB_ARGS"):
        hub: HubProcess = request.getfixturevalue("hub")
        hub.reset()
