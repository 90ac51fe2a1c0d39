"""The dashboard over HTTP (no browser): login and sessions, CSRF, the JSON the pages poll, the
playground, security headers, and the API's explain endpoint.

The API runs as a real uvicorn process (tests/api/helpers.py); state is set up with an
in-process engine and drained in-process, so no Celery worker is needed here. The browser test is
tests/ui/test_browser.py; the size sampler's tests are in tests/ui/test_sizes.py (they flush Redis,
so they cannot share this module's API).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audiencehub.processes import HubEmulator, RedisServer, celery_env
from audiencehub.ui.session import COOKIE, MAX_AGE_S, Sessions
from tests.api.helpers import TOKEN, ApiProcess, Client, api_process
from tests.helpers import engine_for, make_job
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.jobs.status import job_status
from workers.jobs.store import JobStore
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor


class Env:
    def __init__(self, proc: ApiProcess, engine: Engine, hub: HubEmulator) -> None:
        self.proc = proc
        self.engine = engine
        self.hub = hub
        self.api = Client(proc.base_url)

    def url(self, path: str) -> str:
        return self.proc.base_url + path

    def drain(self) -> None:
        drainer = ShardDrainer(self.engine)
        for shard in range(self.engine.cfg.shards):
            drainer.drain(shard)

    def browser(self) -> requests.Session:
        """A client signed in the way a browser is: the login form, then the cookie."""
        s = requests.Session()
        resp = s.post(
            self.url("/ui/login"), data={"token": TOKEN, "next": "/ui/jobs"}, allow_redirects=False
        )
        assert resp.status_code == 303, resp.text
        return s


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("ui")
    hub = HubEmulator(workdir)
    hub.start()
    try:
        with api_process(
            redis_server, workdir, "uihttp", AUDIENCEHUB_API_FORWARDED_ALLOW_IPS="127.0.0.1"
        ) as (proc, cfg):
            engine = engine_for(cfg)
            AudienceStore(engine.r, engine.keys).create("with_email", "FILTER EXISTS email")
            Ingestor(engine).ingest(
                [("x", {"user_id": f"u{i}", "email": f"{i}@example.com"}, None) for i in range(5)]
            )
            e = Env(proc, engine, hub)
            e.drain()
            make_job(engine, hub, ["with_email"])
            yield e
            engine.r.close()
            assert "Traceback" not in proc.log(), proc.log()[-3000:]
    finally:
        hub.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert found, html[:500]
    return found.group(1)


# -- sessions -------------------------------------------------------------------------------------
def test_sessions_sign_verify_expire_and_end_with_the_token() -> None:
    sessions = Sessions(("first-token-0123456789", "second-token-0123456789"))
    assert sessions.login("nope") is None
    cookie = sessions.login(" second-token-0123456789 ", now=1000)
    assert cookie is not None and "second-token" not in cookie
    session = sessions.check(cookie, now=1000 + 60)
    assert session is not None and session.auth_required
    assert sessions.csrf_ok(session, session.csrf)
    assert not sessions.csrf_ok(session, "") and not sessions.csrf_ok(session, None)
    assert sessions.check(cookie, now=1000 + MAX_AGE_S + 1) is None  # expired
    assert sessions.check(cookie, now=1000 - 3600) is None  # issued in the future
    version, issued, nonce, mac = cookie.split(".")
    assert sessions.check(".".join([version, str(int(issued) + 1), nonce, mac]), 1060) is None
    assert sessions.check(".".join([version, issued, nonce + "x", mac]), 1060) is None
    for junk in ("", "v1", "v1.a.b.c", "v2.1000.n.m", "x" * 300):
        assert sessions.check(junk, now=1060) is None
    other = sessions.check(sessions.login("first-token-0123456789", now=1000), now=1000)
    assert other is not None and other.csrf != session.csrf  # one CSRF token per session
    rotated = Sessions(("first-token-0123456789",))
    assert rotated.check(cookie, now=1060) is None  # the token left the list: its sessions end
    open_ui = Sessions(())
    anyone = open_ui.check(None)
    assert anyone is not None and not anyone.auth_required and anyone.csrf


# -- login, cookie, CSRF -------------------------------------------------------------------------
def test_pages_need_a_session_and_the_api_ignores_it(env: Env) -> None:
    anonymous = requests.Session()
    page = anonymous.get(env.url("/ui/jobs?x=1"), allow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%3Fx%3D1"
    polled = anonymous.get(env.url("/ui/api/jobs"))
    assert polled.status_code == 401 and polled.json()["error"] == "unauthorized"
    bearer = anonymous.get(
        env.url("/ui/jobs"), headers={"Authorization": f"Bearer {TOKEN}"}, allow_redirects=False
    )
    assert bearer.status_code == 303  # the dashboard takes its cookie, not the header
    assert anonymous.get(env.url("/ui/static/ui.css")).status_code == 200
    login = anonymous.get(env.url("/ui/login"))
    assert login.status_code == 200 and 'type="password"' in login.text
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"

    browser = env.browser()
    cookie = browser.cookies.get(COOKIE, path="/ui")
    assert cookie and TOKEN not in cookie
    api = requests.get(env.url("/jobs"), headers={"Cookie": f"{COOKIE}={cookie}"})
    assert api.status_code == 401  # the cookie is for /ui only


def test_login_sets_a_strict_httponly_cookie_and_refuses_bad_tokens(env: Env) -> None:
    s = requests.Session()
    bad = s.post(env.url("/ui/login"), data={"token": "wrong", "next": "/ui/jobs"})
    assert bad.status_code == 401 and "not valid" in bad.text and "wrong" not in bad.text
    assert COOKIE not in s.cookies
    good = s.post(
        env.url("/ui/login"), data={"token": TOKEN, "next": "/ui/audiences"}, allow_redirects=False
    )
    assert good.status_code == 303 and good.headers["location"] == "/ui/audiences"
    header = good.headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/ui", f"max-age={MAX_AGE_S}"):
        assert part in header, header
    for evil in ("//evil.example/x", "https://evil.example", "/jobs", "/ui\\..", ""):
        resp = requests.post(
            env.url("/ui/login"), data={"token": TOKEN, "next": evil}, allow_redirects=False
        )
        assert resp.headers["location"] == "/ui/jobs", evil
    assert s.get(env.url("/ui/login"), allow_redirects=False).headers["location"] == "/ui/jobs"
    out = s.post(env.url("/ui/logout"), data={"csrf": "forged"}, allow_redirects=False)
    assert out.status_code == 403
    page = s.get(env.url("/ui/jobs"))
    copied = s.cookies[COOKIE]
    out = s.post(env.url("/ui/logout"), data={"csrf": csrf_of(page.text)}, allow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert COOKIE not in s.cookies
    # A copy of the cookie taken before signing out is refused too (server-side revocation).
    thief = requests.get(env.url("/ui/jobs"), cookies={COOKIE: copied}, allow_redirects=False)
    assert thief.status_code == 303 and thief.headers["location"].startswith("/ui/login")
    assert env.browser().get(env.url("/ui/jobs")).status_code == 200  # a new sign-in works


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(env: Env) -> None:
    """Over plain http the cookie cannot be Secure (the browser would drop it); behind a TLS
    proxy that the API trusts (AUDIENCEHUB_API_FORWARDED_ALLOW_IPS), it is."""

    def cookie(headers: dict[str, str]) -> str:
        resp = requests.post(
            env.url("/ui/login"), data={"token": TOKEN}, headers=headers, allow_redirects=False
        )
        return resp.headers["set-cookie"].lower()

    assert "secure" not in cookie({})
    assert "secure" in cookie({"X-Forwarded-Proto": "https"})


def test_actions_need_the_csrf_token(env: Env) -> None:
    s = env.browser()
    job = JobStore(env.engine.r, env.engine.keys).all()[0]
    page = s.get(env.url(f"/ui/jobs/{job.id}"))
    assert page.status_code == 200 and job.label in page.text
    token = csrf_of(page.text)
    for data in ({}, {"csrf": "forged"}, {"csrf": token + "x"}):
        refused = s.post(env.url(f"/ui/jobs/{job.id}/pause"), data=data)
        assert refused.status_code == 403 and "reload the page" in refused.text
    assert JobStore(env.engine.r, env.engine.keys).get(job.id).state == "running"
    paused = s.post(
        env.url(f"/ui/jobs/{job.label}/pause"), data={"csrf": token}, allow_redirects=False
    )
    assert paused.status_code == 303
    assert paused.headers["location"] == f"/ui/jobs/{job.id}?notice=paused"
    assert JobStore(env.engine.r, env.engine.keys).get(job.id).state == "paused"
    assert "Paused: triggers keep collecting" in s.get(env.url(paused.headers["location"])).text
    resumed = s.post(env.url(f"/ui/jobs/{job.id}/resume"), data={"csrf": token})
    assert resumed.status_code == 200 and "Resumed" in resumed.text
    stopped = env.api.post(f"/jobs/{job.id}/stop")
    assert stopped.status_code == 200
    refused = s.post(env.url(f"/ui/jobs/{job.id}/resume"), data={"csrf": token})
    assert refused.status_code == 409 and "stopped for good" in refused.text
    bad = s.post(env.url(f"/ui/jobs/{job.id}/dead-letters/replay"), data={"csrf": token, "id": "x"})
    assert bad.status_code == 422
    none = s.post(
        env.url(f"/ui/jobs/{job.id}/dead-letters/replay"), data={"csrf": token, "all": "1"}
    )
    assert none.status_code == 200 and "Replayed 0 dead letters" in none.text
    missing = s.get(env.url("/ui/jobs/ghost"))
    assert missing.status_code == 404 and "&#39;ghost&#39;" in missing.text
    assert s.get(env.url("/ui/api/jobs/ghost")).json()["error"] == "Not found"


# -- what the pages poll -------------------------------------------------------------------------
def test_polled_json_is_job_show(env: Env) -> None:
    s = env.browser()
    data = s.get(env.url("/ui/api/jobs")).json()
    e = env.engine
    slugs = {a.id: a.slug for a in AudienceStore(e.r, e.keys).all()}
    for card in data["jobs"]:
        expected = job_status(e, JobStore(e.r, e.keys).get(card["status"]["id"]), slugs)
        assert card["status"] == expected
        assert card["status"] == env.api.get(f"/jobs/{card['status']['id']}").json()
        assert len(card["minutes"]) == 60
        starts = [t for t, _ in card["minutes"]]
        assert starts == sorted(starts) and all(t % 60 == 0 for t in starts)
    assert data["system"]["events_accepted"] >= 5
    job_id = data["jobs"][0]["status"]["id"]
    detail = s.get(env.url(f"/ui/api/jobs/{job_id}")).json()
    assert [h["state"] for h in detail["history"]][-1] == "running"
    assert detail["dead_letters"] == []
    audiences = s.get(env.url("/ui/api/audiences?range=6h")).json()
    (aud,) = [a for a in audiences["audiences"] if a["slug"] == "with_email"]
    assert aud["size"] == 5 and aud["entered"] == 5 and aud["filter"] == "FILTER EXISTS email"
    assert len(aud["series"]) == 360 and aud["series"][-1][1] == 5
    assert s.get(env.url("/ui/api/audiences?range=bogus")).status_code == 200
    page = s.get(env.url("/ui/audiences"))
    assert page.status_code == 200 and "FILTER EXISTS email" in page.text
    metrics = env.api.get("/metrics").text
    assert 'route="/ui/api/jobs",status="200"' in metrics


def test_playground_explains_or_points_at_the_error(env: Env) -> None:
    s = env.browser()
    token = csrf_of(s.get(env.url("/ui/audiences")).text)
    fragment = {"X-Fragment": "1"}
    ok = s.post(
        env.url("/ui/playground"),
        headers=fragment,
        data={
            "csrf": token,
            "filter": 'FILTER AND (plan = "pro", INCLUDE with_email)',
            "profile": '{"plan": "pro", "email": "a@example.com"}',
            "now": "",
        },
    )
    assert ok.status_code == 200, ok.text
    assert "matches" in ok.text and "&#34;pro&#34;" in ok.text and "with_email" in ok.text
    stored = s.post(
        env.url("/ui/playground"),
        headers=fragment,
        data={"csrf": token, "filter": "FILTER EXISTS email", "user_id": "u3"},
    )
    assert stored.status_code == 200 and "&#34;3@example.com&#34;" in stored.text
    for data, words in [
        ({"filter": "FILTER AND (x = "}, "line 1"),
        ({"filter": "FILTER x = 1", "profile": "not json"}, "not JSON"),
        ({"filter": "FILTER x = 1", "profile": "[1]"}, "JSON object"),
        ({"filter": "FILTER x = 1", "user_id": "ghost"}, "no stored profile"),
        ({"filter": "FILTER x = 1", "now": "tomorrow"}, "RFC 3339"),
        ({"filter": ""}, "Write a filter"),
    ]:
        resp = s.post(env.url("/ui/playground"), headers=fragment, data={"csrf": token, **data})
        assert resp.status_code == 422 and words in resp.text, (data, resp.text)
    whole = s.post(env.url("/ui/playground"), data={"csrf": token, "filter": "FILTER x = 1"})
    assert (
        whole.status_code == 200
        and "<!doctype html>" in whole.text
        and "does not match" in whole.text
    )
    forged = s.post(env.url("/ui/playground"), headers=fragment, data={"filter": "FILTER x = 1"})
    assert forged.status_code == 403 and forged.json()["error"] == "Forbidden"


def test_the_ui_is_open_when_the_api_is(redis_server: RedisServer, tmp_path: Path) -> None:
    """Demo and test modes without tokens: no login page in the way, CSRF still checked."""
    env = celery_env(
        redis_server.url,
        AUDIENCEHUB_MODE="demo",
        AUDIENCEHUB_SHARDS="4",
        AUDIENCEHUB_PREFIX="uiopen",
    )
    env.pop("AUDIENCEHUB_API_TOKENS", None)
    proc = ApiProcess(tmp_path, env)
    proc.start()
    try:
        page = requests.get(proc.base_url + "/ui/jobs")
        assert page.status_code == 200 and "auth off" in page.text and "Sign out" not in page.text
        assert "No export jobs yet" in page.text
        assert requests.get(proc.base_url + "/ui/login", allow_redirects=False).status_code == 303
        forged = requests.post(proc.base_url + "/ui/playground", data={"filter": "FILTER x = 1"})
        assert forged.status_code == 403
        # Any web page could post to an API without tokens: a browser's cross-site request
        # (it says where it comes from) is refused; a client that is not a browser passes.
        collect = proc.base_url + "/collect/web"
        event = '{"user_id": "o1"}'
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            refused = requests.post(collect, data=event, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["field"] == "Origin (header)"
        pause = requests.post(
            proc.base_url + "/jobs/x/pause", headers={"Origin": "http://evil.example"}
        )
        assert pause.status_code == 403
        host = proc.base_url.removeprefix("http://")
        same = requests.post(collect, data=event, headers={"Origin": f"http://{host}"})
        assert same.status_code == 202, same.text
        assert requests.post(collect, data=event).status_code == 202
    finally:
        proc.stop()


# -- the explain endpoint of the API ---------------------------------------------------------------
def test_explain_endpoint(env: Env) -> None:
    Ingestor(env.engine).ingest([("x", {"user_id": "a/b", "plan": "pro"}, None)])
    env.drain()
    answer = env.api.get("/profiles/u1/explain")
    assert answer.status_code == 200, answer.text
    (one,) = [x for x in answer.json() if x["audience"]["slug"] == "with_email"]
    assert one["in"] is True and one["stored"]["in"] is True and one["agrees"] is True
    assert one["stored"]["enter"].endswith("Z")
    assert one["tree"]["value"] == "true" and one["tree"]["decides"] is True
    assert one["tree"]["reads"] == [
        {"text": "email", "value": "1@example.com", "shown": '"1@example.com"'}
    ]
    assert one["next_change"] is None
    assert env.api.get("/profiles/u1").json()["user_id"] == "u1"  # show still answers

    slashed = env.api.get("/profiles/a%2Fb/explain", params={"audience": "with_email"}).json()
    assert [x["in"] for x in slashed] == [False]
    assert slashed[0]["tree"]["reads"][0]["value"] is None  # email is missing
    past = env.api.get(
        "/profiles/u1/explain", params={"audience": ["with_email"], "at": "2020-01-01T00:00:00Z"}
    ).json()
    assert past[0]["at"] == "2020-01-01T00:00:00Z"

    missing = env.api.get("/profiles/ghost/explain")
    assert missing.status_code == 404 and "'ghost'" in missing.json()["message"]
    unknown = env.api.get("/profiles/u1/explain", params={"audience": ["with_email", "nope"]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "audience[1] (query)"
    bad_time = env.api.get("/profiles/u1/explain", params={"at": "yesterday"})
    assert bad_time.status_code == 422 and bad_time.json()["field"] == "at (query)"
    assert requests.get(env.url("/profiles/u1/explain")).status_code == 401

    doc = env.api.get("/openapi.json").json()
    op = doc["paths"]["/profiles/{user_id}/explain"]["get"]
    assert op["security"] == [{"bearerAuth": []}]
    assert {"200", "401", "404", "422", "503"} <= set(op["responses"])
    assert not any(path.startswith("/ui") for path in doc["paths"])


def test_profile_page_shows_the_explanation(env: Env) -> None:
    s = env.browser()
    page = s.get(env.url("/ui/profiles"), params={"user": "u2", "audience": "with_email"})
    assert page.status_code == 200
    assert 'data-audience="with_email"' in page.text and "member since" in page.text
    assert "&#34;2@example.com&#34;" in page.text
    for params, words in [
        ({"user": "ghost"}, "no profile for user"),
        ({"user": "u2", "at": "soon"}, "RFC 3339"),
        ({"user": "u2", "audience": "nope"}, "no audience"),
    ]:
        resp = s.get(env.url("/ui/profiles"), params=params)
        assert resp.status_code == 200 and words in resp.text, (params, resp.text[-800:])
