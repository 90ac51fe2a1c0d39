"""The hub stand-in's REST face over real sockets: what it accepts, refuses, stores and reports."""

from __future__ import annotations

import base64
import socket
import time
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
import requests

from tests.emulator.helpers import BATCH, SINGLE, HubProcess, item, started
from workers.delivery.eventhub.partitions import partition_for_key
from workers.timefmt import parse_rfc3339

HUB = "orders"
OTHER = "Audit.Log"
HUB_ARGS = ("--hub", HUB, "--hub", OTHER, "--partitions", "4", "--key-name", "send")


@pytest.fixture(scope="module")
def lenient() -> Iterator[HubProcess]:
    """A stand-in started with --lenient: placement per event, as it was before it was strict."""
    yield from started(
        "--hub", HUB, "--hub", OTHER, "--partitions", "4", "--key-name", "send", "--lenient"
    )


def _detail(resp: requests.Response) -> str:
    assert resp.headers["Content-Type"].startswith("application/xml")
    text = resp.text
    assert text.startswith(f"<Error><Code>{resp.status_code}</Code><Detail>")
    return text


# ---- the happy path ----------------------------------------------------------------------------


def test_ready_line_is_an_emulator_connection_string(hub: HubProcess) -> None:
    assert hub.conn.emulator and hub.conn.hub == HUB and hub.conn.key_name == "send"
    assert hub.conn.host == "127.0.0.1" and hub.conn.port
    assert len(hub.conn.key) == 44  # a random 32-byte key, base64


def test_good_batch_is_created_and_read_back_exactly(lenient: HubProcess) -> None:
    hub = lenient
    hub.reset()
    sent = [
        item(orjson.dumps({"user_id": f"u{i}", "n": i}).decode(), f"u{i}", idempotency_key=f"k{i}")
        for i in range(50)
    ]
    sent[3]["BrokerProperties"]["MessageId"] = "m-3"
    before = time.time_ns()
    resp = hub.post(sent)
    assert resp.status_code == 201, resp.text
    assert resp.content == b""
    got = hub.events()
    assert [e["body"] for e in got] == [s["Body"] for s in sent]
    assert [e["user_properties"] for e in got] == [s["UserProperties"] for s in sent]
    assert [e["broker_properties"] for e in got] == [s["BrokerProperties"] for s in sent]
    assert [e["partition_key"] for e in got] == [f"u{i}" for i in range(50)]
    ids = ["0", "1", "2", "3"]
    assert [e["partition_id"] for e in got] == [partition_for_key(f"u{i}", ids) for i in range(50)]
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    assert {e["face"] for e in got} == {"rest"}
    assert len({e["request"] for e in got}) == 1
    assert {e["body_encoding"] for e in got} == {"utf-8"}
    assert before <= parse_rfc3339(got[0]["received_at"]) <= time.time_ns()
    assert hub.events(OTHER) == []


def test_single_event_with_broker_properties_header(hub: HubProcess) -> None:
    resp = hub.post(
        b'{"hello": "world"}',
        content_type=SINGLE,
        headers={"BrokerProperties": '{"PartitionKey": "user-9", "Label": "x"}'},
    )
    assert resp.status_code == 201, resp.text
    (event,) = hub.events()
    assert event["body"] == '{"hello": "world"}'
    assert event["partition_key"] == "user-9"
    assert event["broker_properties"] == {"PartitionKey": "user-9", "Label": "x"}
    assert event["partition_id"] == partition_for_key("user-9", ["0", "1", "2", "3"])


def test_hub_names_are_case_insensitive_like_azure(hub: HubProcess) -> None:
    token = hub.token(uri=f"https://{hub.conn.namespace}/audit.log")
    assert hub.post([item("x")], hub="AUDIT.LOG", token=token).status_code == 201
    assert [e["body"] for e in hub.events(OTHER)] == ["x"]


# ---- authorization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda h: h.token(key="not-the-key"), "signature does not match"),
        (lambda h: h.token(expiry=int(time.time()) - 5), "expired"),
        (lambda h: h.token(key_name="listen"), "unknown SharedAccessKeyName 'listen'"),
        (lambda h: h.token(uri=f"https://{h.conn.namespace}/{OTHER}"), "does not cover"),
        (lambda h: h.token(uri=f"https://{h.conn.namespace}/{HUB}x"), "does not cover"),
        (lambda h: "Bearer abc", "not a SharedAccessSignature"),
        (lambda h: h.token().replace("&se=", "&xx="), "must carry sr, sig, se"),
    ],
    ids=[
        "bad-signature",
        "expired",
        "wrong-key-name",
        "other-hub",
        "prefix-hub",
        "bearer",
        "no-se",
    ],
)
def test_bad_tokens_get_401_with_the_reason(hub: HubProcess, make: object, reason: str) -> None:
    token = make(hub)  # type: ignore[operator]
    resp = hub.post([item("x")], token=token)
    assert resp.status_code == 401
    assert reason in _detail(resp)
    assert hub.events() == []


def test_missing_authorization_is_401(hub: HubProcess) -> None:
    resp = hub.session.post(hub.url(), data=b'[{"Body": "x"}]', headers={"Content-Type": BATCH})
    assert resp.status_code == 401
    assert "missing Authorization" in resp.text


def test_token_tampered_after_signing_is_401(hub: HubProcess) -> None:
    token = hub.token()
    future = str(int(time.time()) + 7200)
    tampered = token.replace(token.split("&se=")[1].split("&")[0], future)
    resp = hub.post([item("x")], token=tampered)
    assert resp.status_code == 401 and "signature" in resp.text


@pytest.mark.parametrize(
    "uri",
    [
        "https://{ns}/orders",
        "https://{ns}/orders/messages",
        "https://{ns}/ORDERS",
        "sb://{ns}/orders",
        "https://{ns}/",
        "http://{ns}/orders/partitions/1",
        "{ns}/orders",
        "https://{host}/orders",
    ],
    ids=[
        "hub",
        "longer-path",
        "case",
        "sb-scheme",
        "namespace-wide",
        "partition-path",
        "no-scheme",
        "no-port",
    ],
)
def test_sr_covering_the_hub_is_accepted(hub: HubProcess, uri: str) -> None:
    token = hub.token(uri=uri.format(ns=hub.conn.namespace, host=hub.conn.host))
    assert hub.post([item("x")], token=token).status_code == 201


@pytest.mark.parametrize(
    "uri",
    [
        "sb://some-namespace.servicebus.windows.net/orders",
        "https://localhost.evil/orders",
        "https://{host}:1/orders",
        "other-ns.servicebus.windows.net/orders",
    ],
    ids=["other-namespace", "other-host", "other-port", "no-scheme-other"],
)
def test_a_token_for_another_namespace_is_401(hub: HubProcess, uri: str) -> None:
    token = hub.token(uri=uri.format(host=hub.conn.host))
    resp = hub.post([item("x")], token=token)
    assert resp.status_code == 401
    assert "InvalidAudience" in _detail(resp) and "another namespace" in resp.text
    assert hub.events() == []


# ---- content and shape -------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_wrong_content_type_is_415(hub: HubProcess, content_type: str | None) -> None:
    resp = hub.post([item("x")], content_type=content_type)
    assert resp.status_code == 415
    assert BATCH in _detail(resp)
    assert hub.events() == []


def test_content_type_parameters_are_allowed(hub: HubProcess) -> None:
    resp = hub.post([item("x")], content_type=BATCH + "; charset=utf-8")
    assert resp.status_code == 201


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[{", "body is not valid JSON"),
        (b'{"Body": "x"}', "must be a JSON array"),
        (b"[]", "batch is empty"),
        (b'[{"Body": "a"}, {"Body": "b"}, {"UserProperties": {}}]', "event[2].Body: is missing"),
        (b'[{"Body": 17}]', "event[0].Body: must be a string"),
        (b'[{"Body": "a"}, "b"]', "event[1]: must be a JSON object"),
        (
            b'[{"Body": "a", "UserProperties": []}]',
            "event[0].UserProperties: must be a JSON object",
        ),
        (
            b'[{"Body": "a", "UserProperties": {"k": {"nested": 1}}}]',
            "event[0].UserProperties.k: must be a string, number, boolean or null",
        ),
        (
            b'[{"Body": "a", "BrokerProperties": {"PartitionKey": 5}}]',
            "event[0].BrokerProperties.PartitionKey: must be a string",
        ),
        (b'[{"Body": "a", "body": "b"}]', "event[0]: unknown field(s) body"),
    ],
    ids=[
        "not-json",
        "not-array",
        "empty",
        "missing-body",
        "body-type",
        "item-type",
        "props-type",
        "nested-prop",
        "key-type",
        "unknown-field",
    ],
)
def test_malformed_batches_are_400_naming_the_problem(
    hub: HubProcess, body: bytes, reason: str
) -> None:
    resp = hub.post(body)
    assert resp.status_code == 400
    assert reason in _detail(resp)
    assert hub.events() == []


def test_bad_broker_properties_header_on_single_event_is_400(hub: HubProcess) -> None:
    resp = hub.post(b"x", content_type=SINGLE, headers={"BrokerProperties": "{nope"})
    assert resp.status_code == 400 and "BrokerProperties header" in resp.text


def test_body_over_the_limit_is_413_and_stores_nothing(hub: HubProcess) -> None:
    body = "x" * 1000
    batch = orjson.dumps([item(body) for _ in range(1100)])
    assert len(batch) > 1_048_576
    resp = hub.post(batch)
    assert resp.status_code == 413
    assert "1048576" in _detail(resp)
    assert hub.events() == []
    # Just under the limit is fine.
    fits = orjson.dumps([item(body) for _ in range(1000)])
    assert len(fits) <= 1_048_576
    assert hub.post(fits).status_code == 201


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(hub: HubProcess) -> None:
    with socket.create_connection((hub.conn.host, hub.conn.port or 80), timeout=10) as sock:
        sock.sendall(
            f"POST /{HUB}/messages HTTP/1.1\r\nHost: {hub.conn.namespace}\r\n"
            f"Content-Type: {BATCH}\r\n"
            f"Authorization: {hub.token()}\r\nContent-Length: 999999999\r\n\r\n".encode()
        )
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413 ")
    assert "Connection: close" in reply


def test_unknown_hub_is_404(hub: HubProcess) -> None:
    resp = hub.post([item("x")], hub="nope", token=hub.token("nope"))
    assert resp.status_code == 404
    assert "'nope' does not exist" in _detail(resp)


def test_unknown_partition_is_404(hub: HubProcess) -> None:
    resp = hub.post([item("x")], partition="9")
    assert resp.status_code == 404
    assert "no partition '9'" in _detail(resp)


@pytest.mark.parametrize(
    ("query", "reason"),
    [("api-version=latest", "api-version"), ("timeout=soon", "timeout")],
)
def test_bad_query_parameters_are_400(hub: HubProcess, query: str, reason: str) -> None:
    resp = hub.session.post(
        f"{hub.base}/{HUB}/messages?{query}",
        data=b'[{"Body": "x"}]',
        headers={"Authorization": hub.token(), "Content-Type": BATCH},
    )
    assert resp.status_code == 400 and reason in resp.text


def test_get_on_a_send_path_is_405(hub: HubProcess) -> None:
    resp = hub.session.get(hub.url())
    assert resp.status_code == 405 and resp.headers["Allow"] == "POST"


# ---- placement ---------------------------------------------------------------------------------


IDS = ["0", "1", "2", "3"]


def test_partition_path_puts_every_event_in_that_partition(hub: HubProcess) -> None:
    keys = [k for k in (f"user-{i}" for i in range(200)) if partition_for_key(k, IDS) == "2"][:20]
    sent = [item(f"e{i}", key) for i, key in enumerate(keys)] + [item("keyless")]
    assert hub.post(sent, partition="2").status_code == 201
    got = hub.events()
    assert {e["partition_id"] for e in got} == {"2"}
    assert [e["partition_key"] for e in got] == [*keys, None]
    assert hub.stats()["hubs"][HUB]["key_partition_mismatches"] == 0


def test_a_key_that_hashes_elsewhere_is_stored_where_posted_and_counted(hub: HubProcess) -> None:
    sent = [item(f"e{i}", f"user-{i}") for i in range(20)]
    assert hub.post(sent, partition="2").status_code == 201
    assert {e["partition_id"] for e in hub.events()} == {"2"}
    mismatches = hub.stats()["hubs"][HUB]["key_partition_mismatches"]
    assert mismatches == sum(partition_for_key(f"user-{i}", IDS) != "2" for i in range(20))


def test_a_keyless_batch_goes_whole_to_one_partition_round_robin(hub: HubProcess) -> None:
    for _ in range(4):
        assert hub.post([item(f"e{i}") for i in range(10)]).status_code == 201
    by_request: dict[int, set[str]] = {}
    for event in hub.events():
        by_request.setdefault(event["request"], set()).add(event["partition_id"])
    assert len(by_request) == 4 and all(len(p) == 1 for p in by_request.values())
    assert Counter(e["partition_id"] for e in hub.events()) == {"0": 10, "1": 10, "2": 10, "3": 10}


def test_lenient_sends_keyless_events_round_robin_one_by_one(lenient: HubProcess) -> None:
    lenient.reset()
    assert lenient.post([item(f"e{i}") for i in range(40)]).status_code == 201
    counts = Counter(e["partition_id"] for e in lenient.events())
    assert counts == {"0": 10, "1": 10, "2": 10, "3": 10}


# ---- strict like the service: one key per send, keys of at most 128 characters ---------------


def test_a_batch_with_different_partition_keys_is_400_with_the_reason(hub: HubProcess) -> None:
    resp = hub.post([item("a", "user-1"), item("b", "user-1"), item("c", "user-2")])
    assert resp.status_code == 400
    detail = _detail(resp)
    assert "PartitionKeyMismatch" in detail and "event[2]" in detail and "'user-2'" in detail
    assert "/partitions/" in detail  # says what to do instead
    keyed_and_keyless = hub.post([item("a", "user-1"), item("b")])
    assert keyed_and_keyless.status_code == 400 and "(none)" in keyed_and_keyless.text
    assert hub.events() == []


def test_lenient_accepts_a_batch_with_different_partition_keys(lenient: HubProcess) -> None:
    lenient.reset()
    assert lenient.post([item("a", "user-1"), item("c", "user-2")]).status_code == 201
    assert [e["partition_key"] for e in lenient.events()] == ["user-1", "user-2"]


@pytest.mark.parametrize("partition", [None, "1"])
def test_a_partition_key_over_128_characters_is_400(
    hub: HubProcess, lenient: HubProcess, partition: str | None
) -> None:
    longest = "k" * 128
    ok_partition = partition_for_key(longest, IDS) if partition else None
    assert hub.post([item("a", longest)], partition=ok_partition).status_code == 201
    for too_long in ("k" * 129, "😀" * 65):  # 130 UTF-16 units, as the service counts
        for stand_in in (hub, lenient):
            resp = stand_in.post([item("a", too_long)], partition=partition)
            assert resp.status_code == 400
            assert "PartitionKeyTooLong" in _detail(resp) and "128" in resp.text
    assert len(hub.events()) == 1


def test_is_body_base64_carries_binary_bodies(hub: HubProcess) -> None:
    raw = bytes(range(256))
    sent = [
        {"Body": base64.b64encode(raw).decode(), "IsBodyBase64": True},
        {"Body": "plain", "IsBodyBase64": False},
    ]
    assert hub.post(sent).status_code == 201
    first, second = hub.events()
    assert first["body_encoding"] == "base64" and base64.b64decode(first["body"]) == raw
    assert second["body"] == "plain"
    for bad, reason in (
        ({"Body": "not base64!", "IsBodyBase64": True}, "not base64"),
        ({"Body": "x", "IsBodyBase64": "yes"}, "IsBodyBase64: must be true or false"),
    ):
        resp = hub.post([bad])
        assert resp.status_code == 400 and reason in _detail(resp)


def test_same_key_always_lands_in_the_same_partition(hub: HubProcess) -> None:
    for _ in range(3):
        assert hub.post([item("x", "sticky-user")]).status_code == 201
    assert len({e["partition_id"] for e in hub.events()}) == 1


# ---- readback, stats, control ------------------------------------------------------------------


def test_readback_pages_filters_and_validates(hub: HubProcess) -> None:
    assert hub.post([item(f"e{i}", "one-user") for i in range(10)]).status_code == 201
    page = hub.control("GET", f"/_emulator/hubs/{HUB}/events", params={"limit": 4}).json()
    assert [e["body"] for e in page["events"]] == ["e0", "e1", "e2", "e3"]
    assert page["more"] is True
    nxt = hub.control(
        "GET", f"/_emulator/hubs/{HUB}/events", params={"after": page["last_seq"], "limit": 100}
    ).json()
    assert [e["body"] for e in nxt["events"]] == [f"e{i}" for i in range(4, 10)]
    assert nxt["more"] is False
    empty = hub.control(
        "GET", f"/_emulator/hubs/{HUB}/events", params={"after": nxt["last_seq"]}
    ).json()
    assert empty == {"events": [], "last_seq": nxt["last_seq"], "more": False}
    home = partition_for_key("one-user", IDS)
    assert len(hub.events(partition=home)) == 10
    assert hub.events(partition=next(p for p in IDS if p != home)) == []
    for params in ({"after": "x"}, {"limit": 0}, {"limit": 100_001}):
        bad = hub.control("GET", f"/_emulator/hubs/{HUB}/events", params=params)
        assert bad.status_code == 400
    assert hub.control("GET", "/_emulator/hubs/nope/events").status_code == 404


def test_stats_count_events_requests_and_rejections(hub: HubProcess) -> None:
    assert hub.post([item("a", "k1"), item("b", "k1")]).status_code == 201
    assert hub.post([item("c")], partition="3").status_code == 201
    assert hub.post([item("x")], token=hub.token(key="wrong")).status_code == 401
    assert hub.post(b"[", content_type=BATCH).status_code == 400
    stats = hub.stats()
    mine = stats["hubs"][HUB]
    assert mine["events"] == 3 and mine["stored"] == 3
    assert sum(mine["partitions"].values()) == 3 and mine["partitions"]["3"] >= 1
    assert set(mine["partitions"]) == {"0", "1", "2", "3"}
    assert stats["requests"]["rest"] == {"total": 4, "by_status": {"201": 2, "400": 1, "401": 1}}
    assert stats["rejections"] == {"400": 1, "401": 1}
    assert stats["events_by_face"] == {"rest": 3}


def test_reset_forgets_events_but_never_reuses_sequence_numbers(hub: HubProcess) -> None:
    assert hub.post([item("a")]).status_code == 201
    first = hub.events()[0]["seq"]
    assert hub.control("DELETE", "/_emulator/events").json() == {"deleted": 1}
    assert hub.events() == []
    assert hub.post([item("b")]).status_code == 201
    assert hub.events()[0]["seq"] > first


def test_reset_of_one_hub_leaves_the_others(hub: HubProcess) -> None:
    assert hub.post([item("a")]).status_code == 201
    assert hub.post([item("b")], hub=OTHER, token=hub.token(OTHER)).status_code == 201
    assert hub.control("DELETE", "/_emulator/events", params={"hub": OTHER}).status_code == 200
    assert [e["body"] for e in hub.events()] == ["a"]
    assert hub.events(OTHER) == []


def test_hub_info_lists_partition_ids(hub: HubProcess) -> None:
    for path in (f"/{HUB}", f"/_emulator/hubs/{HUB}"):
        info = hub.control("GET", path).json()
        assert info["name"] == HUB
        assert info["partition_ids"] == ["0", "1", "2", "3"]
        assert info["partition_count"] == 4
    listed = hub.control("GET", "/_emulator/hubs").json()["hubs"]
    assert {h["name"] for h in listed} >= {HUB, OTHER}
    assert hub.control("GET", "/nope").status_code == 404


def test_hubs_can_be_added_at_run_time(hub: HubProcess) -> None:
    resp = hub.control("PUT", "/_emulator/hubs/late-hub", params={"partitions": 2})
    assert resp.status_code == 201 and resp.json()["partition_ids"] == ["0", "1"]
    assert hub.post([item("x")], hub="late-hub", token=hub.token("late-hub")).status_code == 201
    assert hub.control("PUT", "/_emulator/hubs/_bad").status_code == 400


def test_control_endpoints_never_show_keys(hub: HubProcess) -> None:
    for path in ("/", "/_emulator", "/_emulator/info", "/_emulator/stats", "/_emulator/hubs"):
        resp = hub.control("GET", path)
        assert resp.status_code == 200, path
        assert hub.conn.key not in resp.text
    assert hub.control("GET", "/_emulator/info").json()["key_names"] == ["send"]


# ---- HTTP details senders rely on --------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(hub: HubProcess) -> None:
    with socket.create_connection((hub.conn.host, hub.conn.port or 80), timeout=10) as sock:
        body = b'[{"Body": "x"}]'
        request = (
            f"POST /{HUB}/messages HTTP/1.1\r\nHost: {hub.conn.namespace}\r\n"
            f"Content-Type: {BATCH}\r\n"
            f"Authorization: {hub.token()}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock.sendall(request * 3)  # pipelined
        replies = b""
        while replies.count(b"HTTP/1.1 201") < 3:
            chunk = sock.recv(4096)
            assert chunk
            replies += chunk
    assert len(hub.events()) == 3


def test_chunked_upload_and_expect_continue(hub: HubProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"Body": "a"},'
        yield b'{"Body": "b"}]'

    resp = hub.session.post(
        hub.url(),
        data=chunks(),
        headers={"Authorization": hub.token(), "Content-Type": BATCH, "Expect": "100-continue"},
    )
    assert resp.status_code == 201
    assert [e["body"] for e in hub.events()] == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", 400),
        (b"POST /orders/messages HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /orders/messages HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ],
    ids=["request-line", "header", "content-length", "transfer-encoding", "huge-head"],
)
def test_malformed_http_is_answered_and_closed(hub: HubProcess, raw: bytes, status: int) -> None:
    with socket.create_connection((hub.conn.host, hub.conn.port or 80), timeout=10) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in reply
    # The stand-in is still fine afterwards.
    assert hub.post([item("ok")]).status_code == 201
