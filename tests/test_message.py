"""The message, field by field as in the seed: its example validates against our schema, and a
user who leaves one of the job's audiences while staying in another gets both in one message.
In-process on a real Redis; the outbox holds exactly what the hub will receive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from tests.helpers import SCHEMA, VALIDATOR, changed
from workers.audiences.store import AudienceStore
from workers.delivery.outbox import Outbox, records
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.jobs.store import Job
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.envelope import EnterRenderer, Renderer, idempotency_key
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.membership import Transition
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY, parse_rfc3339

SEED_EXAMPLE = Path(__file__).parent / "golden" / "seed_message.json"
CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)


def test_the_seeds_example_validates_verbatim() -> None:
    example = json.loads(SEED_EXAMPLE.read_text())
    VALIDATOR.validate(example)
    segments = example["data"]["segment_events"]
    assert [s["id"] for s in segments] == ["d3d8f15855b6b067709577342fe72db9", "abc678asdf"]
    # The seed's own rule for telling the change from the membership carried beside it.
    assert [(s["event"], s["slug"]) for s in changed(example)] == [("exit", "demo_segment")]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "segment_events", 0, "event"), "left"),
        (("meta", "object"), "account"),
        (("data", "segment_events", 0, "exit"), "2017-03-18 06:12:36"),
        (("data", "segment_events", 1, "id"), ""),
        (("data", "segment_events"), []),
    ],
)
def test_the_schema_still_refuses_what_the_seed_never_sends(
    path: tuple[Any, ...], value: Any
) -> None:
    example = json.loads(SEED_EXAMPLE.read_text())
    target = example
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, SCHEMA)


def jobs(engine: Engine) -> tuple[Job, Job]:
    store = AudienceStore(engine.r, engine.keys)
    store.create("demo_segment", "FILTER score >= 10")
    store.create("another_segment", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("h", CONN)
    slugs = ["demo_segment", "another_segment"]
    return (
        create_job(engine, "seed", auth.id, slugs),
        create_job(engine, "changes", auth.id, slugs, changes_only=True),
    )


def outbox(engine: Engine, job: Job) -> list[tuple[dict[str, Any], str]]:
    out = []
    for shard in range(engine.cfg.shards):
        for _, record in records(Outbox(engine.keys, shard, job.id).all(engine.r)):
            out.append((orjson.loads(record.body), record.key))
    return out


def feed(engine: Engine, events: list[dict[str, Any]]) -> None:
    Ingestor(engine).ingest(list_items(events))
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)


def test_a_user_in_two_audiences_who_leaves_one_gets_both_as_in_the_seed(engine: Engine) -> None:
    seed, changes_only = jobs(engine)
    feed(engine, [{"user_id": "user123", "email": "a@b.c", "score": 20}])
    engine.r.incrby(engine.keys.clock_offset, 16 * NS_PER_DAY)  # 16 days later, as in the seed
    feed(engine, [{"user_id": "user123", "score": 3}])

    (entered, _), (left, key) = outbox(engine, seed)
    for body in (entered, left):
        VALIDATOR.validate(body)
    assert [(s["event"], s["slug"]) for s in entered["data"]["segment_events"]] == [
        ("enter", "demo_segment"),
        ("enter", "another_segment"),
    ]
    first_enter = entered["meta"]["timestamp"]
    exit_seg, stays = left["data"]["segment_events"]
    at = left["meta"]["timestamp"]
    assert (exit_seg["event"], exit_seg["slug"]) == ("exit", "demo_segment")
    assert (exit_seg["enter"], exit_seg["exit"]) == (first_enter, at)
    assert (stays["event"], stays["slug"], stays["enter"]) == (
        "enter",
        "another_segment",
        first_enter,
    )
    assert stays["exit"] == "2099" + at[4:]  # the seed's far-future exit: the timestamp in 2099
    assert changed(left) == [exit_seg]

    # --changes-only keeps the old shape; both name only the change in their idempotency key.
    (_, _), (only_left, only_key) = outbox(engine, changes_only)
    assert [(s["event"], s["slug"]) for s in only_left["data"]["segment_events"]] == [
        ("exit", "demo_segment")
    ]
    audience = {a.slug: a.id for a in AudienceStore(engine.r, engine.keys).all()}["demo_segment"]
    moved = [
        Transition(audience, "demo_segment", "exit", parse_rfc3339(first_enter), parse_rfc3339(at))
    ]
    assert key == idempotency_key(seed.id, "user123", moved)
    assert only_key == idempotency_key(changes_only.id, "user123", moved)


def test_a_change_in_one_audience_beside_no_other_membership_carries_just_the_change(
    engine: Engine,
) -> None:
    seed, _ = jobs(engine)
    feed(engine, [{"user_id": "u", "score": 20}])  # demo_segment only (no email)
    feed(engine, [{"user_id": "u", "score": 1}])
    bodies = [body for body, _ in outbox(engine, seed)]
    assert [[(s["event"], s["slug"]) for s in b["data"]["segment_events"]] for b in bodies] == [
        [("enter", "demo_segment")],
        [("exit", "demo_segment")],
    ]


def test_every_time_in_the_message_is_the_processing_instant_not_the_event_time(
    engine: Engine,
) -> None:
    seed, _ = jobs(engine)
    long_ago = "2020-01-01T00:00:00Z"
    feed(engine, [{"user_id": "late", "email": "x", "_ts": long_ago}])
    ((body, _),) = outbox(engine, seed)
    (segment,) = body["data"]["segment_events"]
    assert body["data"]["_modified"] == long_ago  # an event time
    assert segment["enter"] == body["meta"]["timestamp"] > long_ago  # when we evaluated


@pytest.mark.parametrize("changes_only", [False, True])
@pytest.mark.parametrize(
    "fields",
    [
        ("_created", "_modified", "email", "user_id"),
        (),
        ("email", "segment_events", "nickname"),
    ],
)
def test_a_backfill_page_renders_byte_for_byte_what_the_general_renderer_writes(
    changes_only: bool, fields: tuple[str, ...]
) -> None:
    """The backfill splices messages from pre-rendered parts (EnterRenderer): every byte and
    key must be the general renderer's for the same enters, whatever the job and the user."""
    ids = ["a" * 32, "b" * 32, "c" * 32, "d" * 32]
    slugs = {ids[0]: "vip", ids[1]: 'qu"ote', ids[2]: "ünï", ids[3]: "gone"}
    job = Job("j" * 32, "l", "auth", tuple(ids[:3]), fields=fields, changes_only=changes_only)
    at = 1_764_000_000_123_456_789
    renderer = EnterRenderer(job, at, slugs, {aid: slugs[aid] for aid in ids[:3]})
    cases: list[tuple[dict[str, int], list[str]]] = [
        ({ids[0]: at - 10**12}, [ids[0]]),
        ({ids[0]: at - 10**12, ids[1]: at - 5 * 10**9, ids[2]: at - 1}, [ids[0], ids[2]]),
        ({ids[2]: at - 7 * 10**9, ids[1]: at - 10**9, ids[3]: at - 3}, [ids[1], ids[2]]),
        ({ids[1]: at - 10**10, ids[2]: 1_600_000_000 * 10**9}, [ids[2]]),
    ]
    for membership, moved in cases:
        profile = Profile(
            'user-ü"1',
            fields={"email": "x@y.z", "segment_events": [1], "nickname": "n\n", "other": 1},
            created=at - 10**15,
            modified=at - 10**6,
            membership=membership,
        )
        changes = [Transition(aid, slugs[aid], "enter", membership[aid], None) for aid in moved]
        assert renderer.render(profile, moved) == Renderer(job, at, slugs).render(profile, changes)
