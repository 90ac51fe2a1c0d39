"""Worker processes tune the garbage collector for batch work (workers/gc_tuning.py)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import pytest
from celery.signals import worker_process_init

from workers import gc_tuning
from workers.config import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_freezes_the_start_up_heap_and_raises_the_young_threshold(
    cfg: Settings, restored_gc: None
) -> None:
    gc_tuning.tune(dataclasses.replace(cfg, gc_threshold=50_000))
    assert gc.get_threshold()[0] == 50_000
    assert gc.get_freeze_count() > 0


def test_zero_keeps_pythons_defaults(cfg: Settings, restored_gc: None) -> None:
    before = gc.get_threshold()
    gc_tuning.tune(dataclasses.replace(cfg, gc_threshold=0))
    assert gc.get_threshold() == before


def test_every_pool_process_tunes_it_once_forked() -> None:
    import tasks.signals

    receivers = [ref() for _, ref in worker_process_init.receivers]
    assert tasks.signals._tune_gc in receivers
