"""explain_user and ``profile explain`` on a real Redis: stored users, drained in-process."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from workers.audiences.explain import explain_user
from workers.audiences.registry_store import NotFound
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.pipeline.ingest import Ingestor, list_items
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339


@pytest.fixture
def stored(engine: Engine, drain_all: Callable[[Engine], None]) -> dict[str, int]:
    """Three audiences and one user with two purchases (5 days and 1 day ago), drained."""
    store = AudienceStore(engine.r, engine.keys)
    store.create("buyers", "FILTER timewindow(purchase, 2, 7)")
    store.create("pros", 'FILTER plan == "pro"')
    store.create("vip", "FILTER AND (INCLUDE buyers, score >= 20)")
    now = engine.clock.now_ns() // NS_PER_S * NS_PER_S
    first, second = now - 5 * NS_PER_DAY, now - NS_PER_DAY
    events = [
        {"user_id": "u1", "event": "purchase", "_ts": format_rfc3339(first), "plan": "free"},
        {"user_id": "u1", "event": "purchase", "_ts": format_rfc3339(second), "score": 42},
    ]
    assert Ingestor(engine).ingest(list_items(events)).accepted == 2
    drain_all(engine)
    return {"first": first, "second": second, "exit": first + 7 * NS_PER_DAY}


def test_explain_user_against_the_stored_profile(engine: Engine, stored: dict[str, int]) -> None:
    entries = explain_user(engine, "u1")
    json.dumps(entries)  # the API and the dashboard serve it as it is
    assert [e["audience"]["slug"] for e in entries] == ["buyers", "pros", "vip"]
    buyers, pros, vip = entries
    exit_at = format_rfc3339(stored["exit"])
    sentence = (
        f"exits {exit_at} when the purchase of {format_rfc3339(stored['first'])} leaves the "
        "7-day window (1 left in it, 2 needed)"
    )

    assert buyers["in"] is True and buyers["stored"]["in"] is True and buyers["agrees"] is True
    assert buyers["disagreement"] is None
    assert buyers["stored"]["enter_ns"] is not None
    assert buyers["stored"]["next_change"] == exit_at, "the due instant the drain stored"
    assert buyers["next_change"]["at"] == exit_at and buyers["next_change"]["sentence"] == sentence
    window = buyers["tree"]["window"]
    assert window["count"] == 2 and window["times_ns"] == [stored["first"], stored["second"]]

    assert pros["in"] is False and pros["stored"] == {
        "in": False,
        "enter": None,
        "enter_ns": None,
        "next_change": None,
        "next_change_ns": None,
    }
    assert pros["agrees"] and pros["next_change"] is None
    assert pros["tree"]["reads"] == [{"text": "plan", "value": "free", "shown": '"free"'}]

    assert vip["in"] is True and vip["agrees"]
    include, score = vip["tree"]["children"]
    assert include["kind"] == "include" and include["include"] == "buyers"
    assert include["children"][0]["text"] == "timewindow(purchase, 2, 7)"
    assert score["reads"][0]["value"] == 42
    assert vip["next_change"]["sentence"] == sentence.replace(
        " when ", " when INCLUDE buyers stops matching: ", 1
    )
    assert vip["next_change"]["path"] == [0, 0]


def test_chosen_audiences_and_another_instant(engine: Engine, stored: dict[str, int]) -> None:
    buyers_id = AudienceStore(engine.r, engine.keys).get("buyers").id
    later = stored["exit"]
    entries = explain_user(engine, "u1", ["vip", buyers_id], at=later)
    assert [e["audience"] for e in entries] == [
        {"id": AudienceStore(engine.r, engine.keys).get("vip").id, "slug": "vip"},
        {"id": buyers_id, "slug": "buyers"},
    ]
    vip, buyers = entries
    assert buyers["at_ns"] == later and buyers["in"] is False and buyers["stored"]["in"] is True
    assert buyers["agrees"] is False
    assert buyers["disagreement"].startswith(  # the due flip has not been released yet
        f"a flip was due at {format_rfc3339(later)} and has not been applied yet"
    )
    assert buyers["tree"]["decides"] and buyers["tree"]["window"]["count"] == 1
    assert vip["in"] is False and vip["tree"]["decided_by"] == [0]


def test_unknown_user_or_audience(engine: Engine, stored: dict[str, int]) -> None:
    with pytest.raises(NotFound, match="no profile for user 'nobody'"):
        explain_user(engine, "nobody")
    with pytest.raises(NotFound, match="nope"):
        explain_user(engine, "u1", ["nope"])


def test_profile_explain_command(
    engine: Engine, stored: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audiencehub.cli.explain as cli

    monkeypatch.setattr(cli, "engine", lambda: engine)
    result = CliRunner().invoke(cli.profile_explain_command, ["u1", "--audience", "vip"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    vip_id = AudienceStore(engine.r, engine.keys).get("vip").id
    assert lines[0].startswith(f"vip ({vip_id}): in at ")
    assert lines[1].startswith("stored: in since ") and lines[1].endswith("(agrees)")
    assert lines[2].startswith("AND (INCLUDE buyers, score >= 20)") and "<- all hold" in lines[2]
    assert lines[3].startswith("├─ INCLUDE buyers")
    assert lines[4].startswith("│  └─ timewindow(purchase, 2, 7)") and "2 in window" in lines[4]
    assert lines[5].startswith("└─ score >= 20") and lines[5].endswith("score = 42")
    assert (
        lines[6].startswith("next change: exits ") and "INCLUDE buyers stops matching" in lines[6]
    )

    when = format_rfc3339(stored["exit"])
    result = CliRunner().invoke(cli.profile_explain_command, ["u1", "--at", when, "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [(e["audience"]["slug"], e["in"], e["agrees"]) for e in entries] == [
        ("buyers", False, False),
        ("pros", False, True),
        ("vip", False, False),
    ]

    missing = CliRunner().invoke(cli.profile_explain_command, ["nobody"])
    assert missing.exit_code == 1 and "no profile for user 'nobody'" in missing.output
    bad = CliRunner().invoke(cli.profile_explain_command, ["u1", "--at", "soon"])
    assert bad.exit_code == 2 and "RFC 3339" in bad.output
