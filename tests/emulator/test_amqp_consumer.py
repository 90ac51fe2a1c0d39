"""Consumers read from the stand-in: the unmodified azure-eventhub SDK, and a raw AMQP peer.

The SDK tests prove that the client people write their readers with works against the stand-in,
sync and async. The raw-peer tests pin what the SDK does not show: credit is honoured to the
event, drain ends with a flow, the session window holds, refusals carry the service's
conditions, and a reader that stops reading costs the stand-in a bounded buffer.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
import uuid
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from azure.eventhub._utils import event_position_selector  # the SDK's own selector strings
from azure.eventhub.aio import EventHubConsumerClient as AsyncConsumerClient
from azure.eventhub.exceptions import ConnectionLostError, EventDataSendError

from audiencehub.emulator.amqp import (
    AMQP_HEADER,
    NULL,
    SASL_HEADER,
    TRUE,
    Described,
    Symbol,
    decode_message,
    e_bin,
    e_bool,
    e_str,
    e_sym,
    e_uint,
    encode_value,
    performative,
)
from tests.emulator.helpers import HubProcess, consume, item, started
from tests.emulator.rawpeer import HUB, KEY, KEY_NAME, RawPeer

GROUP = "audit"
SELECTOR = "apache.org:selector-filter:string"
HUB_ARGS = (
    "--hub",
    HUB,
    "--partitions",
    "4",
    "--key-name",
    KEY_NAME,
    "--key",
    KEY,
    "--consumer-group",
    GROUP,
)


def _partition(events: list[EventData], hub: HubProcess) -> dict[str, list[EventData]]:
    """The SDK's events by partition, using the readback to learn which is which."""
    where = {(e["sequence_number"], e["body"]): e["partition_id"] for e in hub.events()}
    out: dict[str, list[EventData]] = {}
    for event in events:
        out.setdefault(where[(event.sequence_number, event.body_as_str())], []).append(event)
    return out


# ---- the SDK ----------------------------------------------------------------------------------


def test_the_sdk_reads_every_partition_from_the_start_as_it_was_sent(hub: HubProcess) -> None:
    producer = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    try:
        for user in ("user-1", "user-2", "user-3"):
            batch = producer.create_batch(partition_key=user)
            for i in range(3):
                event = EventData(f'{{"user": "{user}", "n": {i}}}')
                event.properties = {"idempotency_key": f"job:{user}:{i}", "n": i, "raw": b"\x00"}
                batch.add(event)
            producer.send_batch(batch)
    finally:
        producer.close()
    rest = [item(f"rest-{i}", f"user-{i}", idempotency_key=f"rest:{i}") for i in range(2)]
    for entry in rest:  # one key per REST send, as the service wants
        assert hub.post([entry]).status_code == 201
    stored = hub.events()
    got = consume(hub.first_line, len(stored), starting_position="-1")
    assert sorted(e.body_as_str() for e in got) == sorted(e["body"] for e in stored)
    by_partition = _partition(got, hub)
    for pid, events in by_partition.items():
        expected = [e for e in stored if e["partition_id"] == pid]
        assert [e.body_as_str() for e in events] == [e["body"] for e in expected]  # in order
        assert [e.sequence_number for e in events] == [e["sequence_number"] for e in expected]
        assert [e.offset for e in events] == [e["offset"] for e in expected]
        assert [e.partition_key for e in events] == [e["partition_key"].encode() for e in expected]
        for event, want in zip(events, expected, strict=True):
            assert event.enqueued_time is not None
            enqueued = event.enqueued_time.replace(tzinfo=None)
            assert enqueued.isoformat(timespec="milliseconds") == want["received_at"][:23]
    first = next(e for e in got if e.body_as_str() == '{"user": "user-2", "n": 1}')
    assert first.properties == {b"idempotency_key": b"job:user-2:1", b"n": 1, b"raw": b"\x00"}
    rest_event = next(e for e in got if e.body_as_str() == "rest-1")
    assert rest_event.properties == {b"idempotency_key": b"rest:1"}


def test_starting_positions_from_the_sdk(hub: HubProcess) -> None:
    assert hub.post([item(f"e{i}") for i in range(6)], partition="2").status_code == 201
    stored = hub.events()
    base = stored[0]["sequence_number"]  # numbering goes on across the resets between tests
    assert [e["sequence_number"] for e in stored] == list(range(base, base + 6))

    def bodies(**position: Any) -> list[str]:
        want = position.pop("count")
        got = consume(hub.first_line, want, partition_id="2", **position)
        return [e.body_as_str() for e in got]

    assert bodies(count=3, starting_position=base + 2) == ["e3", "e4", "e5"]
    assert bodies(count=4, starting_position=base + 2, starting_position_inclusive=True) == [
        "e2",
        "e3",
        "e4",
        "e5",
    ]
    assert bodies(count=2, starting_position=stored[3]["offset"]) == ["e4", "e5"]
    when = datetime.datetime.fromisoformat(stored[0]["received_at"][:26])
    when = when.replace(tzinfo=datetime.UTC) - datetime.timedelta(seconds=1)
    assert bodies(count=6, starting_position=when) == [f"e{i}" for i in range(6)]


def test_latest_sees_only_what_comes_after_it_starts_in_a_named_group(hub: HubProcess) -> None:
    assert hub.post([item("old")], partition="1").status_code == 201
    client = EventHubConsumerClient.from_connection_string(hub.first_line, consumer_group=GROUP)
    got: list[EventData] = []
    arrived = threading.Event()

    def on_event(_: Any, event: EventData | None) -> None:
        if event is not None:
            got.append(event)
            arrived.set()

    worker = threading.Thread(
        target=client.receive,
        kwargs={"on_event": on_event, "partition_id": "1", "starting_position": "@latest"},
    )
    worker.start()
    try:
        _wait_for_consumers(hub, 1)
        assert hub.post([item("new")], partition="1").status_code == 201
        assert arrived.wait(30)
    finally:
        client.close()
        worker.join(30)
    assert [e.body_as_str() for e in got] == ["new"]
    old, new = hub.events()
    assert got[0].sequence_number == new["sequence_number"] == old["sequence_number"] + 1


def test_the_async_client_reads_with_last_enqueued_properties(hub: HubProcess) -> None:
    assert hub.post([item(f"a{i}", "user-9") for i in range(3)]).status_code == 201
    pid = hub.events()[0]["partition_id"]

    async def main() -> tuple[list[EventData], dict[str, Any]]:
        client = AsyncConsumerClient.from_connection_string(
            hub.first_line, consumer_group="$Default", load_balancing_interval=1
        )
        got: list[EventData] = []
        last: dict[str, Any] = {}
        done = asyncio.Event()

        async def on_event(context: Any, event: EventData | None) -> None:
            if event is not None:
                got.append(event)
                last.update(context.last_enqueued_event_properties or {})
            if len(got) >= 3:
                done.set()

        task = asyncio.create_task(
            client.receive(
                on_event,
                partition_id=pid,
                starting_position="-1",
                track_last_enqueued_event_properties=True,
            )
        )
        await asyncio.wait_for(done.wait(), 30)
        await client.close()
        await task
        return got, last

    got, last = asyncio.run(main())
    assert [e.body_as_str() for e in got] == ["a0", "a1", "a2"]
    assert last["sequence_number"] == 2 and last["offset"] == got[2].offset


def test_partition_properties_follow_what_the_partition_holds(hub: HubProcess) -> None:
    client = EventHubConsumerClient.from_connection_string(hub.first_line, consumer_group=GROUP)
    try:
        before = client.get_partition_properties("3")
        assert hub.post([item("x"), item("y")], partition="3").status_code == 201
        after = client.get_partition_properties("3")
        assert client.get_eventhub_properties()["partition_ids"] == ["0", "1", "2", "3"]
    finally:
        client.close()
    last = before["last_enqueued_sequence_number"]
    assert before["is_empty"] is True
    assert after["is_empty"] is False
    assert after["beginning_sequence_number"] == last + 1
    assert after["last_enqueued_sequence_number"] == last + 2
    assert after["last_enqueued_offset"] == hub.events()[-1]["offset"]


def test_a_higher_owner_level_takes_the_partition(hub: HubProcess) -> None:
    assert hub.post([item("p")], partition="0").status_code == 201
    first = EventHubConsumerClient.from_connection_string(hub.first_line, consumer_group=GROUP)
    errors: list[Exception] = []
    worker = threading.Thread(
        target=first.receive,
        kwargs={
            "on_event": lambda _c, _e: None,
            "on_error": lambda _c, error: errors.append(error),
            "partition_id": "0",
            "owner_level": 0,
        },
    )
    worker.start()
    try:
        _wait_for_consumers(hub, 1)
        got = consume(
            hub.first_line, 1, GROUP, partition_id="0", owner_level=1, starting_position="-1"
        )
        assert [e.body_as_str() for e in got] == ["p"]
        stolen = _wait(lambda: errors, "the first reader's error")
    finally:
        first.close()
        worker.join(30)
    assert isinstance(stolen[0], ConnectionLostError)
    assert "amqp:link:stolen" in str(stolen[0]) and "owner level 1" in str(stolen[0])


def _wait(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_consumers(hub: HubProcess, n: int, state: str | None = None) -> list[Any]:
    def ready() -> list[Any]:
        readers = hub.stats()["consumers"]
        if state is not None:
            readers = [r for r in readers if r["state"] == state]
        return readers if len(readers) >= n else []

    found: list[Any] = _wait(ready, f"{n} consumer(s) {state or ''}")
    return found


# ---- a raw AMQP peer --------------------------------------------------------------------------


class Consumer(RawPeer):
    """RawPeer plus a receiver's side: consumer links, flows, and counting frames in."""

    def __init__(self, hub: HubProcess, window: int = 1000) -> None:
        super().__init__(hub)
        self.window = window
        self.sock.sendall(SASL_HEADER)
        assert self.read(8) == SASL_HEADER
        self.frame()  # sasl-mechanisms
        self.send(0, performative(0x41, e_sym("ANONYMOUS"), e_bin(b""), NULL), 1)
        self.frame()  # sasl-outcome
        self.sock.sendall(AMQP_HEADER)
        # Frames of up to 1 MiB, so each event here is one transfer frame.
        self.send(0, performative(0x10, e_str("consumer"), e_str("localhost"), e_uint(1 << 20)))
        assert self.read(8) == AMQP_HEADER
        self.frame()  # open
        self.send(1, performative(0x11, NULL, e_uint(0), e_uint(window), e_uint(100)))
        _, code, _, _ = self.frame()
        assert code == 0x11
        self.put_token()
        self.received_frames = 1  # the put-token's answer was a transfer frame too
        self.handles: dict[int, int] = {}  # our handle -> the stand-in's

    def link(
        self,
        handle: int,
        address: str,
        selector: str | None = None,
        owner_level: int | None = None,
    ) -> tuple[int, list[Any]]:
        """Attach a consumer link; returns the attach answer (code, fields)."""
        filters = {Symbol(SELECTOR): Described(Symbol(SELECTOR), selector)} if selector else None
        source = encode_value(
            Described(0x28, [address, 0, Symbol("session-end"), 0, False, None, None, filters])
        )
        properties = (
            encode_value({Symbol("com.microsoft:epoch"): owner_level})
            if owner_level is not None
            else NULL
        )
        self.send(
            1,
            performative(
                0x12,
                e_str(f"consumer-{handle}"),
                e_uint(handle),
                TRUE,  # role: receiver
                e_uint(0),
                e_uint(0),
                source,
                encode_value(Described(0x29, ["me"])),
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                properties,
            ),
        )
        _, code, attached, _ = self.frame()
        assert code == 0x12 and len(attached) == 14
        assert attached[2] is False and attached[9] == 0  # the stand-in sends, from count 0
        self.handles[handle] = attached[1]
        return code, attached

    def flow(
        self,
        handle: int,
        delivery_count: int,
        credit: int,
        drain: bool = False,
        echo: bool = False,
        next_incoming: int | None = None,
    ) -> None:
        """A link flow; the session part opens ``window`` frames past ``next_incoming``
        (default: past every frame received)."""
        self.send(
            1,
            performative(
                0x13,
                e_uint(self.received_frames if next_incoming is None else next_incoming),
                e_uint(self.window),
                e_uint(0),
                e_uint(100),
                e_uint(handle),
                e_uint(delivery_count),
                e_uint(credit),
                NULL,
                e_bool(drain),
                e_bool(echo),
            ),
        )

    def next(self) -> tuple[int, list[Any], bytes]:
        _, code, fields, payload = self.frame()
        if code == 0x14:
            self.received_frames += 1
        return code, fields, payload

    def events(self, n: int) -> list[Any]:
        """The next ``n`` transfers, decoded (each event is one frame here)."""
        out = []
        for _ in range(n):
            code, fields, payload = self.next()
            assert code == 0x14, (code, fields)
            assert fields[4] is True and fields[5] is False  # settled, whole
            out.append(decode_message(payload))
        return out


def _address(partition: str = "0", group: str = "$Default") -> str:
    return f"amqps://localhost/{HUB}/ConsumerGroups/{group}/Partitions/{partition}"


def test_credit_is_honoured_to_the_event_and_drain_ends_with_a_flow(hub: HubProcess) -> None:
    assert (
        hub.post(
            [item(f"e{i}", idempotency_key=f"k{i}") for i in range(10)], partition="0"
        ).status_code
        == 201
    )
    base = hub.events()[0]["sequence_number"]
    peer = Consumer(hub)
    try:
        peer.link(5, _address("0"))
        ours = peer.handles[5]
        peer.flow(5, 0, 3)
        first = peer.events(3)
        assert [m.body for m in first] == [b"e0", b"e1", b"e2"]
        assert first[1].annotations["x-opt-sequence-number"] == base + 1
        assert first[1].application_properties == {"idempotency_key": "k1"}
        peer.flow(5, 3, 0, echo=True)  # the answer comes before any fourth transfer
        code, flow, _ = peer.next()
        assert code == 0x13 and flow[4:9] == [ours, 3, 0, 7, False]  # count, credit, available
        peer.flow(5, 3, 100, drain=True)
        assert [m.body for m in peer.events(7)] == [f"e{i}".encode() for i in range(3, 10)]
        code, flow, _ = peer.next()
        assert code == 0x13 and flow[5:9] == [103, 0, 0, True]  # credit used up by the drain
        assert hub.post([item("late")], partition="0").status_code == 201
        peer.flow(5, 103, 1)
        (late,) = peer.events(1)
        assert late.body == b"late" and late.annotations["x-opt-sequence-number"] == base + 10
    finally:
        peer.close()


def test_the_session_window_holds_transfers_back(hub: HubProcess) -> None:
    assert hub.post([item(f"w{i}") for i in range(6)], partition="1").status_code == 201
    peer = Consumer(hub, window=2)
    try:
        peer.link(5, _address("1"))
        peer.flow(5, 0, 10)  # plenty of link credit, a window of 2 frames
        assert [m.body for m in peer.events(2)] == [b"w0", b"w1"]
        peer.flow(5, 2, 8, echo=True, next_incoming=1)  # the window stays shut
        code, flow, _ = peer.next()
        assert code == 0x13 and flow[6] == 8  # an answer, and no third transfer before it
        peer.flow(5, 2, 8)  # now open: 2 frames past the 3 received
        assert [m.body for m in peer.events(2)] == [b"w2", b"w3"]
    finally:
        peer.close()


def test_consumer_links_that_cannot_be_are_refused_with_the_services_conditions(
    hub: HubProcess,
) -> None:
    assert hub.post([item("only")], partition="0").status_code == 201
    last = hub.events()[0]["sequence_number"]
    selector_past_end = event_position_selector(last + 5, False).decode()
    cases = [
        (_address("0", "nope"), None, None, "amqp:not-found", "consumer group 'nope'"),
        (_address("9"), None, None, "amqp:not-found", "no partition '9'"),
        (f"{HUB}/ConsumerGroups/$Default", None, None, "amqp:not-found", "not a consumer"),
        (_address("0"), "amqp.annotation.x-opt-foo > '1'", None, "amqp:invalid-field", "foo"),
        (
            _address("0"),
            selector_past_end,
            None,
            "com.microsoft:argument-error",
            f"The supplied sequence number '{last + 5}' is invalid. The last sequence number in the "
            f"system is '{last}'",
        ),
    ]
    peer = Consumer(hub)
    try:
        for handle, (address, selector, level, condition, reason) in enumerate(cases, start=5):
            peer.link(handle, address, selector, level)
            code, detach, _ = peer.next()
            assert code == 0x16 and detach[1] is True, detach
            assert detach[2].value[0] == condition and reason in detach[2].value[1]
    finally:
        peer.close()


def test_owner_levels_and_the_five_reader_limit(hub: HubProcess) -> None:
    peer = Consumer(hub)

    def detached() -> tuple[int, str, str]:
        code, detach, _ = peer.next()
        assert code == 0x16 and detach[1] is True
        return detach[0], detach[2].value[0], detach[2].value[1]

    try:
        for handle in range(5, 10):  # five readers without an owner level share a partition
            peer.link(handle, _address("3", GROUP))
        peer.link(10, _address("3", GROUP))
        _, condition, reason = detached()
        assert condition == "amqp:resource-limit-exceeded"
        assert "maximum number of allowed receivers per partition" in reason
        peer.link(11, _address("3", "$Default"))  # another group is another count
        peer.link(12, _address("3", GROUP), owner_level=2)  # takes it from all five
        stolen = [detached() for _ in range(5)]
        assert {h for h, _, _ in stolen} == {peer.handles[h] for h in range(5, 10)}
        assert {c for _, c, _ in stolen} == {"amqp:link:stolen"}
        assert "with owner level 2 took partition '3'" in stolen[0][2]
        peer.link(13, _address("3", GROUP), owner_level=1)  # lower: cannot join the holder
        assert detached()[1:] == (
            "amqp:link:stolen",
            f"a receiver with the higher owner level 2 holds partition '3' of event hub "
            f"'{HUB}' (consumer group '{GROUP}'); one with 1 cannot be created",
        )
        peer.link(14, _address("3", GROUP))  # none: cannot join either
        assert detached()[1] == "amqp:link:stolen"
        peer.link(15, _address("3", GROUP), owner_level=2)  # an equal level takes it over
        handle, condition, _ = detached()
        assert (handle, condition) == (peer.handles[12], "amqp:link:stolen")
    finally:
        peer.close()


def test_a_consumer_that_stops_reading_costs_a_bounded_buffer(hub: HubProcess) -> None:
    body = "z" * 10_000
    total = 5000  # 50 MB: far more than the socket buffers on both sides can hold (~10 MB)
    for start in range(0, total, 80):
        batch = [item(f"{n:05d}{body}") for n in range(start, min(start + 80, total))]
        assert hub.post(batch, partition="2").status_code == 201
    peer = Consumer(hub, window=100_000)
    try:
        peer.link(5, _address("2"))
        peer.flow(5, 0, 100_000)  # credit for everything; then the peer reads nothing
        (reader,) = _wait_for_consumers(hub, 1, "socket full")
        assert reader["next_sequence_number"] < total // 2
        got = [m.body[:5] for m in peer.events(total)]  # reading again resumes the flow
        assert got == [f"{n:05d}".encode() for n in range(total)]
    finally:
        peer.close()


# ---- a bounded hub ----------------------------------------------------------------------------


def test_a_full_hub_refuses_rest_and_amqp_sends_and_keeps_what_it_has() -> None:
    for small in started("--hub", "small", "--partitions", "1", "--max-events", "3"):
        assert small.post([item("a"), item("b")], hub="small").status_code == 201
        refused = small.post([item("c"), item("d")], hub="small")
        assert refused.status_code == 403
        assert "QuotaExceeded: event hub 'small' holds 2 of at most 3 events" in refused.text
        producer = EventHubProducerClient.from_connection_string(small.first_line, retry_total=0)
        try:
            batch = producer.create_batch()
            batch.add(EventData(b"c"))
            batch.add(EventData(b"d"))
            with pytest.raises(EventDataSendError, match="ResourceLimitExceeded") as refused_amqp:
                producer.send_batch(batch)
            assert "QuotaExceeded: event hub 'small' holds 2" in str(refused_amqp.value)
            producer.send_event(EventData(b"fits"))
        finally:
            producer.close()
        assert [e["body"] for e in small.events("small")] == ["a", "b", "fits"]
        assert small.stats()["rejections"] == {"403": 3}  # REST once, the SDK's send twice


def test_a_restarted_stand_in_with_data_still_has_every_event(tmp_path: Any) -> None:
    args = (
        "--hub",
        "kept",
        "--partitions",
        "2",
        "--key-name",
        KEY_NAME,
        "--key",
        KEY,
        "--data",
        str(tmp_path),
    )
    first = HubProcess(*args)
    try:
        producer = EventHubProducerClient.from_connection_string(first.first_line)
        try:
            for user in ("u1", "u2"):
                batch = producer.create_batch(partition_key=user)
                batch.add(EventData(f"{user}-a"))
                batch.add(EventData(f"{user}-b"))
                producer.send_batch(batch)
        finally:
            producer.close()
        before = first.events("kept")
        first.proc.kill()  # no clean shutdown: what was acknowledged is on disk already
        first.proc.wait(10)
    finally:
        first.stop()
    second = HubProcess(*args)
    try:
        assert second.events("kept") == before
        assert second.post([item("u1-c", "u1")], hub="kept").status_code == 201
        got = consume(second.first_line, 5, starting_position="-1")
        by_key: dict[bytes, list[tuple[int, str]]] = {}
        for event in got:
            assert event.partition_key is not None
            by_key.setdefault(event.partition_key, []).append(
                (event.sequence_number or 0, event.body_as_str())
            )
        assert by_key[b"u1"] == [(0, "u1-a"), (1, "u1-b"), (2, "u1-c")]  # numbering went on
        assert by_key[b"u2"] == [(0, "u2-a"), (1, "u2-b")]
    finally:
        second.stop()
    held = HubProcess(*args)
    try:
        clash = HubProcess(*args)  # the same directory: refused while the first holds it
        clash.stop()
        raise AssertionError("a second stand-in started on a directory in use")
    except RuntimeError as exc:
        assert "is in use by another hub stand-in" in str(exc)
    finally:
        held.stop()


def test_uuid_and_timestamp_properties_go_back_as_they_came(hub: HubProcess) -> None:
    producer = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    ident = uuid.UUID(int=99)
    try:
        event = EventData(b"typed")
        event.properties = {"id": ident, "big": 2**30, "neg": -5, "f": 0.5, "none": None}
        producer.send_event(event, partition_id="1")
    finally:
        producer.close()
    (got,) = consume(hub.first_line, 1, partition_id="1", starting_position="-1")
    assert got.properties == {b"id": ident, b"big": 2**30, b"neg": -5, b"f": 0.5, b"none": None}
