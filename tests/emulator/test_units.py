"""The hub stand-in's parts in-process: store, fault plan, batch decoding, SAS scope."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import Counter

import orjson
import pytest

from audiencehub.emulator.auth import Authorizer, TokenError, resource_hub
from audiencehub.emulator.faults import (
    NO_FAULT,
    FaultPlan,
    FaultSpecError,
    amqp_condition_for,
)
from audiencehub.emulator.hubs import UnknownHub, UnknownPartition
from audiencehub.emulator.records import IncomingEvent
from audiencehub.emulator.rest_format import BadBatch, decode_batch, event_json
from audiencehub.emulator.server import Emulator, EmulatorConfig
from audiencehub.emulator.store import (
    RECORD_OVERHEAD,
    EventStore,
    PositionError,
    StoreFull,
    valid_hub_name,
)
from workers.delivery.eventhub.partitions import partition_for_key
from workers.delivery.eventhub.sas import make_token


def _ev(body: str = "x", key: str | None = None) -> IncomingEvent:
    broker = {"PartitionKey": key} if key is not None else {}
    return IncomingEvent(body.encode(), {"p": 1}, broker, key)


# ---- store -------------------------------------------------------------------------------------


def test_store_places_by_partition_then_key_then_round_robin() -> None:
    store = EventStore()
    store.create_hub("h", 3)
    store.append("h", [_ev("a", "user-1"), _ev("b"), _ev("c"), _ev("d")], "rest")
    store.append("h", [_ev("e", "user-1")], "amqp", partition_id="2")
    events, more = store.events("h")
    assert not more
    ids = ("0", "1", "2")
    assert [e.partition_id for e in events] == [
        partition_for_key("user-1", ids),
        "0",
        "1",
        "2",
        "2",
    ]
    assert [e.face for e in events] == ["rest"] * 4 + ["amqp"]
    assert events[0].user_properties == {"p": 1} and events[0].broker_properties == {
        "PartitionKey": "user-1"
    }
    mismatch = int(partition_for_key("user-1", ids) != "2")
    assert store.stats()["hubs"]["h"]["key_partition_mismatches"] == mismatch


def test_store_sequence_numbers_are_global_and_survive_reset() -> None:
    store = EventStore()
    store.create_hub("a", 1)
    store.create_hub("b", 1)
    assert store.append("a", [_ev(), _ev()], "rest") == (1, 2)
    assert store.append("b", [_ev()], "rest") == (3, 3)
    assert store.reset() == 3
    assert store.append("a", [_ev()], "rest") == (4, 4)
    assert store.stats()["events"] == 1


def test_store_rejects_unknown_hub_and_partition() -> None:
    store = EventStore()
    store.create_hub("Hub", 2)
    assert store.hub("hub").name == "Hub"
    with pytest.raises(UnknownHub):
        store.append("other", [_ev()], "rest")
    with pytest.raises(UnknownPartition):
        store.append("hub", [_ev()], "rest", partition_id="7")
    with pytest.raises(ValueError):
        store.create_hub("_x", 2)
    with pytest.raises(ValueError):
        store.create_hub("ok", 0)


def test_store_evicts_oldest_beyond_the_cap_when_told_to() -> None:
    store = EventStore(max_events_per_hub=100, when_full="drop-oldest")
    store.create_hub("h", 1)
    for i in range(30):
        store.append("h", [_ev(str(i * 10 + j)) for j in range(10)], "rest")
    events, _ = store.events("h", limit=1000)
    assert 90 <= len(events) <= 100
    assert events[-1].body == b"299"
    stats = store.stats()["hubs"]["h"]
    assert stats["events"] == 300 and stats["evicted"] == 300 - len(events)
    # Like retention: the partition's numbering goes on, its beginning moves past what is gone.
    info = store.partition_info("h", "0")
    assert info.begin_sequence_number == 300 - len(events) == events[0].sequence_number
    assert info.last_enqueued_sequence_number == 299 == events[-1].sequence_number


def test_a_full_store_refuses_the_whole_append_by_default() -> None:
    store = EventStore(max_events_per_hub=10)
    store.create_hub("h", 2)
    store.append("h", [_ev(str(i)) for i in range(8)], "rest")
    with pytest.raises(StoreFull, match=r"'h' holds 8 of at most 10 events and cannot take 3"):
        store.append("h", [_ev("a"), _ev("b"), _ev("c")], "rest")
    assert store.stats()["hubs"]["h"]["stored"] == 8  # nothing of the refused batch
    store.append("h", [_ev("a"), _ev("b")], "rest")
    store.reset("h")
    store.append("h", [_ev("c")], "rest")  # room again after a reset


def test_partition_numbers_offsets_and_enqueued_times() -> None:
    store = EventStore()
    store.create_hub("h", 2)
    store.append("h", [_ev("ab"), _ev("cde")], "rest", partition_id="1", received_at=2_000_000)
    store.append(
        "h", [_ev("f")], "rest", partition_id="1", received_at=1_000_000
    )  # clock went back
    events, _ = store.events("h", partition_id="1")
    assert [e.sequence_number for e in events] == [0, 1, 2]
    assert [e.offset for e in events] == [0, 2 + RECORD_OVERHEAD, 5 + 2 * RECORD_OVERHEAD]
    assert [e.received_at for e in events] == [2_000_000] * 3  # enqueued times never go back
    read, following = store.read("h", "1", 1, 10)
    assert [e.body for e in read] == [b"cde", b"f"] and following == 3
    assert store.partition_info("h", "0") == (0, -1, -1, 0, True)
    assert store.partition_info("h", "1") == (0, 2, 5 + 2 * RECORD_OVERHEAD, 2_000_000, False)
    # Starting positions, as consumers give them.
    assert store.seek("h", "1", "sequence", 0, inclusive=False) == 1
    assert store.seek("h", "1", "sequence", 0, inclusive=True) == 0
    assert store.seek("h", "1", "offset", 2 + RECORD_OVERHEAD, inclusive=False) == 2
    assert store.seek("h", "1", "offset", 2 + RECORD_OVERHEAD, inclusive=True) == 1
    assert store.seek("h", "1", "offset", 1, inclusive=True) == 1  # between events: the next
    assert store.seek("h", "1", "time", 1, inclusive=False) == 0  # enqueued at 2 ms
    assert store.seek("h", "1", "time", 2, inclusive=True) == 0
    assert store.seek("h", "1", "time", 2, inclusive=False) == 3  # nothing after 2 ms: wait
    assert store.seek("h", "1", "sequence", 2, inclusive=False) == 3  # after the last: wait
    with pytest.raises(PositionError, match=r"'3' is invalid\. The last sequence number .* '2'"):
        store.seek("h", "1", "sequence", 3, inclusive=True)
    with pytest.raises(PositionError, match="The last offset in the system is"):
        store.seek("h", "1", "offset", 10_000, inclusive=False)
    assert store.end_of("h", "1") == 3


def test_store_readback_pages_by_seq_and_partition() -> None:
    store = EventStore()
    store.create_hub("h", 2)
    store.append("h", [_ev(str(i)) for i in range(10)], "rest")
    first, more = store.events("h", after=0, limit=3)
    assert [e.body for e in first] == [b"0", b"1", b"2"] and more
    rest, more = store.events("h", after=first[-1].seq, limit=100)
    assert [e.body for e in rest] == [str(i).encode() for i in range(3, 10)] and not more
    odd, _ = store.events("h", partition_id="1", limit=2)
    assert [e.body for e in odd] == [b"1", b"3"]


def test_store_appends_from_many_threads_without_losing_or_doubling() -> None:
    store = EventStore()
    store.create_hub("h", 4)

    def work(n: int) -> None:
        for i in range(200):
            store.append("h", [_ev(f"{n}-{i}-{j}", f"user-{j}") for j in range(5)], "rest")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events, _ = store.events("h", limit=10_000)
    assert len(events) == 4000
    assert [e.seq for e in events] == list(range(1, 4001))
    assert len({e.body for e in events}) == 4000


def test_stored_events_are_not_gc_tracked() -> None:
    """Intake speed depends on it: a million tracked rows make every full collection ~200 ms."""
    store = EventStore()
    store.create_hub("h", 2)
    store.append("h", [_ev("a", "k"), _ev("b")], "rest")
    for _ in range(3):  # each pass untracks one level of nesting (pair, properties, row)
        gc.collect()
    rows = store._hubs["h"].events
    assert rows and not any(gc.is_tracked(row) for row in rows)


def test_hub_names() -> None:
    assert valid_hub_name("orders") and valid_hub_name("a.b-c_d") and valid_hub_name("9x")
    for bad in ("", "_emulator", "-x", "a/b", "a b", "é", "x" * 257):
        assert not valid_hub_name(bad)


def test_request_counters_by_face_and_status() -> None:
    store = EventStore()
    for face, status in [("rest", 201), ("rest", 401), ("amqp", 201), ("rest", 0)]:
        store.count_request(face, status)
    stats = store.stats()
    assert stats["requests"]["rest"] == {"total": 3, "by_status": {"0": 1, "201": 1, "401": 1}}
    assert stats["rejections"] == {"401": 1, "dropped": 1}


# ---- fault plan --------------------------------------------------------------------------------


def test_empty_plan_is_no_fault() -> None:
    assert FaultPlan().decide("rest", "h") is NO_FAULT


def test_plan_count_skip_and_filters() -> None:
    plan = FaultPlan()
    plan.configure(
        [
            {"status": 503, "count": 2, "skip": 1, "hub": "H"},
            {"status": 401, "face": "amqp", "op": "auth"},
        ]
    )
    kinds = [plan.decide("rest", "h").kind for _ in range(4)]
    assert kinds == ["none", "503", "503", "none"]
    assert plan.decide("rest", "other").kind == "none"
    assert plan.decide("amqp", "h", "send").kind == "none"
    auth = plan.decide("amqp", "h", "auth")
    assert auth.status == 401 and auth.amqp_condition == "amqp:unauthorized-access"


def test_plan_share_is_deterministic_with_seed() -> None:
    def run() -> list[bool]:
        plan = FaultPlan()
        plan.configure({"seed": 11, "rules": [{"drop": True, "share": 0.3}]})
        return [plan.decide("rest", "h").fails for _ in range(200)]

    first, second = run(), run()
    assert first == second
    assert 30 < sum(first) < 90


def test_plan_decision_carries_amqp_mapping_and_overrides() -> None:
    plan = FaultPlan()
    plan.configure(
        [
            {"status": 503, "count": 1},
            {"status": 429, "count": 1, "amqp_condition": "amqp:resource-limit-exceeded"},
            {"status": 413, "count": 1},
        ]
    )
    d1, d2, d3 = (plan.decide("amqp", "h") for _ in range(3))
    assert (d1.amqp_condition, d1.retry_after) == ("com.microsoft:server-busy", 1)
    assert d2.amqp_condition == "amqp:resource-limit-exceeded"
    assert d3.amqp_condition == "amqp:link:message-size-exceeded"
    assert amqp_condition_for(502) == "amqp:internal-error"


def test_plan_duration_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    plan = FaultPlan()
    plan.configure({"status": 500, "duration_s": 5})
    assert plan.decide("rest", "h").status == 500
    now[0] += 5
    assert plan.decide("rest", "h") is NO_FAULT


def test_plan_rejects_bad_rules() -> None:
    with pytest.raises(FaultSpecError, match=r"rules\[0\]\.count"):
        FaultPlan().configure({"status": 500, "count": -1})
    with pytest.raises(FaultSpecError, match="rules: must be a list"):
        FaultPlan().configure("nope")
    with pytest.raises(FaultSpecError, match=r"rules\[0\]\.face"):
        FaultPlan().configure({"status": 500, "face": "kafka"})


# ---- batch decoding and readback shape ---------------------------------------------------------


def test_decode_batch_keeps_everything_a_sender_sent() -> None:
    body = orjson.dumps(
        [
            {
                "Body": '{"a": "ü"}',
                "UserProperties": {"k": "v", "n": 1, "f": 1.5, "b": True, "z": None},
                "BrokerProperties": {"PartitionKey": "p", "MessageId": "m"},
            },
            {"Body": ""},
        ]
    )
    first, second = decode_batch(body)
    assert first.body == '{"a": "ü"}'.encode()
    assert first.user_properties == {"k": "v", "n": 1, "f": 1.5, "b": True, "z": None}
    assert first.partition_key == "p"
    assert second == IncomingEvent(b"", {}, {}, None)


def test_decode_batch_reports_the_first_problem() -> None:
    with pytest.raises(BadBatch, match=r"event\[1\]\.UserProperties\.x: must be a string"):
        decode_batch(b'[{"Body": "a"}, {"Body": "b", "UserProperties": {"x": [1]}}]')


def test_event_json_falls_back_to_base64_for_binary_bodies() -> None:
    store = EventStore()
    store.create_hub("h", 1)
    store.append("h", [IncomingEvent(b"\xff\x00", {}, {}, None)], "amqp")
    (event,) = store.events("h")[0]
    shown = event_json(event)
    assert shown["body"] == "/wA=" and shown["body_encoding"] == "base64"
    assert shown["received_at"].endswith("Z")


# ---- SAS scope ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "hub"),
    [
        ("https://ns.servicebus.windows.net/Orders", "orders"),
        ("https://ns/orders/messages", "orders"),
        ("sb://ns:5671/orders/partitions/0", "orders"),
        ("https://ns/", None),
        ("https://ns", None),
        ("ns.servicebus.windows.net/orders", "orders"),
        ("https://ns/a%20b/x", "a b"),
    ],
)
def test_resource_hub(resource: str, hub: str | None) -> None:
    assert resource_hub(resource) == hub


def test_authorizer_checks_expiry_even_for_a_cached_token() -> None:
    auth = Authorizer({"k": "secret"})
    now = time.time()
    token = make_token("https://ns/h", "k", "secret", int(now) + 10)
    auth.check(token, "h", now=now)
    auth.check(token, "H", now=now)
    with pytest.raises(TokenError, match="expired"):
        auth.check(token, "h", now=now + 20)
    with pytest.raises(TokenError, match="does not cover"):
        auth.check(token, "other", now=now)
    with pytest.raises(TokenError, match="missing Authorization"):
        auth.check(None, "h")


def test_authorizer_accepts_any_configured_key() -> None:
    auth = Authorizer({"send": "s1", "manage": "s2"})
    exp = int(time.time()) + 60
    for name, key in (("send", "s1"), ("manage", "s2")):
        auth.check(make_token("https://ns/h", name, key, exp), "h")
    with pytest.raises(TokenError, match="signature"):
        auth.check(make_token("https://ns/h", "send", "s2", exp), "h")


def test_round_robin_is_even_per_hub() -> None:
    store = EventStore()
    store.create_hub("h", 4)
    store.append("h", [_ev() for _ in range(400)], "rest")
    counts = Counter(e.partition_id for e in store.events("h", limit=1000)[0])
    assert counts == {"0": 100, "1": 100, "2": 100, "3": 100}


# ---- the runtime, in-process -------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    """Stands in for an AMQP face: answers whatever arrives, prefixed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)


def test_emulator_in_process_shares_its_port_with_another_protocol() -> None:
    async def scenario() -> tuple[bytes, bytes, str]:
        emulator = Emulator(EmulatorConfig(hubs=("h",), keys={"k": "secret"}, partitions=2))
        emulator.share_port(b"AMQP", "amqp", _Echo)
        port = await emulator.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"AMQP\x00\x01\x00\x00")
            amqp = await reader.readexactly(13)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /_emulator/info HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            writer.close()
            return amqp, body, emulator.connection_string()
        finally:
            await emulator.stop()

    amqp, body, conn = asyncio.run(scenario())
    assert amqp == b"echo:AMQP\x00\x01\x00\x00"
    info = orjson.loads(body)
    assert info["faces"] == ["rest", "amqp"] and info["key_names"] == ["k"]
    assert "secret" not in body.decode()
    assert conn.startswith("Endpoint=sb://127.0.0.1:") and conn.endswith(
        ";SharedAccessKeyName=k;SharedAccessKey=secret;EntityPath=h;UseDevelopmentEmulator=true"
    )


def test_config_defaults() -> None:
    config = EmulatorConfig(host="0.0.0.0")
    assert list(config.keys) == ["RootManageSharedAccessKey"]
    assert len(config.keys["RootManageSharedAccessKey"]) == 44
    emulator = Emulator(config)
    assert emulator.advertised_host == "127.0.0.1"
    assert Emulator(EmulatorConfig(advertise_host="hub")).advertised_host == "hub"
