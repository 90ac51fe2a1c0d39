"""The whole pipeline offline: an export job sends, an unmodified SDK consumer reads it back.

Real redis-server, celery worker, the hub stand-in over real sockets, and the azure-eventhub
SDK's ``EventHubConsumerClient`` reading every partition from the start: it must get exactly
what the job sent (body bytes, partition key, the ``idempotency_key`` property), in each
partition's order; a second run from the sequence numbers the first stored reads only what
came after.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from azure.eventhub import EventData

from audiencehub.processes import CeleryWorker, HubEmulator
from tests.e2e.helpers import AUDIENCES, changes_by_user, model, wait_messages, workload
from tests.emulator.helpers import consume
from tests.helpers import make_job
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.pipeline.ingest import Ingestor, list_items
from workers.schedule.idle import wait_idle

pytestmark = pytest.mark.e2e

FILTERS = {"tier_a": 'FILTER tier == "a"', "big": "FILTER value >= 50"}


def _as_sent(event: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """What the hub received, as a consumer should see it: body, partition key, idempotency."""
    return (
        event["body"].encode(),
        event["partition_key"].encode(),
        event["user_properties"]["idempotency_key"].encode(),
    )


def _body(event: EventData) -> bytes:
    """The data body's bytes exactly (the SDK hands out its data sections)."""
    body = event.body
    if isinstance(body, bytes):
        return body
    assert isinstance(body, Iterable) and not isinstance(body, str | dict)
    return b"".join(bytes(part) for part in body)


def _as_read(event: EventData) -> tuple[bytes, bytes, bytes]:
    key = event.partition_key
    assert isinstance(key, bytes)
    return _body(event), key, event.properties[b"idempotency_key"]


def _by_partition_held(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in events:
        out[event["partition_id"]].append((event["sequence_number"], *_as_sent(event)))
    return dict(out)


def _by_partition_read(
    events: list[EventData], held: list[dict[str, Any]]
) -> dict[str, list[tuple[Any, ...]]]:
    """The consumer's events per partition (known from the readback by sequence number)."""
    where = {
        (e["sequence_number"], e["user_properties"]["idempotency_key"]): e["partition_id"]
        for e in held
    }
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in events:
        body, key, idem = _as_read(event)
        pid = where[(event.sequence_number, idem.decode())]
        out[pid].append((event.sequence_number, body, key, idem))
    return dict(out)


def _expected_count(changes: dict[str, list[Any]]) -> int:
    return sum(len(messages) for messages in changes.values())


def test_an_sdk_consumer_reads_exactly_what_the_job_sent_and_resumes_from_its_checkpoint(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker
) -> None:
    store = AudienceStore(live_engine.r, live_engine.keys)
    for slug in AUDIENCES:
        store.create(slug, FILTERS[slug])
    make_job(live_engine, hub, list(AUDIENCES))
    first_round = workload(users=40, rounds=2, seed=5)
    Ingestor(live_engine).ingest(list_items(first_round))
    expected = model(first_round)
    held = wait_messages(hub, _expected_count(expected))
    assert wait_idle(live_engine, 60).idle
    held = hub.events()
    assert changes_by_user(held) == expected  # the job sent the right enters and exits

    got = consume(hub.connection_string, len(held), starting_position="-1")
    assert len(got) == len(held)
    assert _by_partition_read(got, held) == _by_partition_held(held)  # same bytes, same order
    for event in got:
        body = orjson.loads(_body(event))
        assert event.partition_key == body["data"]["user_id"].encode()
    # What a reader keeps as its checkpoint: the last sequence number it handled per partition.
    where = {
        (e["sequence_number"], e["user_properties"]["idempotency_key"]): e["partition_id"]
        for e in held
    }
    checkpoint: dict[str, Any] = {}
    for event in got:
        pid = where[(event.sequence_number, event.properties[b"idempotency_key"].decode())]
        checkpoint[pid] = max(checkpoint.get(pid, -1), event.sequence_number or 0)
    for pid in ("0", "1", "2", "3"):
        checkpoint.setdefault(pid, "-1")  # a partition it never saw: from its start

    second_round = workload(users=40, rounds=1, seed=6)
    Ingestor(live_engine).ingest(list_items(second_round))
    both = model(first_round + second_round)
    wait_messages(hub, _expected_count(both))
    assert wait_idle(live_engine, 60).idle
    later = hub.events()[len(held) :]
    assert later, "the second round must change some memberships"
    resumed = consume(hub.connection_string, len(later), starting_position=checkpoint)
    assert len(resumed) == len(later)
    assert _by_partition_read(resumed, hub.events()) == _by_partition_held(later)
