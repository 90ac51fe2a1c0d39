"""Accept only what you keep: a request is stored all-or-nothing, once, or refused with a reason.

Every test runs against a real redis-server: one with a tiny ``maxmemory`` for "Redis is full", a
replica for "Redis is read-only", a TCP proxy that drops the connection after Redis executed the
write for "the client retried", and the movable clock for the dedup window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from audiencehub.processes import RedisServer
from tests.helpers import SHARDS, RecordingSender
from workers.config import Settings
from workers.engine import Engine
from workers.keys import Keys
from workers.lua import source
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.drain_groups import DrainGroups
from workers.pipeline.ingest import Ingestor, IngestRefused, TooManyEvents, list_items
from workers.pipeline.intake import SEEN_BUCKETS, Intake, IntakeItem
from workers.pipeline.profiles import stored_profile
from workers.redisconn import state_redis
from workers.schedule.clock import SystemClock, movable_clock
from workers.schedule.kicks import Kicker, NoSender


def queued(engine: Engine) -> int:
    return sum(int(engine.r.xlen(engine.keys.events(s))) for s in range(engine.cfg.shards))


def events(n: int, prefix: str = "u", pad: int = 0, **extra: object) -> list[dict[str, object]]:
    return [{"user_id": f"{prefix}{i}", "n": i, "pad": "x" * pad, **extra} for i in range(n)]


def engine_on(url: str, cfg: Settings, **changes: object) -> Engine:
    cfg = dataclasses.replace(cfg, redis_url=url, **changes)  # type: ignore[arg-type]
    return Engine.create(RecordingSender(), cfg=cfg, r=redis.Redis.from_url(url))


# -- Redis full -----------------------------------------------------------------------------------
@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path / "small", appendonly=False, extra=["--maxmemory-policy", "noeviction"]
    )
    (tmp_path / "small").mkdir()
    server.start()
    yield server
    server.stop()


def squeeze(r: redis.Redis, headroom: int) -> None:
    """Set maxmemory to what Redis uses now plus ``headroom`` bytes."""
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used + headroom)


def test_requests_at_the_memory_limit_are_stored_whole_or_refused_whole(
    small_redis: RedisServer, cfg: Settings
) -> None:
    """The issue: 98 of 100 events durable and the client told it failed. Requests of 100 events
    of 1 KB, spread over every shard, arrive until Redis is full: each is stored whole or refused
    whole (Redis refuses a script only before its first write), and a refusal says why."""
    e = engine_on(small_redis.url, cfg)
    squeeze(e.r, 400_000)
    ingestor = Ingestor(e)
    accepted = 0
    refusal: IngestRefused | None = None
    for n in range(40):
        try:
            accepted += ingestor.ingest(list_items(events(100, f"r{n}-", pad=1000))).accepted
        except IngestRefused as exc:
            refusal = exc
            break
        assert queued(e) == accepted
    assert refusal is not None, "Redis never filled up"
    assert refusal.kind == "unavailable"
    assert "full" in refusal.reason
    assert refusal.stored == 0
    assert accepted >= 100 and queued(e) == accepted, "a refused request leaves nothing stored"
    e.r.config_set("maxmemory", 0)
    assert ingestor.ingest(list_items(events(100, "after", pad=1000))).accepted == 100
    assert queued(e) == accepted + 100


def test_a_read_only_replica_refuses_with_a_reason(
    redis_server: RedisServer, cfg: Settings, tmp_path: Path
) -> None:
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=False,
        extra=["--replicaof", "127.0.0.1", str(redis_server.port)],
    )
    (tmp_path / "replica").mkdir()
    replica.start()
    try:
        r = redis.Redis.from_url(replica.url)
        groups = DrainGroups(cfg.shards, cfg.shards_per_drain)
        kicker = Kicker(r, Keys(cfg.prefix), NoSender(), groups)
        e = Engine(cfg, r, Keys(cfg.prefix), SystemClock(), kicker)
        with pytest.raises(IngestRefused) as refused:
            Ingestor(e).ingest(list_items(events(3)))
        assert refused.value.kind == "unavailable"
        assert "read-only" in refused.value.reason
    finally:
        replica.stop()


# -- the backlog bound ----------------------------------------------------------------------------
def test_past_the_backlog_bound_nothing_of_the_request_is_stored(cfg: Settings) -> None:
    e = engine_on(cfg.redis_url, cfg, max_backlog=4 * SHARDS)  # 4 entries per shard
    intake = Intake(e)
    assert intake.shard_limit() == 4
    ingestor = Ingestor(e)
    ingestor.ingest(list_items([{"user_id": "same"} for _ in range(3)]))
    ingestor.ingest(list_items([{"user_id": "same"}, {"user_id": "other"}]))  # 4 in that shard
    before = queued(e)
    with pytest.raises(IngestRefused) as refused:
        ingestor.ingest(list_items([{"user_id": "fresh"}, {"user_id": "same"}]))
    assert refused.value.kind == "backlog"
    assert "AUDIENCEHUB_MAX_BACKLOG" in refused.value.reason
    assert refused.value.retry_after_s > 0
    assert queued(e) == before, "the event for the other shard was not stored either"
    ShardDrainer(e).drain(0)
    for shard in range(SHARDS):
        ShardDrainer(e).drain(shard)
    assert ingestor.ingest(list_items([{"user_id": "same"}])).accepted == 1


def test_more_events_than_one_write_takes_is_refused_before_anything_is_stored(
    cfg: Settings,
) -> None:
    e = engine_on(cfg.redis_url, cfg, max_request_events=10)
    with pytest.raises(TooManyEvents, match="AUDIENCEHUB_MAX_REQUEST_EVENTS"):
        Ingestor(e).ingest(list_items(events(11)))
    assert queued(e) == 0
    assert Ingestor(e).ingest(list_items(events(10))).accepted == 10


# -- dedup ----------------------------------------------------------------------------------------
def test_a_repeated_event_id_is_acknowledged_not_applied_again(engine: Engine) -> None:
    ingestor = Ingestor(engine)
    first = ingestor.ingest(
        list_items(
            [
                {"user_id": "d1", "event": "buy", "_id": "m-1"},
                {"user_id": "d1", "event": "buy", "messageId": "m-2"},
                {"user_id": "d1", "event": "buy", "_id": "m-1"},  # repeat inside the request
                {"user_id": "d2", "event": "buy", "_id": "m-1"},  # another user's event
                {"user_id": "d1", "event": "buy"},  # no id: always applied
            ]
        )
    )
    assert (first.accepted, first.duplicates) == (5, 1)
    again = ingestor.ingest(
        list_items(
            [
                {"user_id": "d1", "event": "buy", "messageId": "m-1"},  # same id, other field
                {"user_id": "d1", "event": "buy", "_id": "m-2"},
                {"user_id": "d1", "event": "buy", "_id": 7},
            ]
        )
    )
    assert (again.accepted, again.duplicates) == (3, 2)
    for shard in range(SHARDS):
        ShardDrainer(engine).drain(shard)
    d1 = stored_profile(engine, "d1")
    assert len(d1.occurrences["buy"]) == 4  # m-1, m-2, the one without id, id 7
    assert "_id" not in d1.fields and "messageId" not in d1.fields
    assert len(stored_profile(engine, "d2").occurrences["buy"]) == 1


def test_an_id_is_remembered_for_the_window_and_then_forgotten(engine: Engine) -> None:
    ingestor = Ingestor(engine)
    event = [{"user_id": "w1", "_id": "same"}]
    ingestor.ingest(list_items(event))
    clock = movable_clock(engine.cfg, engine.r)
    window_ns = engine.cfg.dedup_window_s * 1_000_000_000
    clock.advance(window_ns - 1_000_000_000)  # still inside the window
    assert ingestor.ingest(list_items(event)).duplicates == 1
    clock.advance(window_ns + window_ns // SEEN_BUCKETS + 2_000_000_000)  # past it
    assert ingestor.ingest(list_items(event)).duplicates == 0
    assert queued(engine) == 2


def test_dedup_off_stores_every_repeat(cfg: Settings) -> None:
    e = engine_on(cfg.redis_url, cfg, dedup_window_s=0)
    ingestor = Ingestor(e)
    ingestor.ingest(list_items([{"user_id": "o", "_id": "x"}, {"user_id": "o", "_id": "x"}]))
    assert queued(e) == 2
    assert not e.r.keys(e.keys.seen_ids_pattern)


def test_a_bad_event_id_is_refused_naming_the_field(engine: Engine) -> None:
    result = Ingestor(engine).ingest(
        list_items([{"user_id": "b", "_id": ""}, {"user_id": "b", "messageId": {"a": 1}}])
    )
    assert [(err.field, err.reason[:20]) for err in result.errors] == [
        ("_id", "must be 1 to 256 cha"),
        ("messageId", "must be a string or "),
    ]


# -- a write replayed by the client ---------------------------------------------------------------
def test_the_same_token_replays_the_first_answer(engine: Engine) -> None:
    from workers.pipeline.entries import DATA, Entry

    items = [IntakeItem.of(Entry(DATA, f"t{i}", 1, None, {"user_id": f"t{i}"})) for i in range(5)]
    intake = Intake(engine)
    first = intake.append(items, 0, token="tok")
    again = intake.append(items, 0, token="tok")
    assert first == again
    assert queued(engine) == 5


class DropFirstReply:
    """A TCP proxy to Redis that forwards everything, except that the first time a script call
    (EVALSHA) goes through it closes both sides instead of passing Redis's answer back: Redis has
    executed the write, and the client sees a dropped connection and retries."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            state = {"script": False}
            threading.Thread(
                target=self._pipe, args=(client, server, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(server, client, state, False), daemon=True
            ).start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool], up: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if up and b"EVALSHA" in data.upper():
                    state["script"] = True
                if not up and state["script"] and self.dropped == 0:
                    self.dropped += 1
                    for s in (src, dst):
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    return
                dst.sendall(data)

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def test_a_reply_lost_on_a_dropped_connection_does_not_store_twice(cfg: Settings) -> None:
    """docs/delivery.md's caveat: the client retries a write whose reply it lost. With the
    intake's token the retry replays the first answer; nothing is appended twice."""
    proxy = DropFirstReply(int(cfg.redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        via = dataclasses.replace(cfg, redis_url=url)
        e = Engine.create(RecordingSender(), cfg=via, r=state_redis(via))
        direct = redis.Redis.from_url(cfg.redis_url)
        direct.script_load(source("intake"))  # so the first EVALSHA runs the write (no NOSCRIPT)
        result = Ingestor(e).ingest(list_items(events(50, "p")))
        assert proxy.dropped == 1, "the proxy dropped the first answer"
        assert result.accepted == 50
        total = sum(int(direct.xlen(e.keys.events(s))) for s in range(SHARDS))
        assert total == 50
    finally:
        proxy.close()


def test_the_cli_stores_a_file_chunk_by_chunk_and_says_where_it_stopped(cfg: Settings) -> None:
    """``audiencehub ingest`` stores 1,000 lines at a time, each all-or-nothing. When a chunk is
    refused (here: the backlog bound, with no wait) it stops, exit code 3, naming the first line
    that was not stored."""
    import subprocess
    import sys

    from audiencehub.processes import celery_env

    env = celery_env(
        cfg.redis_url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS=str(SHARDS),
        AUDIENCEHUB_MAX_BACKLOG=str(SHARDS),  # one entry per shard: the first chunk fills it
    )
    lines = "\n".join(f'{{"user_id": "f{i}"}}' for i in range(1500))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from audiencehub.cli import main; main()",
            "ingest",
            "-",
            "--max-wait",
            "0",
        ],
        env=env,
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "accepted 1000, rejected 0"
    assert "Nothing from line 1001 on was stored" in done.stderr
    assert "Traceback" not in done.stderr
    r = redis.Redis.from_url(cfg.redis_url)
    assert sum(int(r.xlen(Keys(cfg.prefix).events(s))) for s in range(SHARDS)) == 1000


def test_the_celery_task_keeps_its_batch_until_redis_has_room(
    small_redis: RedisServer,
    cfg: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ingest_events is the way in whose data lives in a broker message: refused, it holds the
    batch and tries again (same token) instead of failing, so the message is not acked and lost.
    The task body runs in this process; the worker around it is tested in tests/chaos/."""
    from tasks.ingest import ingest_events
    from tasks.runtime import runtime
    from workers.config import settings

    monkeypatch.setenv("REDIS_URL", small_redis.url)
    settings.cache_clear()
    monkeypatch.setattr("tasks.runtime._runtime", None)
    try:
        r = redis.Redis.from_url(small_redis.url)
        runtime().engine  # noqa: B018  (made while Redis has room: it writes the shard count)
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 1000)
        threading.Timer(1.0, lambda: r.config_set("maxmemory", 0)).start()
        caplog.set_level("WARNING", "audiencehub.ingest")
        result = ingest_events.run([{"user_id": f"t{i}"} for i in range(20)])
        assert result == {"accepted": 20, "rejected": 0, "duplicates": 0}
        assert "ingest refused (Redis is full" in caplog.text  # refused first, then stored
        assert sum(int(r.xlen(Keys(cfg.prefix).events(s))) for s in range(SHARDS)) == 20
    finally:
        settings.cache_clear()
