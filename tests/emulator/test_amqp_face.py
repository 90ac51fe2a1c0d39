"""The stand-in's AMQP face, spoken to by the real, unmodified azure-eventhub SDK and by a raw peer.

The SDK tests prove the face is good enough for the client we ship; the raw-peer tests pin what
the SDK cannot show: every performative carries every field, continuation frames may be bare,
and the refusals are proper AMQP.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubProducerClient
from azure.eventhub.exceptions import (
    AuthenticationError,
    EventDataSendError,
    EventHubError,
)

from audiencehub.emulator.amqp import (
    NULL,
    SASL_HEADER,
    Described,
    Symbol,
    decode_message,
    decode_value,
    e_bin,
    e_bool,
    e_uint,
    e_ushort,
    encode_value,
    performative,
)
from audiencehub.emulator.messages import BATCH_FORMAT
from tests.emulator.helpers import HubProcess, item
from tests.emulator.rawpeer import HUB, KEY, KEY_NAME, RawPeer
from workers.delivery.eventhub.partitions import partition_for_key
from workers.delivery.eventhub.sas import make_token

OTHER = "audit"
IDS = ["0", "1", "2", "3"]
HUB_ARGS = ("--hub", HUB, "--hub", OTHER, "--partitions", "4", "--key-name", KEY_NAME, "--key", KEY)


@pytest.fixture(scope="module")
def producer(hub: HubProcess) -> Iterator[EventHubProducerClient]:
    client = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    yield client
    client.close()


def _conn_string(hub: HubProcess, **parts: str) -> str:
    values = {
        "Endpoint": f"sb://{hub.conn.namespace}/",
        "SharedAccessKeyName": KEY_NAME,
        "SharedAccessKey": KEY,
        "EntityPath": HUB,
        "UseDevelopmentEmulator": "true",
        **parts,
    }
    return ";".join(f"{k}={v}" for k, v in values.items() if v)


# ---- the SDK ----------------------------------------------------------------------------------


def test_management_reports_the_hub_and_its_partitions(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    props = producer.get_eventhub_properties()
    assert props["eventhub_name"] == HUB
    assert props["partition_ids"] == IDS
    assert abs(props["created_at"].timestamp() - time.time()) < 600
    assert producer.get_partition_ids() == IDS
    before = producer.get_partition_properties("2")  # numbering goes on across resets
    batch = producer.create_batch(partition_id="2")
    for i in range(3):
        batch.add(EventData(f"e{i}"))
    producer.send_batch(batch)
    two = producer.get_partition_properties("2")
    assert (two["id"], two["is_empty"]) == ("2", False)
    assert two["last_enqueued_sequence_number"] == before["last_enqueued_sequence_number"] + 3
    assert two["beginning_sequence_number"] == before["last_enqueued_sequence_number"] + 1
    assert producer.get_partition_properties("3")["is_empty"] is True


def test_a_keyed_batch_lands_on_the_key_partition_with_its_properties(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    batch = producer.create_batch(partition_key="user-7")
    for i in range(5):
        event = EventData(f'{{"n": {i}}}'.encode())
        event.properties = {"idempotency_key": f"job:user-7:{i}", "n": i, "ok": True, "r": 0.5}
        batch.add(event)
    producer.send_batch(batch)
    events = hub.events()
    assert [e["body"] for e in events] == [f'{{"n": {i}}}' for i in range(5)]
    assert events[3]["user_properties"] == {
        "idempotency_key": "job:user-7:3",
        "n": 3,
        "ok": True,
        "r": 0.5,
    }
    assert {e["partition_id"] for e in events} == {partition_for_key("user-7", IDS)}
    assert {e["partition_key"] for e in events} == {"user-7"}
    assert events[0]["broker_properties"] == {"PartitionKey": "user-7"}
    assert {e["face"] for e in events} == {"amqp"}
    assert hub.requests("amqp") == {"201": 1}  # one batch, one publication


def test_single_events_by_key_and_by_partition_id(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    producer.send_event(EventData(b"keyed"), partition_key="k-1")
    producer.send_event(EventData(b"pinned"), partition_id="3")
    event = EventData(b"\xff\x00binary")
    event.properties = {"raw": b"\x01\x02"}
    producer.send_event(event, partition_id="0")
    keyed, pinned, binary = hub.events()
    assert (keyed["partition_id"], keyed["partition_key"]) == (partition_for_key("k-1", IDS), "k-1")
    assert (pinned["partition_id"], pinned["partition_key"], pinned["body"]) == (
        "3",
        None,
        "pinned",
    )
    assert binary["body_encoding"] == "base64" and binary["body"] == "/wBiaW5hcnk="
    assert binary["user_properties"] == {"raw": "AQI="}  # binary properties read back as base64


def test_keyless_batches_stay_whole_and_go_round_robin(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    for b in range(4):
        batch = producer.create_batch()
        for i in range(3):
            batch.add(EventData(f"b{b}e{i}"))
        producer.send_batch(batch)
    by_batch: dict[str, set[str]] = {}
    for event in hub.events():
        by_batch.setdefault(event["body"][:2], set()).add(event["partition_id"])
    assert all(len(parts) == 1 for parts in by_batch.values())
    assert sorted(next(iter(p)) for p in by_batch.values()) == IDS


def test_a_full_batch_crosses_many_frames_and_arrives_whole_and_in_order(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    batch = producer.create_batch(partition_id="1")
    count = 0
    while True:
        try:
            batch.add(EventData(f'{{"seq": {count:06d}, "pad": "{"x" * 380}"}}'))
        except ValueError:
            break
        count += 1
    assert batch.size_in_bytes > 1_000_000  # the face advertises the 1 MiB limit on the link
    producer.send_batch(batch)
    events = hub.events()
    assert len(events) == count
    assert [int(e["body"][8:14]) for e in events] == list(range(count))
    assert hub.requests("amqp") == {"201": 1}


def test_rest_and_amqp_put_every_key_on_the_same_partition(
    hub: HubProcess, producer: EventHubProducerClient
) -> None:
    keys = [f"user-{i}" for i in range(30)] + ["7", "ü-straße", "日本", "a" * 128]
    for key in keys:  # one key per REST send, as the service takes them
        assert hub.post([item(f"rest:{key}", key)]).status_code == 201
    for key in keys:
        producer.send_event(EventData(f"amqp:{key}"), partition_key=key)
    placed: dict[tuple[str, str], str] = {}
    for event in hub.events():
        face, _, key = event["body"].partition(":")
        placed[(face, key)] = event["partition_id"]
        assert event["partition_key"] == key
    for key in keys:
        assert placed[("rest", key)] == placed[("amqp", key)] == partition_for_key(key, IDS)
    assert hub.stats()["hubs"][HUB]["key_partition_mismatches"] == 0


def test_a_wrong_key_is_refused_at_put_token_and_the_key_stays_secret(hub: HubProcess) -> None:
    wrong = "d3Jvbmcta2V5LXRoYXQtc2hvdWxkLW5ldmVyLWJlLXNob3du"
    client = EventHubProducerClient.from_connection_string(
        _conn_string(hub, SharedAccessKey=wrong), retry_total=0
    )
    try:
        with pytest.raises(AuthenticationError) as mgmt:
            client.get_partition_ids()
        with pytest.raises(AuthenticationError) as send:
            client.send_event(EventData(b"x"), partition_key="k")
    finally:
        client.close()
    for err in (mgmt.value, send.value):
        assert "401" in str(err) and "signature does not match" in str(err)
        assert wrong not in str(err) and KEY not in str(err)
    assert hub.events() == []
    assert int(hub.requests("amqp")["401"]) >= 2


def test_an_unknown_key_name_is_refused(hub: HubProcess) -> None:
    client = EventHubProducerClient.from_connection_string(
        _conn_string(hub, SharedAccessKeyName="listen"), retry_total=0
    )
    try:
        with pytest.raises(AuthenticationError, match="unknown SharedAccessKeyName 'listen'"):
            client.get_partition_ids()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("resource", "expiry", "reason"),
    [
        (f"/{OTHER}", 3600, "does not cover event hub"),
        ("", -60, "token expired"),
    ],
)
def test_a_token_must_cover_the_hub_and_be_current(
    hub: HubProcess, resource: str, expiry: int, reason: str
) -> None:
    # A connection string carrying a ready-made signature: the SDK puts it as given.
    token = make_token(
        f"sb://{hub.conn.namespace}{resource}", KEY_NAME, KEY, int(time.time()) + expiry
    )
    conn = _conn_string(
        hub, SharedAccessKeyName="", SharedAccessKey="", SharedAccessSignature=token
    )
    client = EventHubProducerClient.from_connection_string(conn, retry_total=0)
    try:
        with pytest.raises(AuthenticationError) as err:
            client.send_event(EventData(b"x"), partition_key="k")
    finally:
        client.close()
    assert reason in str(err.value)
    assert hub.events() == []


@pytest.mark.parametrize(
    ("rule", "condition"),
    [
        ({"status": 503, "retry_after": 3}, "server-busy"),
        (
            {"status": 429, "amqp_condition": "amqp:resource-limit-exceeded"},
            "resource-limit-exceeded",
        ),
        ({"status": 413}, "link:message-size-exceeded"),
        ({"status": 401}, "unauthorized-access"),
    ],
)
def test_rejected_deliveries_carry_the_condition_and_store_nothing(
    hub: HubProcess, producer: EventHubProducerClient, rule: dict[str, Any], condition: str
) -> None:
    # send_batch retries a failed send once by itself, so the hub refuses twice.
    hub.plan({**rule, "face": "amqp", "op": "send", "count": 2})
    batch = producer.create_batch(partition_key="user-1")
    batch.add(EventData(b"refused"))
    with pytest.raises(EventDataSendError) as err:
        producer.send_batch(batch)
    assert err.value.error == condition
    if rule.get("retry_after"):
        assert "Please wait 3 seconds" in str(err.value)
    assert hub.events() == []
    assert hub.requests("amqp") == {str(rule["status"]): 2}
    producer.send_event(EventData(b"accepted"), partition_key="user-1")
    assert [e["body"] for e in hub.events()] == ["accepted"]


def test_a_cbs_fault_fails_authentication(hub: HubProcess) -> None:
    hub.plan({"status": 401, "op": "auth", "count": 1, "message": "planned refusal"})
    client = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    try:
        with pytest.raises(AuthenticationError, match="planned refusal"):
            client.get_partition_ids()
        assert client.get_partition_ids() == IDS  # the plan is spent
    finally:
        client.close()
    assert hub.stats()["faults_fired"] == {"401": 1}


def test_a_dropped_connection_loses_the_delivery_and_the_sdk_reconnects(hub: HubProcess) -> None:
    client = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    try:
        client.send_event(EventData(b"before"), partition_id="0")
        hub.plan({"drop": True, "op": "send", "count": 2})
        with pytest.raises(EventHubError) as err:
            client.send_event(EventData(b"dropped"), partition_id="0")
        assert not isinstance(err.value, EventDataSendError)  # lost, not refused
        client.send_event(EventData(b"after"), partition_id="0")
    finally:
        client.close()
    assert [e["body"] for e in hub.events()] == ["before", "after"]
    assert hub.stats()["rejections"] == {"dropped": 2}


def test_a_delay_holds_the_answer_back(hub: HubProcess, producer: EventHubProducerClient) -> None:
    hub.plan({"delay_ms": 500, "op": "send", "count": 1})
    start = time.monotonic()
    producer.send_event(EventData(b"late"), partition_key="user-9")
    assert time.monotonic() - start >= 0.5
    assert [e["body"] for e in hub.events()] == ["late"]
    assert hub.stats()["faults_fired"] == {"delay": 1}


def test_an_unknown_hub_is_not_found(hub: HubProcess) -> None:
    client = EventHubProducerClient.from_connection_string(
        _conn_string(hub, EntityPath="nope"), retry_total=0
    )
    try:
        with pytest.raises(EventHubError, match="does not exist"):
            client.get_partition_ids()
    finally:
        client.close()


def test_clients_close_cleanly(hub: HubProcess) -> None:
    client = EventHubProducerClient.from_connection_string(hub.first_line, retry_total=0)
    client.send_event(EventData(b"x"), partition_key="k")
    client.close()
    time.sleep(0.2)
    log = hub.log()
    for bad in ("decode-error", "internal-error", "Traceback", "framing-error"):
        assert bad not in log


def test_stopping_the_stand_in_closes_its_amqp_connections() -> None:
    proc = HubProcess("--hub", HUB, "--partitions", "1")
    client = EventHubProducerClient.from_connection_string(proc.first_line, retry_total=0)
    try:
        client.send_event(EventData(b"x"), partition_id="0")
        start = time.monotonic()
        assert proc.signal(signal.SIGTERM) == 0
        assert time.monotonic() - start < 5
        with pytest.raises(EventHubError):
            client.send_event(EventData(b"y"), partition_id="0")
    finally:
        client.close()
        proc.stop()


# ---- a raw AMQP peer --------------------------------------------------------------------------


def test_every_performative_carries_every_field(hub: HubProcess) -> None:
    peer = RawPeer(hub)
    try:
        opened = peer.open()
        assert len(opened) == 10 and opened[0] == "audiencehub-hub-emulator"
        assert opened[2] == 65536  # max-frame-size
        began = peer.begin()
        assert len(began) == 8 and began[0] == 1  # remote-channel
        peer.put_token()
        attached = peer.attach("events", 2, False, HUB)
        assert len(attached) == 14
        assert attached[5].descriptor == 0x28 and len(attached[5].value) == 11  # source
        assert attached[6].descriptor == 0x29 and len(attached[6].value) == 7  # target
        assert attached[6].value[0] == HUB and attached[10] == 1_048_576  # max-message-size
        _, code, flow, _ = peer.frame()
        assert code == 0x13 and len(flow) == 11 and flow[6] == 500  # link-credit
        peer.send(1, performative(0x18, NULL))  # close
        _, code, closed, _ = peer.frame()
        assert code == 0x18 and closed == [None]
    finally:
        peer.close()


@pytest.mark.parametrize("scheme", ["sb://", ""])
def test_a_put_token_for_another_namespace_is_refused(hub: HubProcess, scheme: str) -> None:
    """The audience names the namespace addressed, with or without a scheme: a token whose
    ``sr`` names another namespace is refused either way (as REST refuses it by Host)."""
    other = hub.token(HUB, uri=f"sb://elsewhere.servicebus.windows.net/{HUB}", key=KEY)
    here = hub.token(HUB, key=KEY, key_name=KEY_NAME)
    audience = f"{scheme}{hub.conn.namespace}/{HUB}"
    for token, status in ((other, 401), (here, 202)):
        peer = RawPeer(hub)
        try:
            peer.open()
            peer.begin()
            assert peer.put_token(token, audience) == status
        finally:
            peer.close()


def test_a_management_token_must_be_for_the_namespace_the_open_named(hub: HubProcess) -> None:
    """``$management`` READ carrying its own ``security_token``: refused when the token names
    another namespace than the host the connection's open named (the SDK names the endpoint's),
    answered when it names that one; an open that names no host leaves it uncompared."""
    other = hub.token(HUB, uri=f"sb://elsewhere.servicebus.windows.net/{HUB}", key=KEY)
    here = hub.token(HUB, key=KEY, key_name=KEY_NAME)
    host = hub.conn.namespace.partition(":")[0]  # the port is compared only when both name one
    cases = [
        (host, other, 401, "another namespace"),
        ("elsewhere.servicebus.windows.net", here, 401, "another namespace"),
        (host, here, 200, "OK"),
        (hub.conn.namespace, here, 200, "OK"),
    ]
    for hostname, token, status, text in cases:
        peer = RawPeer(hub)
        try:
            peer.open(hostname)
            peer.begin()
            got, description = peer.read_hub(token)
            assert (got, text in description) == (status, True), (hostname, description)
        finally:
            peer.close()


def test_a_delivery_split_over_bare_continuation_frames(hub: HubProcess) -> None:
    inner = [
        encode_value(Described(0x72, {Symbol("x-opt-partition-key"): "user-3"}))
        + encode_value(Described(0x74, {"idempotency_key": f"k{i}"}))
        + encode_value(Described(0x75, f"body-{i}".encode()))
        for i in range(3)
    ]
    payload = b"".join(encode_value(Described(0x75, m)) for m in inner)
    peer = RawPeer(hub)
    try:
        peer.open()
        peer.begin()
        peer.put_token()
        peer.attach("events", 2, False, f"amqps://{hub.conn.namespace}/{HUB}/Partitions/2")
        peer.frame()  # flow
        third = len(payload) // 3
        head = performative(
            0x14,
            e_uint(2),
            e_uint(1),
            e_bin(b"t1"),
            e_uint(BATCH_FORMAT),
            e_bool(False),
            e_bool(True),
        )
        peer.send(1, head + payload[:third])
        more = performative(0x14, e_uint(2), NULL, NULL, NULL, NULL, e_bool(True))
        peer.send(1, more + payload[third : 2 * third])
        peer.send(1, performative(0x14, e_uint(2)) + payload[2 * third :])
        _, code, fields, _ = peer.frame()
        assert code == 0x15 and fields[1:4] == [1, 1, True]
        assert fields[4] == Described(0x24, [])  # accepted
    finally:
        peer.close()
    events = hub.events()
    assert [e["body"] for e in events] == ["body-0", "body-1", "body-2"]
    assert {e["partition_id"] for e in events} == {"2"}
    assert events[1]["user_properties"] == {"idempotency_key": "k1"}
    # user-3 hashes to partition 1: kept where the link said, and counted.
    assert partition_for_key("user-3", IDS) != "2"
    assert hub.stats()["hubs"][HUB]["key_partition_mismatches"] == 3


def test_a_batch_placed_by_a_partition_key_over_128_characters_is_rejected(
    hub: HubProcess,
) -> None:
    """The key that places a batch is the envelope's own; its events carry none here."""
    inner = encode_value(Described(0x75, b"body"))
    payload = encode_value(
        Described(0x72, {Symbol("x-opt-partition-key"): "k" * 129})
    ) + encode_value(Described(0x75, inner))
    peer = RawPeer(hub)
    try:
        peer.open()
        peer.begin()
        peer.put_token()
        peer.attach("events", 2, False, HUB)
        peer.frame()  # flow
        head = performative(
            0x14, e_uint(2), e_uint(1), e_bin(b"t1"), e_uint(BATCH_FORMAT), e_bool(False)
        )
        peer.send(1, head + payload)
        _, code, fields, _ = peer.frame()
        assert code == 0x15 and fields[4].descriptor == 0x25  # rejected
        assert fields[4].value[0].value[0] == "amqp:invalid-field"
        assert "the batch's partition key is 129 characters" in fields[4].value[0].value[1]
    finally:
        peer.close()
    assert hub.events() == []


def test_an_oversized_delivery_is_rejected_and_a_huge_one_detaches_the_link(
    hub: HubProcess,
) -> None:
    message = encode_value(Described(0x75, b"x" * 1_100_000))  # over the 1 MiB limit
    peer = RawPeer(hub)
    try:
        peer.open()
        peer.begin()
        peer.put_token()
        peer.attach("events", 2, False, HUB)
        peer.frame()  # flow
        peer.transfer(2, 1, message)
        _, code, fields, _ = peer.frame()
        assert code == 0x15 and fields[4].descriptor == 0x25  # rejected
        assert fields[4].value[0].value[0] == "amqp:link:message-size-exceeded"
        chunk = b"y" * (4 * 1024 * 1024)
        head = performative(
            0x14, e_uint(2), e_uint(2), e_bin(b"t2"), e_uint(0), e_bool(False), e_bool(True)
        )
        for _ in range(5):  # 20 MiB, past the 16 MiB point where the stand-in stops reading
            peer.send(1, head + chunk)
        _, code, fields, _ = peer.frame()
        assert code == 0x16 and fields[2].value[0] == "amqp:link:message-size-exceeded"
        peer.send(1, head + chunk)  # still in flight when the link went: ignored
        peer.send(1, performative(0x16, e_uint(2), e_bool(True)))
        peer.send(1, performative(0x18, NULL))
        _, code, fields, _ = peer.frame()
        assert (code, fields) == (0x18, [None])  # a clean close, not a protocol error
    finally:
        peer.close()
    assert hub.events() == []
    assert hub.requests("amqp") == {"413": 2}


def test_links_that_cannot_work_are_attached_then_detached_with_a_reason(hub: HubProcess) -> None:
    peer = RawPeer(hub)
    try:
        peer.open()
        peer.begin()
        cases = [
            (False, HUB, "amqp:unauthorized-access"),  # no put-token yet
            (False, "nope", "amqp:not-found"),
            (False, f"{OTHER}/Partitions/9", "amqp:not-found"),
            # Consumers too need a token (tests/emulator/test_amqp_consumer.py has the rest).
            (True, f"{HUB}/ConsumerGroups/$Default/Partitions/0", "amqp:unauthorized-access"),
        ]
        for handle, (receiver, address, condition) in enumerate(cases):
            peer.attach(f"l{handle}", handle, receiver, address)
            _, code, fields, _ = peer.frame()
            assert code == 0x16 and fields[1] is True
            assert fields[2].descriptor == 0x1D and fields[2].value[0] == condition
            assert len(fields[2].value) == 3
    finally:
        peer.close()


def test_an_unknown_protocol_header_gets_ours_and_a_closed_socket(hub: HubProcess) -> None:
    peer = RawPeer(hub)
    try:
        peer.sock.sendall(b"AMQP\x02\x01\x00\x00")  # TLS: not offered
        assert peer.read(8) == SASL_HEADER
        assert peer.sock.recv(1) == b""
    finally:
        peer.close()


def test_the_sdk_encoding_decodes_with_strings_kept_apart_from_binary() -> None:
    from azure.eventhub import EventDataBatch
    from azure.eventhub._pyamqp._encode import encode_payload  # the SDK's own encoder, as reference

    batch = EventDataBatch(max_size_in_bytes=100_000, partition_key="user-1")
    event = EventData(b"body")
    event.properties = {"s": "text", "b": b"\x00\x01", "i": 7, "f": 1.5, "t": True, "n": None}
    batch.add(event)
    payload = bytes(encode_payload(bytearray(), batch._message))
    outer = decode_message(payload)
    assert outer.annotations == {"x-opt-partition-key": "user-1"}
    (inner,) = [decode_message(part) for part in outer.data]
    assert inner.body == b"body"
    assert inner.application_properties == {
        "s": "text",
        "b": b"\x00\x01",
        "i": 7,
        "f": 1.5,
        "t": True,
        "n": None,
    }
    assert Counter(type(v).__name__ for v in inner.application_properties.values())["str"] == 1


def test_codec_round_trips() -> None:
    values: list[Any] = [
        None,
        True,
        0,
        -5,
        2**40,
        "ü" * 300,
        Symbol("sym"),
        b"\x00" * 300,
        1.25,
        uuid.UUID(int=7),
        [1, "a", [None]],
        {"k": {"n": [1, 2]}},
        Described(0x24, []),
    ]
    for value in values:
        encoded = encode_value(value)
        decoded, end = decode_value(encoded)
        assert end == len(encoded)
        assert decoded == value and type(decoded) is type(value)
    assert decode_value(e_ushort(65535))[0] == 65535
