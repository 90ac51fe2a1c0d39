"""Fault injection over real sockets: every rule kind, its counters, and that faulted sends store nothing."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import requests

from tests.emulator.helpers import HubProcess, item

HUB = "faulty"
CALM = "calm"
HUB_ARGS = ("--hub", HUB, "--hub", CALM)


def _statuses(hub: HubProcess, n: int, hub_name: str | None = None) -> list[int]:
    return [
        hub.post([item(f"e{i}")], hub=hub_name, token=hub.token(hub_name)).status_code
        for i in range(n)
    ]


def test_next_n_requests_answer_503_with_retry_after(hub: HubProcess) -> None:
    hub.plan({"status": 503, "count": 2, "retry_after": 3})
    first = hub.post([item("a")])
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "3"
    assert "injected fault (rule 0)" in first.text
    assert _statuses(hub, 3) == [503, 201, 201]
    assert [e["body"] for e in hub.events()] == ["e1", "e2"]
    rules = hub.control("GET", "/_emulator/faults").json()["rules"]
    assert rules[0]["fired"] == 2 and rules[0]["remaining"] == 0


def test_429_gets_a_default_retry_after(hub: HubProcess) -> None:
    hub.plan([{"status": 429, "count": 1}])
    resp = hub.post([item("a")])
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"


@pytest.mark.parametrize("status", [500, 413, 400, 401, 403])
def test_each_status_can_be_injected_and_stores_nothing(hub: HubProcess, status: int) -> None:
    hub.plan({"status": status, "count": 1, "message": f"planned {status}"})
    resp = hub.post([item("a")])
    assert resp.status_code == status
    assert f"<Code>{status}</Code><Detail>planned {status}</Detail>" in resp.text
    assert "Retry-After" not in resp.headers
    assert hub.events() == []
    assert hub.post([item("b")]).status_code == 201


def test_share_is_reproducible_with_a_seed(hub: HubProcess) -> None:
    plan = {"seed": 7, "rules": [{"status": 503, "share": 0.4}]}
    hub.plan(plan)
    first = _statuses(hub, 40)
    hub.plan(plan)  # re-installing reseeds
    second = _statuses(hub, 40)
    rng = random.Random(7)
    predicted = [503 if rng.random() < 0.4 else 201 for _ in range(40)]
    assert first == second == predicted
    assert 5 < first.count(503) < 30
    assert len(hub.events()) == 2 * first.count(201)


def test_delay_holds_the_answer_then_accepts(hub: HubProcess) -> None:
    hub.plan({"delay_ms": 400, "count": 1})
    start = time.monotonic()
    assert hub.post([item("slow")]).status_code == 201
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    assert hub.post([item("fast")]).status_code == 201
    assert time.monotonic() - start < 0.3
    assert [e["body"] for e in hub.events()] == ["slow", "fast"]


def test_a_delayed_request_does_not_hold_up_other_connections(hub: HubProcess) -> None:
    hub.plan({"delay_ms": 1500, "count": 1})
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(hub.post([item("slow")]).status_code))
    slow.start()
    time.sleep(0.2)
    start = time.monotonic()
    assert hub.post([item("fast")], session=requests.Session()).status_code == 201
    assert time.monotonic() - start < 0.5
    slow.join(timeout=10)
    assert results == [201]


def test_delay_then_status_in_one_rule(hub: HubProcess) -> None:
    hub.plan({"delay_ms": 200, "status": 500, "count": 1})
    start = time.monotonic()
    assert hub.post([item("a")]).status_code == 500
    assert time.monotonic() - start >= 0.2
    assert hub.events() == []


@pytest.mark.parametrize("drop", [True, "after_body", "after_headers"])
def test_drop_closes_the_connection_without_an_answer(hub: HubProcess, drop: Any) -> None:
    hub.plan({"drop": drop, "count": 1})
    big = [item("x" * 500) for _ in range(1500)]  # ~0.8 MB: still sending when dropped early
    with pytest.raises(requests.ConnectionError):
        hub.post(big)
    assert hub.events() == []
    assert hub.post([item("after")]).status_code == 201
    stats = hub.stats()
    assert stats["requests"]["rest"]["by_status"] == {"0": 1, "201": 1}
    assert stats["rejections"] == {"dropped": 1}
    assert stats["faults_fired"] == {"drop": 1}


def test_rules_can_target_one_hub(hub: HubProcess) -> None:
    hub.plan({"status": 503, "hub": HUB})
    assert _statuses(hub, 2, CALM) == [201, 201]
    assert _statuses(hub, 2, HUB) == [503, 503]


def test_rules_for_the_amqp_face_leave_rest_alone(hub: HubProcess) -> None:
    hub.plan({"status": 503, "face": "amqp"})
    assert _statuses(hub, 2) == [201, 201]


def test_skip_lets_the_first_requests_through(hub: HubProcess) -> None:
    hub.plan({"status": 500, "skip": 2, "count": 1})
    assert _statuses(hub, 4) == [201, 201, 500, 201]


def test_duration_expires_a_rule(hub: HubProcess) -> None:
    hub.plan({"status": 401, "duration_s": 0.5})
    assert _statuses(hub, 1) == [401]
    time.sleep(0.6)
    assert _statuses(hub, 1) == [201]
    assert hub.control("GET", "/_emulator/faults").json()["rules"][0]["expired"] is True


def test_first_matching_terminal_rule_wins_and_delays_add_up(hub: HubProcess) -> None:
    hub.plan(
        [
            {"delay_ms": 100},
            {"status": 503, "count": 1},
            {"status": 500},
        ],
    )
    start = time.monotonic()
    assert _statuses(hub, 3) == [503, 500, 500]
    assert time.monotonic() - start >= 0.3
    fired = [r["fired"] for r in hub.control("GET", "/_emulator/faults").json()["rules"]]
    assert fired == [3, 1, 2]


def test_plan_can_be_read_and_cleared(hub: HubProcess) -> None:
    shown = hub.plan({"seed": 3, "rules": [{"status": 429, "share": 0.25, "retry_after": 5}]})
    assert shown["seed"] == 3
    (rule,) = shown["rules"]
    assert rule["status"] == 429 and rule["share"] == 0.25 and rule["retry_after"] == 5
    cleared = hub.control("DELETE", "/_emulator/faults").json()
    assert cleared == {"seed": None, "rules": []}
    assert _statuses(hub, 1) == [201]


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"status": 200}, "rules[0].status: must be an integer from 400 to 599"),
        ({"share": 0.5}, "rules[0]: needs status, drop or delay_ms"),
        ([{"status": 503}, {"status": 503, "share": 2}], "rules[1].share"),
        ({"status": 503, "drop": True}, "either status or drop"),
        ({"status": 503, "when": "now"}, "unknown field(s) when"),
        ({"drop": "sometimes"}, "rules[0].drop"),
        ({"rules": [], "seed": "x"}, "seed: must be an integer"),
    ],
)
def test_bad_plans_are_refused_with_the_field(hub: HubProcess, plan: Any, reason: str) -> None:
    resp = hub.control("PUT", "/_emulator/faults", json=plan)
    assert resp.status_code == 400
    assert reason in resp.json()["error"]


def test_bad_plan_json_is_400(hub: HubProcess) -> None:
    resp = hub.control("PUT", "/_emulator/faults", data=b"{")
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


def test_faults_apply_before_auth_and_validation(hub: HubProcess) -> None:
    hub.plan({"status": 503, "count": 1})
    assert hub.post(b"not json", token="garbage").status_code == 503
    assert hub.post(b"not json", token="garbage").status_code == 401


def test_stats_count_fired_faults(hub: HubProcess) -> None:
    hub.plan([{"delay_ms": 10, "count": 1}, {"status": 429, "count": 2}])
    assert _statuses(hub, 3) == [429, 429, 201]
    stats = hub.stats()
    assert stats["faults_fired"] == {"429": 2, "delay": 1}
    assert stats["rejections"] == {"429": 2}
