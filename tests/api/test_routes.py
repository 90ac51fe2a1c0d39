"""The HTTP API over real sockets: uvicorn in its own process, a real redis-server, ``requests``.

One API process serves the whole module (starting one costs about a second); the tests share its
Redis and use distinct names. Profiles are drained in-process with the engine (no Celery worker
needed: the API only appends and kicks). The last test checks that the connection string's key
never appeared in any response of the module nor in the API's log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from audiencehub.api.routes_collect import INLINE_BODY_BYTES
from audiencehub.processes import HubEmulator, RedisServer, celery_env
from tests.api.helpers import TOKEN, ApiProcess, Client, api_process
from tests.helpers import engine_for
from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.member_index import MemberIndex

MAX_BODY = 200_000
KEY = "SecretKeyDoNotLeak0123456789abcdefXYZ="


# -- fixtures -------------------------------------------------------------------------------------
class Env:
    def __init__(self, proc: ApiProcess, engine: Engine, hub: HubEmulator) -> None:
        self.proc = proc
        self.engine = engine
        self.hub = hub
        self.api = Client(proc.base_url)
        self.anonymous = Client(proc.base_url, token=None)

    def drain(self) -> None:
        drainer = ShardDrainer(self.engine)
        for shard in range(self.engine.cfg.shards):
            drainer.drain(shard)

    def queued(self) -> int:
        e = self.engine
        return sum(int(e.r.xlen(e.keys.events(s))) for s in range(e.cfg.shards))

    def responses(self) -> list[str]:
        return self.api.seen + self.anonymous.seen


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("api")
    hub = HubEmulator(workdir, extra=("--key", KEY))
    hub.start()
    try:
        with api_process(
            redis_server, workdir, "apitest", AUDIENCEHUB_API_MAX_BODY=str(MAX_BODY)
        ) as (proc, cfg):
            engine = engine_for(cfg)
            yield Env(proc, engine, hub)
            engine.r.close()
    finally:
        hub.stop()


def create_audience(env: Env, slug: str, text: str) -> dict[str, Any]:
    resp = env.api.post("/audiences", json={"slug": slug, "filter": text})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def create_auth(env: Env, label: str) -> dict[str, Any]:
    resp = env.api.post(
        "/authorizations", json={"label": label, "connection_string": env.hub.connection_string}
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_error(resp: Any, status: int, field: str | None = None, words: str = "") -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) >= {"error", "message", "field", "details"}
    if field is not None:
        assert body["field"] == field, body
    assert words.lower() in body["message"].lower(), body


# -- settings and the command ---------------------------------------------------------------------
@pytest.mark.e2e  # starts a process of its own
def test_command_refuses_to_start_without_tokens_in_production() -> None:
    env = celery_env("redis://127.0.0.1:1/0", AUDIENCEHUB_MODE="production")
    env.pop("AUDIENCEHUB_API_TOKENS", None)
    done = subprocess.run(
        [sys.executable, "-m", "audiencehub.cli.api", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "AUDIENCEHUB_API_TOKENS is not set" in done.stderr
    assert "Traceback" not in done.stderr


# -- auth, health, openapi, metrics --------------------------------------------------------------
def test_every_route_but_healthz_needs_the_token(env: Env) -> None:
    assert env.anonymous.get("/healthz").json() == {"status": "ok", "redis": "ok"}
    for method, path in [
        ("GET", "/audiences"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
        ("POST", "/collect/web"),
        ("GET", "/profiles/u1"),
        ("GET", "/no/such/route"),
    ]:
        resp = env.anonymous.request(method, path, data=b'{"user_id": "u"}')
        assert_error(resp, 401, "Authorization (header)", "bearer")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = Client(env.proc.base_url, token="not-the-token-at-all")
    assert_error(wrong.get("/audiences"), 401, words="not a valid bearer token")
    basic = env.anonymous.get("/audiences", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    second = Client(env.proc.base_url, token="another-token-abcdefghijkl")
    assert second.get("/audiences").status_code == 200


def test_openapi_documents_bearer_auth_and_errors(env: Env) -> None:
    doc = env.api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    collect = doc["paths"]["/collect/{stream}"]["post"]
    assert collect["security"] == [{"bearerAuth": []}]
    assert {"202", "400", "401", "413", "415", "422"} <= set(collect["responses"])
    assert set(collect["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    secret = doc["components"]["schemas"]["AuthorizationCreate"]["properties"]["connection_string"]
    assert secret["writeOnly"] is True
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.e2e  # starts a process of its own
def test_healthz_reports_redis_down(tmp_path: Path) -> None:
    """A second API on its own Redis that then goes away: /healthz says 503, other routes too."""
    own = RedisServer(tmp_path / "redis", appendonly=False)
    own.start()
    env = celery_env(
        own.url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS="4",
        AUDIENCEHUB_API_TOKENS=TOKEN,
        AUDIENCEHUB_API_METRICS_PUBLIC="true",
    )
    proc = ApiProcess(tmp_path, env)
    proc.start()
    try:
        anonymous = Client(proc.base_url, token=None)
        assert anonymous.get("/metrics").status_code == 200  # public by setting
        own.stop()
        resp = anonymous.get("/healthz")
        assert resp.status_code == 503
        assert resp.json() == {"status": "unavailable", "redis": "unreachable"}
        down = Client(proc.base_url).get("/audiences")
        assert_error(down, 503, words="redis")
        assert down.headers["Retry-After"] == "5"
    finally:
        proc.stop()
        own.stop()


# -- collect --------------------------------------------------------------------------------------
def test_collect_one_event_an_array_and_ndjson(env: Env) -> None:
    before = env.queued()
    one = env.api.post("/collect/web", json={"user_id": "c1", "event": "login", "plan": "pro"})
    assert one.status_code == 202, one.text
    assert one.json() == {
        "stream": "web",
        "accepted": 1,
        "rejected": 0,
        "duplicates": 0,
        "errors": [],
        "errors_truncated": False,
    }
    array = env.api.post(
        "/collect/crm",
        json=[{"user_id": "c2"}, {"email": "x@example.com"}, 7, {"user_id": "c3", "_ts": "soon"}],
    )
    assert array.status_code == 202
    body = array.json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "user_id"),
        (2, None),
        (3, "_ts"),
    ]
    assert "RFC 3339" in body["errors"][2]["reason"]
    ndjson = b'{"user_id": "c4"}\n\nnot json\n{"user_id": "c5", "event": ""}\r\n{"user_id": 6}\n'
    nd = env.api.post(
        "/collect/app.v2", data=ndjson, headers={"Content-Type": "application/x-ndjson"}
    )
    assert nd.status_code == 202
    body = nd.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(3, None), (4, "event")]
    assert body["errors"][0]["at"] == "line 3" and body["errors"][0]["index"] is None
    sniffed = env.api.post(
        "/collect/web", data=b'{"user_id": "c7"}\n{"user_id": "c8"}', headers={"Content-Type": ""}
    )
    assert sniffed.json()["accepted"] == 2
    curl_default = env.api.post(
        "/collect/web",
        data=b'[{"user_id": "c9"}]',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert curl_default.json()["accepted"] == 1
    assert env.queued() - before == 1 + 1 + 2 + 2 + 1  # durable before the 202


def test_collect_refusals(env: Env) -> None:
    none = env.api.post("/collect/web", json=[{"email": "a"}, {"email": "b"}])
    assert_error(none, 422, "index 0", "none of the 2")
    assert [e["index"] for e in none.json()["events"]] == [0, 1]
    assert_error(env.api.post("/collect/web", data=b"  "), 400, "body", "empty")
    assert_error(env.api.post("/collect/web", json=[]), 400, "body", "empty")
    bad_json = env.api.post(
        "/collect/web", data=b'{"user_id": ', headers={"Content-Type": "application/json"}
    )
    assert_error(bad_json, 400, "body", "not valid JSON")
    xml = env.api.post("/collect/web", data=b"<a/>", headers={"Content-Type": "application/xml"})
    assert_error(xml, 415, "Content-Type (header)", "application/x-ndjson")
    assert_error(env.api.post("/collect/-bad", json={"user_id": "u"}), 422, "stream (path)")
    assert_error(env.api.post("/collect/" + "s" * 65, json={"user_id": "u"}), 422)
    assert_error(env.api.get("/collect/web"), 405, words="not allowed")


def test_a_body_over_the_inline_size_is_checked_on_a_thread_with_the_same_answers(
    env: Env,
) -> None:
    """Bodies past INLINE_BODY_BYTES are read and checked off the event loop: the same 202,
    per-event errors and 413 for too many events as a small body gets."""
    pad = "x" * 200
    events = [{"user_id": f"t{i}", "pad": pad} for i in range(300)] + [{"pad": pad}]
    assert len(orjson.dumps(events)) > INLINE_BODY_BYTES
    resp = env.api.post("/collect/web", json=events)
    assert resp.status_code == 202
    assert resp.json()["accepted"] == 300
    assert [e["index"] for e in resp.json()["errors"]] == [300]
    many = b"".join(b'{"user_id":"m%d"}\n' % i for i in range(10_001))
    assert INLINE_BODY_BYTES < len(many) < MAX_BODY
    too_many = env.api.post(
        "/collect/web", data=many, headers={"Content-Type": "application/x-ndjson"}
    )
    assert_error(too_many, 413, "body", "AUDIENCEHUB_MAX_REQUEST_EVENTS")


def test_input_the_engine_cannot_store_is_refused_not_a_500(env: Env) -> None:
    """Regressions found by schemathesis: each once crashed deep in the engine."""
    deep = "[" * 300 + "]" * 300
    mixed = (
        b'[{"user_id": "g1", "_ts": -1.7976931348623155e308}, {"user_id": "g2", "x": '
        + deep.encode()
        + b'}, {"user_id": "g3"}]'
    )
    resp = env.api.post("/collect/web", data=mixed, headers={"Content-Type": "application/json"})
    assert resp.status_code == 202
    assert [(e["index"], e["field"]) for e in resp.json()["errors"]] == [(0, "_ts"), (1, "x")]
    for body, field in [
        ('{"fields": {"n": 34586048841666526778155702094397440}}', "fields"),
        ('{"fields": {"n": NaN}}', "fields"),
        ('{"fields": {"\\ud800": 1}}', "fields"),
        ('{"fields": {"_ts": -1.7976931348623155e308}}', "fields._ts"),
        ('{"fields": {"n": ' + deep + "}}", "fields.n"),
        ('{"label": "x", "connection_string": "\\udc00"}', "connection_string"),
    ]:
        path = "/authorizations" if "label" in body else "/profiles/g4"
        method = "POST" if "label" in body else "PATCH"
        resp = env.api.request(
            method, path, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        assert_error(resp, 422, field)
    not_json = env.api.post(
        "/audiences", data=b'{"slug": ', headers={"Content-Type": "application/json"}
    )
    assert_error(not_json, 400, "body", "not valid UTF-8 JSON")
    not_utf8 = env.api.post(
        "/audiences", data=b'{"slug": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert_error(not_utf8, 400, words="not valid UTF-8 JSON")
    newline_user = env.api.patch("/profiles/a%0Ab", json={"fields": {"s": 1}})
    assert newline_user.json() == {"user_id": "a\nb", "accepted": True}


def test_an_event_nested_just_past_what_is_stored_is_refused_and_its_neighbours_kept(
    env: Env,
) -> None:
    """253 levels parse and once passed validation, then the stream entry (two levels more)
    could not be encoded: a 500, and the valid events of the call lost. Validation now encodes
    the entry it stores, so the event is refused naming its field and the others go through."""
    before = env.queued()
    deep = "[" * 253 + "]" * 253
    body = f'[{{"user_id": "n1"}}, {{"user_id": "n2", "tree": {deep}}}, {{"user_id": "n3"}}]'
    resp = env.api.post("/collect/web", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.text
    out = resp.json()
    assert (out["accepted"], out["rejected"]) == (2, 1)
    [error] = out["errors"]
    assert (error["index"], error["field"]) == (1, "tree")
    assert "nested deeper than 252 levels" in error["reason"]
    assert env.queued() - before == 2
    fits = "[" * 252 + "]" * 252  # the deepest a field may be is stored as it came
    kept = env.api.post("/collect/web", json={"user_id": "n4", "tree": orjson.loads(fits)})
    assert kept.status_code == 202 and kept.json()["accepted"] == 1, kept.text
    score = env.api.patch("/profiles/n5", json={"fields": {"tree": orjson.loads(deep)}})
    assert_error(score, 422, "fields.tree", "nested deeper than 252 levels")


def test_collect_body_limit(env: Env) -> None:
    before = env.queued()
    line = orjson.dumps({"user_id": "big", "pad": "x" * 1000}) + b"\n"
    big = line * (MAX_BODY // len(line) + 5)
    declared = env.api.post(
        "/collect/web", data=big, headers={"Content-Type": "application/x-ndjson"}
    )
    assert_error(declared, 413, words=f"{MAX_BODY:,} bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    chunked = env.api.post(
        "/collect/web", data=chunks(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert_error(chunked, 413, words="AUDIENCEHUB_API_MAX_BODY")
    assert env.queued() == before
    fits = env.api.post(
        "/collect/web", data=line * 10, headers={"Content-Type": "application/x-ndjson"}
    )
    assert fits.json()["accepted"] == 10
    large_json = env.api.post("/audiences/validate", json={"filter": "FILTER " + "x" * MAX_BODY})
    assert large_json.status_code == 413


# -- audiences ------------------------------------------------------------------------------------
def test_audiences_crud_and_recheck(env: Env) -> None:
    created = create_audience(env, "emailed", "FILTER EXISTS email")
    assert created["slug"] == "emailed" and len(created["id"]) == 32
    run = env.api.get(f"/reevaluations/{created['reevaluation_run']}")
    assert run.status_code == 200 and run.json()["audiences"] == [created["id"]]
    assert run.json()["reason"] == "audience emailed created"
    assert_error(
        env.api.post("/audiences", json={"slug": "emailed", "filter": "FILTER *"}),
        409,
        words="exists already",
    )
    assert_error(env.api.post("/audiences", json={"slug": "-x", "filter": "FILTER *"}), 422, "slug")
    assert_error(env.api.post("/audiences", json={"slug": "x"}), 422, "filter", "field required")
    typo = env.api.post("/audiences", json={"slug": "x", "filter": "FILTER *", "descr": ""})
    assert_error(typo, 422, "descr", "extra")
    bad = env.api.post("/audiences", json={"slug": "broken", "filter": "FILTER AND (x = "})
    assert_error(bad, 422, "filter", "line 1, column 17")
    position = bad.json()["filterql"]
    assert position["line"] == 1 and position["column"] == 17 and position["expected"]
    assert position["caret"].endswith("^")
    unknown = env.api.post("/audiences", json={"slug": "inc", "filter": "FILTER INCLUDE nope"})
    assert_error(unknown, 422, "filter", "nope")
    assert env.api.get("/audiences/broken").status_code == 404

    listed = env.api.get("/audiences").json()
    assert [a["slug"] for a in listed if a["slug"] == "emailed"] == ["emailed"]
    assert env.api.get(f"/audiences/{created['id']}").json()["filter"] == "FILTER EXISTS email"
    assert_error(env.api.get("/audiences/nobody"), 404, words="'nobody'")

    edited = env.api.patch("/audiences/emailed", json={"filter": 'FILTER email LIKE "*@x.com"'})
    assert edited.status_code == 200, edited.text
    assert edited.json()["filter"] == 'FILTER email LIKE "*@x.com"'
    assert edited.json()["reevaluation_run"] != created["reevaluation_run"]
    assert_error(env.api.patch("/audiences/emailed", json={"filter": "FILTER ("}), 422, "filter")
    assert_error(env.api.patch("/audiences/nobody", json={"filter": "FILTER *"}), 404)
    cycle = create_audience(env, "outer", "FILTER INCLUDE emailed")
    cyclic = env.api.patch("/audiences/emailed", json={"filter": "FILTER INCLUDE outer"})
    assert_error(cyclic, 422, "filter")
    assert cycle["includes"] == ["emailed"]


def test_validate_and_eval(env: Env) -> None:
    create_audience(env, "pro_plan", 'FILTER plan = "pro"')
    ok = env.api.post(
        "/audiences/validate", json={"filter": "FILTER AND (INCLUDE pro_plan, EXISTS email)"}
    )
    assert ok.status_code == 200
    assert ok.json()["valid"] is True
    assert ok.json()["info"]["includes"] == ["pro_plan"]
    assert ok.json()["info"]["fields"] == ["email", "plan"]
    bad = env.api.post("/audiences/validate", json={"filter": "FILTER plan = "}).json()
    assert bad["valid"] is False and bad["filterql"]["column"] == 15 and "line 1" in bad["message"]
    self_cycle = env.api.post(
        "/audiences/validate", json={"filter": "FILTER INCLUDE pro_plan", "slug": "pro_plan"}
    ).json()
    assert self_cycle["valid"] is False

    window = 'FILTER timewindow("login", 2, 7)'
    profile = {"_events": {"login": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]}}
    got = env.api.post(
        "/audiences/eval",
        json={"filter": window, "profile": profile, "now": "2026-01-03T00:00:00Z"},
    ).json()
    assert got["matches"] is True and got["time_dependent"] is True
    assert got["next_change"] == "2026-01-08T00:00:00Z"
    included = env.api.post(
        "/audiences/eval",
        json={
            "filter": "FILTER INCLUDE vip",
            "profile": {"tier": 3},
            "includes": {"vip": "FILTER tier > 2"},
        },
    ).json()
    assert included["matches"] is True and included["includes"] == ["vip"]
    stored_include = env.api.post(
        "/audiences/eval", json={"filter": "FILTER INCLUDE pro_plan", "profile": {"plan": "pro"}}
    ).json()
    assert stored_include["matches"] is True

    env.api.post("/collect/web", json={"user_id": "eval-user", "plan": "pro"})
    env.drain()
    by_user = env.api.post(
        "/audiences/eval", json={"filter": 'FILTER plan = "pro"', "user_id": "eval-user"}
    )
    assert by_user.json()["matches"] is True
    assert_error(
        env.api.post("/audiences/eval", json={"filter": "FILTER *", "user_id": "ghost"}),
        422,
        "user_id",
    )
    assert_error(
        env.api.post("/audiences/eval", json={"filter": "FILTER *"}), 422, "profile", "exactly one"
    )
    assert_error(
        env.api.post("/audiences/eval", json={"filter": "FILTER *", "profile": {}, "now": "later"}),
        422,
        "now",
        "RFC 3339",
    )
    assert_error(
        env.api.post(
            "/audiences/eval", json={"filter": window, "profile": {"_events": {"login": [True]}}}
        ),
        422,
        "profile._events.login",
    )
    assert_error(
        env.api.post(
            "/audiences/eval",
            json={"filter": "FILTER *", "profile": {}, "includes": {"a": "FILTER ("}},
        ),
        422,
        "includes",
    )


def test_delete_audience_only_when_nothing_depends_on_it(env: Env) -> None:
    base = create_audience(env, "del_base", "FILTER EXISTS score")
    create_audience(env, "del_user", "FILTER INCLUDE del_base")
    assert_error(env.api.delete("/audiences/del_base"), 409, words="included by del_user")
    assert env.api.delete("/audiences/del_user").status_code == 204
    auth = create_auth(env, "del-hub")
    job = env.api.post(
        "/jobs", json={"label": "del-job", "audiences": ["del_base"], "authorization": auth["id"]}
    ).json()
    assert_error(env.api.delete("/audiences/del_base"), 409, words=job["id"])
    assert env.api.post(f"/jobs/{job['id']}/stop").status_code == 200

    env.api.post("/collect/web", json={"user_id": "del-member", "score": 1})
    env.drain()
    e = env.engine
    shard = shard_of("del-member", e.cfg.shards)
    assert MemberIndex(e.keys, shard, base["id"]).count(e.r) == 1
    assert env.api.delete(f"/audiences/{base['id']}").status_code == 204
    assert MemberIndex(e.keys, shard, base["id"]).count(e.r) == 0
    assert_error(env.api.get("/audiences/del_base"), 404)
    assert_error(env.api.delete("/audiences/del_base"), 404)
    env.api.post("/collect/web", json={"user_id": "del-member", "score": 2})
    env.drain()  # the registry still compiles; the stale membership is forgotten
    profile = env.api.get("/profiles/del-member").json()
    assert profile["fields"]["score"] == 2 and profile["audiences"] == {}
    again = create_audience(env, "del_base", "FILTER EXISTS score")
    assert again["id"] != base["id"]


# -- re-evaluation --------------------------------------------------------------------------------
def test_reevaluations_and_schedules(env: Env) -> None:
    a = create_audience(env, "recheck_me", "FILTER EXISTS x")
    run = env.api.post("/reevaluations", json={"audiences": ["recheck_me"]})
    assert run.status_code == 202
    body = run.json()
    assert body["audiences"] == [a["id"]] and body["reason"] == "requested"
    assert body["checked"] <= body["total"] and body["done"] is False
    assert body["id"] in [r["id"] for r in env.api.get("/reevaluations").json()]
    assert_error(env.api.get("/reevaluations/nope"), 404, words="kept for an hour")
    assert_error(
        env.api.post("/reevaluations", json={"audiences": ["recheck_me", "ghost"]}),
        422,
        "audiences[1]",
        "ghost",
    )
    assert_error(env.api.post("/reevaluations", json={"audiences": []}), 422, "audiences")

    once = env.api.post(
        "/reevaluation-schedules", json={"audiences": ["recheck_me"], "at": "2030-01-01T03:00:00Z"}
    )
    assert once.status_code == 201
    assert once.json()["next_at"] == "2030-01-01T03:00:00Z" and once.json()["cron"] == ""
    nightly = env.api.post(
        "/reevaluation-schedules", json={"audiences": [a["id"]], "every": "0 3 * * *"}
    ).json()
    assert nightly["next_at"].endswith("T03:00:00Z")
    ids = {s["id"] for s in env.api.get("/reevaluation-schedules").json()}
    assert {once.json()["id"], nightly["id"]} <= ids
    for bad, field in [
        ({"audiences": ["recheck_me"]}, "at"),
        ({"audiences": ["recheck_me"], "at": "2030-01-01T00:00:00Z", "every": "* * * * *"}, "at"),
        ({"audiences": ["recheck_me"], "every": "every day"}, "every"),
        ({"audiences": ["recheck_me"], "every": "0 0 31 2 *"}, "every"),
        ({"audiences": ["recheck_me"], "at": "tomorrow"}, "at"),
    ]:
        assert_error(env.api.post("/reevaluation-schedules", json=bad), 422, field)
    assert env.api.delete(f"/reevaluation-schedules/{nightly['id']}").status_code == 204
    assert_error(env.api.delete(f"/reevaluation-schedules/{nightly['id']}"), 404)


# -- authorizations -------------------------------------------------------------------------------
def test_authorizations(env: Env) -> None:
    auth = create_auth(env, "main-hub")
    assert set(auth) == {
        "id",
        "label",
        "namespace",
        "hub",
        "key_name",
        "emulator",
        "health",
        "partitions",
        "delivery",
        "created",
    }
    assert auth["hub"] == "audiences" and auth["emulator"] is True
    assert auth["partitions"] is None and auth["delivery"]["mode"] == "one user per request"
    assert env.api.get("/authorizations/main-hub").json()["id"] == auth["id"]
    assert auth["id"] in [a["id"] for a in env.api.get("/authorizations").json()]
    assert_error(env.api.get("/authorizations/nope"), 404)

    tested = env.api.post(f"/authorizations/{auth['id']}/test").json()
    assert tested["healthy"] is True, tested
    assert "accepted the key for event hub 'audiences' (4 partitions)" in tested["detail"]
    assert "first accepted batch" in tested["detail"]  # what this check cannot prove
    shown = env.api.get(f"/authorizations/{auth['id']}").json()
    assert shown["health"] == "healthy"
    assert shown["delivery"]["mode"] == "one request per partition"
    assert (shown["delivery"]["count"], shown["delivery"]["source"]) == (4, "management call")
    wrong_key = env.hub.connection_string.replace(KEY, "AnotherKeyThatIsWrong0123456789=")
    bad = env.api.post("/authorizations", json={"label": "wrong", "connection_string": wrong_key})
    unhealthy = env.api.post(f"/authorizations/{bad.json()['id']}/test").json()
    assert unhealthy["healthy"] is False

    for text, words in [
        (f"Endpoint=sb://ns/;SharedAccessKeyName=k;{KEY};EntityPath=h", "SharedAccessKey"),
        (f"Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey {KEY[:-1]}", "Name=value"),
        (f"Endpoint=sb://ns/;SharedAccessKeyName=k;{KEY[:-1]}", "Name=value"),
        (f"SharedAccessKey={KEY}", "missing Endpoint"),
        (f"Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey={KEY}", "EntityPath"),
        (KEY, ""),
    ]:
        resp = env.api.post("/authorizations", json={"label": "x", "connection_string": text})
        assert_error(resp, 422, "connection_string", words)
    namespace_level = env.hub.connection_string.replace(";EntityPath=audiences", "")
    with_hub = env.api.post(
        "/authorizations",
        json={"label": "ns-level", "connection_string": namespace_level, "hub": "audiences"},
    )
    assert with_hub.status_code == 201 and with_hub.json()["hub"] == "audiences"
    fixed = env.api.post(
        "/authorizations",
        json={"label": "fixed", "connection_string": env.hub.connection_string, "partitions": 8},
    ).json()
    assert fixed["partitions"] == 8
    assert fixed["delivery"] == {
        "mode": "one request per partition",
        "count": 8,
        "source": "set by auth create --partitions",
    }
    assert_error(
        env.api.post(
            "/authorizations",
            json={"label": "x", "connection_string": env.hub.connection_string, "partitions": 0},
        ),
        422,
        "partitions",
    )
    assert_error(
        env.api.post("/authorizations", json={"label": 5, "connection_string": KEY}), 422, "label"
    )

    a = create_audience(env, "auth_aud", "FILTER EXISTS email")
    job = env.api.post(
        "/jobs", json={"label": "uses-auth", "audiences": [a["id"]], "authorization": "main-hub"}
    ).json()
    assert_error(env.api.delete("/authorizations/main-hub"), 409, words=job["id"])
    env.api.post(f"/jobs/{job['id']}/stop")
    assert env.api.delete("/authorizations/main-hub").status_code == 204
    assert_error(env.api.get(f"/authorizations/{auth['id']}"), 404)


# -- jobs -----------------------------------------------------------------------------------------
def test_jobs_lifecycle(env: Env) -> None:
    a = create_audience(env, "job_aud", "FILTER EXISTS email")
    b = create_audience(env, "job_aud2", "FILTER EXISTS phone")
    env.api.post("/collect/web", json=[{"user_id": f"j{i}", "email": f"{i}@x"} for i in range(5)])
    env.drain()
    create_auth(env, "jobs-hub")

    preview = env.api.post("/jobs", json={"label": "p", "audiences": ["job_aud"], "dry_run": True})
    assert preview.status_code == 200
    assert preview.json()["audiences"] == [{"id": a["id"], "slug": "job_aud", "members": 5}]
    assert preview.json()["messages_at_most"] == 5

    created = env.api.post(
        "/jobs",
        json={
            "label": "export",
            "audiences": ["job_aud"],
            "authorization": "jobs-hub",
            "existing_users": True,
            "fields": ["email"],
            "events": ["enter"],
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] == "backfilling" and job["fields"] == ["email", "user_id"]
    assert job["events"] == ["enter"] and job["audiences"] == [{"id": a["id"], "slug": "job_aud"}]
    assert set(job["counts"]) >= {"sent", "backfilled", "failed", "dead_lettered"}
    assert job["backfill"]["active"] is True and job["backfill"]["total"] == 5

    inline = env.api.post(
        "/jobs",
        json={
            "label": "inline",
            "audiences": [b["slug"]],
            "connection_string": env.hub.connection_string,
        },
    )
    assert inline.status_code == 201
    assert env.api.get("/authorizations/inline hub").status_code == 200
    assert job["changes_only"] is False and inline.json()["changes_only"] is False
    assert job["partitions"]["mode"] in ("one request per partition", "one user per request")
    changes = env.api.post(
        "/jobs",
        json={
            "label": "changes",
            "audiences": ["job_aud"],
            "authorization": "jobs-hub",
            "changes_only": True,
        },
    )
    assert changes.status_code == 201 and changes.json()["changes_only"] is True
    for bad, field in [
        ({"label": "x", "audiences": ["job_aud"]}, "authorization"),
        (
            {
                "label": "x",
                "audiences": ["job_aud"],
                "authorization": "jobs-hub",
                "connection_string": env.hub.connection_string,
            },
            "authorization",
        ),
        (
            {"label": "x", "audiences": ["job_aud", "ghost"], "authorization": "jobs-hub"},
            "audiences[1]",
        ),
        ({"label": "x", "audiences": ["job_aud"], "authorization": "ghost"}, "authorization"),
        ({"label": "x", "audiences": [], "authorization": "jobs-hub"}, "audiences"),
        (
            {
                "label": "x",
                "audiences": ["job_aud"],
                "authorization": "jobs-hub",
                "events": ["leave"],
            },
            "events[0]",
        ),
        (
            {
                "label": "x",
                "audiences": ["job_aud"],
                "authorization": "jobs-hub",
                "transport": "smtp",
            },
            "transport",
        ),
        (
            {
                "label": "x",
                "audiences": ["job_aud"],
                "authorization": "jobs-hub",
                "max_batch_bytes": 5,
            },
            "max_batch_bytes",
        ),
        (
            {"label": "x", "audiences": ["ghost"], "connection_string": env.hub.connection_string},
            "audiences[0]",
        ),
    ]:
        assert_error(env.api.post("/jobs", json=bad), 422, field)
    assert env.api.get("/authorizations/x hub").status_code == 404  # nothing left behind

    listed = env.api.get("/jobs").json()
    assert {job["id"], inline.json()["id"]} <= {j["id"] for j in listed}
    shown = env.api.get("/jobs/export", params={"history": "true"}).json()
    assert [h["state"] for h in shown["history"]] == ["backfilling", "running"]
    assert shown["history"][0]["at"].endswith("Z")
    assert_error(env.api.get("/jobs/ghost"), 404, words="'ghost'")

    assert env.api.post("/jobs/export/pause").json()["state"] == "paused"
    assert env.api.post("/jobs/export/resume").json()["state"] in ("running", "backfilling")
    with_b = env.api.post("/jobs/export/audiences", json={"audience": "job_aud2"})
    assert with_b.status_code == 200
    assert [x["slug"] for x in with_b.json()["audiences"]] == ["job_aud", "job_aud2"]
    assert_error(
        env.api.post("/jobs/export/audiences", json={"audience": "job_aud2"}), 409, words="already"
    )
    assert_error(
        env.api.post("/jobs/export/audiences", json={"audience": "ghost"}), 422, "audience"
    )
    assert_error(env.api.post("/jobs/ghost/audiences", json={"audience": "job_aud"}), 404)
    assert env.api.post("/jobs/export/stop").json()["state"] == "stopped"
    assert_error(env.api.post("/jobs/export/resume"), 409, words="stopped for good")
    assert_error(env.api.post("/jobs/ghost/pause"), 404)


def test_dead_letters_and_replay(env: Env) -> None:
    a = create_audience(env, "dl_aud", "FILTER EXISTS email")
    auth = create_auth(env, "dl-hub")
    job = env.api.post(
        "/jobs", json={"label": "dl", "audiences": [a["id"]], "authorization": auth["id"]}
    ).json()
    e = env.engine
    key = e.keys.job_dead(job["id"])
    now = time.time_ns()
    rows: list[dict[Any, Any]] = [
        {"u": f"user{i}", "k": "k", "b": b"{}", "reason": "too large", "at": now} for i in range(3)
    ]
    ids = [cast(bytes, e.r.xadd(key, row)).decode() for row in rows]
    listed = env.api.get(f"/jobs/{job['id']}/dead-letters").json()
    assert [d["id"] for d in listed] == ids
    assert listed[0]["user_id"] == "user0" and listed[0]["reason"] == "too large"
    assert "b" not in listed[0] and "body" not in listed[0]
    assert len(env.api.get("/jobs/dl/dead-letters", params={"count": 1}).json()) == 1
    assert env.api.get("/jobs/dl").json()["counts"]["dead_letters_waiting"] == 3

    one = env.api.post(f"/jobs/{job['id']}/dead-letters/replay", json={"ids": [ids[0]]})
    assert one.json() == {"replayed": 1}
    shard = shard_of("user0", e.cfg.shards)
    assert Outbox(e.keys, shard, job["id"]).length(e.r) == 1
    rest = env.api.post("/jobs/dl/dead-letters/replay", json={"all": True})
    assert rest.json() == {"replayed": 2}
    assert env.api.get("/jobs/dl/dead-letters").json() == []
    for bad, field in [
        ({}, "ids"),
        ({"ids": [], "all": False}, "ids"),
        ({"ids": [ids[0]], "all": True}, "ids"),
        ({"ids": ["1-2-3"]}, "ids[0]"),
    ]:
        assert_error(env.api.post("/jobs/dl/dead-letters/replay", json=bad), 422, field)
    assert_error(env.api.get("/jobs/dl/dead-letters", params={"count": 0}), 422, "count (query)")
    assert_error(env.api.get("/jobs/ghost/dead-letters"), 404)
    assert_error(env.api.post("/jobs/ghost/dead-letters/replay", json={"all": True}), 404)


# -- profiles -------------------------------------------------------------------------------------
def test_profiles_read_and_score_updates(env: Env) -> None:
    create_audience(env, "high_score", "FILTER churn_score > 0.5")
    env.api.post(
        "/collect/web",
        json=[
            {"user_id": "p/1", "event": "login", "email": "p@x"},
            {"user_id": "p/1", "event": "login"},
        ],
    )
    env.drain()
    shown = env.api.get("/profiles/p%2F1")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["user_id"] == "p/1" and body["fields"]["email"] == "p@x"
    assert body["events"] == {"login": 2} and body["_created"].endswith("Z")
    assert "high_score" not in body["audiences"]

    update = env.api.patch("/profiles/p%2F1", json={"fields": {"churn_score": 0.9}})
    assert update.status_code == 202 and update.json() == {"user_id": "p/1", "accepted": True}
    env.drain()
    body = env.api.get("/profiles/p%2F1").json()
    assert body["fields"]["churn_score"] == 0.9
    assert body["events"] == {"login": 2}  # a score update records no event
    assert "high_score" in body["audiences"]  # (audiences of other tests may match too)
    assert body["audiences"]["high_score"]["enter"].endswith("Z")

    removed = env.api.patch("/profiles/p%2F1", json={"fields": {"churn_score": None}})
    assert removed.status_code == 202
    env.drain()
    assert "churn_score" not in env.api.get("/profiles/p%2F1").json()["fields"]

    assert_error(env.api.get("/profiles/ghost"), 404, words="'ghost'")
    assert_error(env.api.patch("/profiles/p1", json={"fields": {}}), 422, "fields")
    assert_error(
        env.api.patch("/profiles/p1", json={"fields": {"event": "x"}}), 422, "fields.event"
    )
    assert_error(
        env.api.patch("/profiles/p1", json={"fields": {"user_id": "p2", "a": 1}}),
        422,
        "fields.user_id",
    )
    assert_error(
        env.api.patch("/profiles/p1", json={"fields": {"a": 1, "_ts": "yesterday"}}),
        422,
        "fields._ts",
    )
    assert_error(env.api.get("/profiles/" + "u" * 257), 422, "user_id (path)")


# -- metrics and secrets --------------------------------------------------------------------------
def test_metrics_count_requests_and_events(env: Env) -> None:
    env.api.post("/collect/metrics-stream", json=[{"user_id": "m1"}, {"nope": 1}])
    env.api.patch("/profiles/m1", json={"fields": {"s": 1}})
    resp = env.api.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'audiencehub_api_events_total{outcome="accepted",stream="metrics-stream"} 1.0' in text
    assert 'audiencehub_api_events_total{outcome="rejected",stream="metrics-stream"} 1.0' in text
    assert 'audiencehub_api_events_total{outcome="accepted",stream="_scores"}' in text
    assert (
        'audiencehub_api_requests_total{method="POST",route="/collect/{stream}",status="202"}'
        in text
    )
    assert 'route="/jobs/{job_ref}",status="404"' in text
    assert 'route="unmatched",status="401"' in text
    assert "audiencehub_api_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


def test_the_key_never_appears_in_a_response_or_the_log(env: Env) -> None:
    """Runs last: every response of this module, and the API's whole log, are searched."""
    api = env.api
    # Extra attempts to make it leak: bodies that fail validation, errors deep in a job create.
    api.post("/authorizations", json={"connection_string": env.hub.connection_string})
    api.post(
        "/authorizations",
        json={"label": "x", "connection_string": env.hub.connection_string, "surprise": 1},
    )
    api.post("/authorizations", json={"label": "x", "connection_string": [KEY]})
    api.post("/authorizations", data=f'{{"label": "x", "connection_string": "{KEY}"'.encode())
    api.post(
        "/jobs",
        json={
            "label": "leak",
            "audiences": ["ghost"],
            "connection_string": env.hub.connection_string,
        },
    )
    api.post("/jobs", json={"label": "leak", "audiences": [], "connection_string": KEY})
    for auth in api.get("/authorizations").json():
        api.get(f"/authorizations/{auth['id']}")
        api.post(f"/authorizations/{auth['id']}/test")
    api.get("/openapi.json")
    api.get("/metrics")
    seen = env.responses()
    assert len(seen) > 10
    leaks = [text for text in seen if KEY in text or KEY.rstrip("=") in text]
    assert leaks == []
    assert not any(re.search(r"SharedAccessKey=(?!<key>)", text) for text in seen)
    log = env.proc.log()
    assert "POST /authorizations" in log  # the access log is there
    assert KEY.rstrip("=") not in log


def test_idle_answers_at_once_or_long_polls_with_prefer_wait(env: Env) -> None:
    """GET /idle is ``audiencehub wait --idle`` over HTTP: at once, or held until idle."""
    env.drain()
    now = env.api.get("/idle")
    assert now.status_code == 200 and "Preference-Applied" not in now.headers
    assert now.json()["pending_entries"] == 0
    env.api.post("/collect/idle-test", json={"user_id": "idle1", "plan": "pro"})
    busy = env.api.get("/idle")
    assert busy.json()["idle"] is False and busy.json()["pending_entries"] >= 1
    assert any("entries to apply" in b for b in busy.json()["busy"])

    import threading

    timer = threading.Timer(0.5, env.drain)  # a worker applies the event while the request waits
    timer.start()
    held = env.api.get("/idle", headers={"Prefer": "wait=3"})  # (other tests' outboxes may stay)
    timer.join()
    assert held.status_code == 200 and held.headers["Preference-Applied"] == "wait=3"
    assert held.json()["pending_entries"] == 0
    from audiencehub.api.routes_system import _wanted_wait

    assert _wanted_wait("respond-async, wait=999") == 25 and _wanted_wait("wait=x") == 0
