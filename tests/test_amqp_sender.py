"""``AmqpSender`` (the SDK behind the ``Sender`` protocol) against the stand-in's AMQP face."""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub.exceptions import AuthenticationError, EventDataSendError

from tests.emulator.helpers import HubProcess, started
from workers.delivery.eventhub.amqp import (
    AmqpSender,
    _redact,
    amqp_event,
    classify_sdk_error,
    encoded_size,
)
from workers.delivery.eventhub.partitions import partition_for_key
from workers.delivery.eventhub.sender import HubError, OutMessage

HUB = "audiences"
IDS = ["0", "1", "2", "3"]


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    yield from started("--hub", HUB, "--partitions", "4")


@pytest.fixture(autouse=True)
def _clean(hub: HubProcess) -> None:
    hub.reset()


@pytest.fixture(scope="module")
def sender(hub: HubProcess) -> Iterator[AmqpSender]:
    s = AmqpSender(hub.conn)
    yield s
    s.close()


def _messages(n: int, users: int, job: str = "job-1", pad: int = 300) -> list[OutMessage]:
    out = []
    for i in range(n):
        user = f"user-{i % users}"
        body = orjson.dumps({"data": {"user_id": user, "n": i, "pad": "x" * pad}})
        out.append(OutMessage(body, user, f"{job}:{user}:{i}"))
    return out


@pytest.mark.parametrize(
    ("key", "idem", "body"),
    list(
        itertools.product(
            [1, 200, 230, 231, 256], [1, 236, 237, 300], [0, 235, 236, 255, 256, 70_000]
        )
    ),
)
def test_encoded_size_is_exactly_what_the_sdk_counts(key: int, idem: int, body: int) -> None:
    message = OutMessage(b"b" * body, "ü" * (key // 2) + "k" * (key % 2), "i" * idem)
    batch = EventDataBatch(max_size_in_bytes=10_000_000, partition_id="0")
    batch.add(amqp_event(message))
    assert batch.size_in_bytes == encoded_size(message)


def test_messages_go_per_partition_and_each_user_keeps_order(
    hub: HubProcess, sender: AmqpSender
) -> None:
    messages = _messages(600, users=80)
    sender.send(messages)
    events = hub.events()
    assert len(events) == 600
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_user.setdefault(event["partition_key"], []).append(event)
    for user, got in by_user.items():
        sent = [m for m in messages if m.partition_key == user]
        assert [e["body"].encode() for e in got] == [m.body for m in sent]
        assert [e["user_properties"] for e in got] == [
            {"idempotency_key": m.idempotency_key} for m in sent
        ]
        assert {e["partition_id"] for e in got} == {partition_for_key(user, IDS)}
        assert got[0]["broker_properties"] == {"PartitionKey": user}
    assert hub.stats()["hubs"][HUB]["key_partition_mismatches"] == 0
    assert hub.requests("amqp") == {"201": 4}  # one full batch per partition


def test_a_partition_group_bigger_than_the_limit_goes_in_several_batches(
    hub: HubProcess, sender: AmqpSender
) -> None:
    messages = _messages(200, users=3)
    sender.max_batch_bytes = 20_000
    try:
        sender.send(messages)
    finally:
        sender.max_batch_bytes = 1_000_000
    events = hub.events()
    for user in ("user-0", "user-1", "user-2"):
        got = [e["body"].encode() for e in events if e["partition_key"] == user]
        assert got == [m.body for m in messages if m.partition_key == user]
    assert hub.requests("amqp")["201"] >= sum(encoded_size(m) for m in messages) // 20_000
    assert hub.stats()["hubs"][HUB]["bytes"] == sum(len(m.body) for m in messages)


def test_a_message_that_fits_no_batch_is_too_large(hub: HubProcess, sender: AmqpSender) -> None:
    big = OutMessage(b"x" * 30_000, "user-1", "job:user-1:big")
    sender.max_batch_bytes = 20_000
    try:
        with pytest.raises(HubError) as err:
            sender.send([big])
    finally:
        sender.max_batch_bytes = 1_000_000
    assert err.value.kind == "too_large"
    assert hub.events() == []


def test_the_hubs_smaller_limit_wins(hub: HubProcess) -> None:
    with HubProcessScope("--hub", HUB, "--partitions", "1", "--max-batch-bytes", "65536") as small:
        s = AmqpSender(small.conn, max_batch_bytes=1_000_000)
        try:
            messages = _messages(400, users=7)
            s.send(messages)
        finally:
            s.close()
        assert [e["body"].encode() for e in small.events()] == [m.body for m in messages]
        statuses = small.stats()["requests"]["amqp"]["by_status"]
        assert list(statuses) == ["201"] and statuses["201"] >= 3


@pytest.mark.parametrize(
    ("rule", "kind", "retry_after"),
    [
        ({"status": 503, "retry_after": 4}, "throttled", 4.0),
        ({"status": 429, "amqp_condition": "amqp:resource-limit-exceeded"}, "throttled", 1.0),
        ({"status": 413}, "too_large", None),
        ({"status": 400}, "bad_request", None),
        ({"status": 404}, "not_found", None),
        ({"status": 500}, "transient", None),
        ({"drop": True}, "transient", None),
    ],
)
def test_refusals_map_to_error_kinds_and_store_nothing(
    hub: HubProcess, sender: AmqpSender, rule: dict[str, Any], kind: str, retry_after: float | None
) -> None:
    messages = _messages(5, users=1)
    sender.send(messages[:1])  # connected before the plan, so the plan meets the delivery
    hub.reset()
    # The SDK's send_batch sends a failed batch once more by itself: refuse both.
    hub.plan({**rule, "face": "amqp", "op": "send", "count": 2})
    with pytest.raises(HubError) as err:
        sender.send(messages)
    assert (err.value.kind, err.value.retry_after) == (kind, retry_after)
    assert hub.events() == []
    sender.send(messages)  # the plan is spent; the same sender goes on
    assert len(hub.events()) == 5


def test_a_wrong_key_is_unauthorized_and_no_secret_is_in_the_error(hub: HubProcess) -> None:
    wrong = "bm90LXRoZS1rZXktYnV0LXNob3VsZC1zdGlsbC1iZS1zZWNyZXQ="
    conn = dataclasses.replace(hub.conn, key=wrong)
    s = AmqpSender(conn)
    try:
        with pytest.raises(HubError) as err:
            s.send(_messages(3, users=1))
    finally:
        s.close()
    assert err.value.kind == "unauthorized"
    assert "401" in err.value.reason and "signature does not match" in err.value.reason
    for text in (str(err.value), err.value.reason, repr(err.value), repr(err.value.args)):
        assert wrong not in text and hub.conn.key not in text and conn.text() not in text
    assert hub.events() == []


def test_a_refused_put_token_is_unauthorized_until_the_hub_accepts_again(hub: HubProcess) -> None:
    hub.plan({"status": 401, "op": "auth", "message": "key rotated"})
    s = AmqpSender(hub.conn)
    try:
        with pytest.raises(HubError) as err:
            s.send(_messages(2, users=1))
        assert err.value.kind == "unauthorized" and "key rotated" in err.value.reason
        hub.reset()
        s.send(_messages(2, users=1))
    finally:
        s.close()
    assert len(hub.events()) == 2


def test_a_throttled_put_token_is_throttled_not_unauthorized(hub: HubProcess) -> None:
    hub.plan({"status": 503, "op": "auth", "retry_after": 2})
    s = AmqpSender(hub.conn)
    try:
        with pytest.raises(HubError) as err:
            s.send(_messages(1, users=1))
    finally:
        s.close()
    assert err.value.kind == "throttled"


def test_sdk_errors_classify_by_condition() -> None:
    class Rejected(EventDataSendError):
        def __init__(self, message: str, condition: str) -> None:
            super().__init__(message)
            self.error = condition

    assert classify_sdk_error(Rejected("x", "server-busy")) == ("throttled", None)
    assert classify_sdk_error(Rejected("Please wait 7 seconds", "server-busy")) == (
        "throttled",
        7.0,
    )
    assert classify_sdk_error(Rejected("x", "unauthorized-access"))[0] == "unauthorized"
    assert classify_sdk_error(Rejected("x", "invalid-field"))[0] == "bad_request"
    assert classify_sdk_error(Rejected("x", "internal-error"))[0] == "transient"
    assert classify_sdk_error(AuthenticationError("Status code: 403"))[0] == "unauthorized"
    assert classify_sdk_error(AuthenticationError("Authorization timeout."))[0] == "transient"
    assert classify_sdk_error(OSError("reset"))[0] == "transient"


def test_redaction_removes_keys_and_signatures(hub: HubProcess) -> None:
    text = (
        f"failed: {hub.conn.text()} with SharedAccessSignature sr=x&sig=abc%2Bdef&se=1&skn=k "
        f"and key {hub.conn.key}"
    )
    clean = _redact(text, hub.conn)
    assert hub.conn.key not in clean and "abc%2Bdef" not in clean
    assert "SharedAccessKey=***" in clean


def _send_in_child(sender: AmqpSender, messages: list[OutMessage]) -> None:
    sender.send(messages)  # the parent's client came along through fork; a new one is made


def test_a_forked_child_makes_its_own_client_and_the_parent_keeps_its_own(
    hub: HubProcess, sender: AmqpSender
) -> None:
    sender.send(_messages(1, users=1, job="parent-before"))
    child = multiprocessing.get_context("fork").Process(
        target=_send_in_child, args=(sender, _messages(3, users=2, job="child"))
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    sender.send(_messages(1, users=1, job="parent-after"))
    jobs = [e["user_properties"]["idempotency_key"].split(":")[0] for e in hub.events()]
    assert sorted(jobs) == ["child"] * 3 + ["parent-after", "parent-before"]
    copy = pickle.loads(pickle.dumps(sender))
    assert copy._client is None and copy.max_batch_bytes == sender.max_batch_bytes


class HubProcessScope:
    """A second stand-in for one test (context manager)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.hub: HubProcess | None = None

    def __enter__(self) -> HubProcess:
        self.hub = HubProcess(*self.args)
        return self.hub

    def __exit__(self, *exc: object) -> None:
        if self.hub is not None:
            self.hub.stop()
