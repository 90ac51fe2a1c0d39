"""Pieces of the API checked in-process: settings, secret scrubbing, the audience delete's
guards (including the race it undoes), and reading a collect body."""

from __future__ import annotations

import pytest

from audiencehub.api.errors import scrub
from audiencehub.api.routes_collect import parse_body
from audiencehub.api.settings import DEFAULT_MAX_BODY, load_api_settings
from tests.conftest import with_settings
from workers.audiences import delete as audience_delete
from workers.audiences.registry import build_snapshot
from workers.audiences.registry_store import Conflict, NotFound
from workers.audiences.store import AudienceStore
from workers.config import ConfigError, Settings
from workers.engine import Engine
from workers.jobs.store import JobStore

KEY = "SecretKeyDoNotLeak0123456789abcdefXYZ="


def test_settings_refuse_an_open_api_in_production(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = with_settings(cfg, mode="production")
    monkeypatch.delenv("AUDIENCEHUB_API_TOKENS", raising=False)
    with pytest.raises(ConfigError, match="AUDIENCEHUB_API_TOKENS"):
        load_api_settings(production)
    monkeypatch.setenv("AUDIENCEHUB_API_TOKENS", "short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_api_settings(production)
    monkeypatch.setenv("AUDIENCEHUB_API_TOKENS", " a-long-enough-token-1 , b-long-enough-token-2 ")
    for bad in ("nope", "10"):
        monkeypatch.setenv("AUDIENCEHUB_API_MAX_BODY", bad)
        with pytest.raises(ConfigError, match="AUDIENCEHUB_API_MAX_BODY"):
            load_api_settings(production)
    monkeypatch.delenv("AUDIENCEHUB_API_MAX_BODY")
    monkeypatch.setenv("AUDIENCEHUB_API_METRICS_PUBLIC", "true")
    got = load_api_settings(production)
    assert got.tokens == ("a-long-enough-token-1", "b-long-enough-token-2")
    assert got.max_body == DEFAULT_MAX_BODY and got.metrics_public
    monkeypatch.delenv("AUDIENCEHUB_API_TOKENS")
    assert not load_api_settings(with_settings(cfg, mode="demo")).auth_required
    monkeypatch.setenv("AUDIENCEHUB_API_TOKENS", "short")
    assert load_api_settings(cfg).tokens == ("short",)  # test mode: any token will do


@pytest.mark.parametrize(
    "text, message",
    [
        # a bare key quoted whole, a key quoted truncated, a key in the value, a key as a "name"
        (KEY, f"part {KEY!r} is not of the form Name=value"),
        (f"SharedAccessKey {KEY}", f"part {f'SharedAccessKey {KEY}'[:40]!r} is bad"),
        (f"Endpoint=sb://ns/;SharedAccessKey={KEY}", f"key {KEY} is wrong"),
        (f"Endpoint=sb://ns/;{KEY[:-1]}=x", f"unknown part(s): {KEY[:-1].lower()}"),
    ],
)
def test_scrub_never_lets_a_piece_of_the_key_through(text: str, message: str) -> None:
    cleaned = scrub(message, text)
    for i in range(len(KEY) - 8):
        assert KEY[i : i + 8] not in cleaned
        assert KEY[i : i + 8].lower() not in cleaned.lower()


def test_scrub_keeps_the_helpful_parts() -> None:
    text = "Endpoint=sb://ns.example.net/;SharedAccessKeyName=send;EntityPath=hub"
    message = "connection string is missing SharedAccessKey (expected SharedAccessKey=<key>)"
    assert scrub(message, text) == message
    assert "ns.example.net" in scrub("Endpoint 'ns.example.net' is bad", text)


def test_parse_body_sniffs() -> None:
    assert [w for w, _, _ in parse_body(b'{"a":1}\n{"b":2}\n', "")] == ["line 1", "line 2"]
    assert [w for w, _, _ in parse_body(b'[{"a":1},{"b":2}]', "text/plain")] == [
        "index 0",
        "index 1",
    ]
    assert [w for w, _, _ in parse_body(b' {"a":1} ', "application/json")] == ["index 0"]
    lines = parse_body(b'[1]\n{"a":1}', "application/x-ndjson")
    assert [w for w, _, _ in lines] == ["line 1", "line 2"]


# -- deleting an audience ------------------------------------------------------------------------
def test_delete_refuses_while_included_or_exported(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    base = store.create("base", "FILTER EXISTS email")
    store.create("Outer", "FILTER INCLUDE BASE")  # included under another case
    with pytest.raises(Conflict, match="included by Outer"):
        audience_delete.delete_audience(engine, "base")
    audience_delete.delete_audience(engine, "Outer")
    job = JobStore(engine.r, engine.keys).create("j", "auth", [base.id])
    with pytest.raises(Conflict, match=job.id):
        audience_delete.delete_audience(engine, base.id)
    JobStore(engine.r, engine.keys).set_state(job.id, "stopped")
    assert audience_delete.delete_audience(engine, "base").id == base.id
    with pytest.raises(NotFound):
        store.get("base")
    assert store.create("base", "FILTER *").id != base.id


def test_delete_undoes_itself_when_an_includer_lands_meanwhile(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create that compiled while the audience existed and stored after the delete's checks:
    the delete puts the audience back, so the registry keeps compiling."""
    store = AudienceStore(engine.r, engine.keys)
    base = store.create("base", "FILTER EXISTS email")
    real_check = audience_delete._check

    def racing_check(e: Engine, audience: object) -> None:
        real_check(e, audience)  # type: ignore[arg-type]
        if not any(a.slug == "late" for a in store.all()):
            store.create("late", "FILTER INCLUDE base")

    monkeypatch.setattr(audience_delete, "_check", racing_check)
    with pytest.raises(Conflict):
        audience_delete.delete_audience(engine, "base")
    assert store.get("base").id == base.id
    version = int(engine.r.get(engine.keys.registry_version) or 0)
    snapshot = build_snapshot(engine.r, engine.keys, version)
    assert {a.slug for a in snapshot.audiences.values()} == {"base", "late"}
