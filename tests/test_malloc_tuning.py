"""workers/malloc_tuning.py: a page's worth of buffers reuses memory once tuned, and an
operator's own thresholds are kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers import malloc_tuning

PAGES = """
import resource, sys
from workers.malloc_tuning import tune
tuned = tune() if sys.argv[1] == "tune" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def page(i):
    parts = [bytes([i % 256]) * 700 for _ in range(2000)]  # a backfill page's bodies
    blob = b"".join(parts)  # its command argument
    return len(bytes(bytearray(blob)))  # and the client's copy of it
page(0)
before = faults()
for i in range(50):
    page(i)
print(tuned, (faults() - before) / 50)
"""


def _faults_per_page(mode: str) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PAGES, mode], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_pages_buffers_land_on_memory_already_mapped_once_tuned() -> None:
    untuned, before = _faults_per_page("leave")
    tuned, after = _faults_per_page("tune")
    assert (untuned, tuned) == ("None", "True")
    assert after < 10 < 100 < before  # measured: ~660 page faults a page untuned, ~0 tuned


def test_the_operators_own_thresholds_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert malloc_tuning.tune() is False
