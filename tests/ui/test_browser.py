"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright for Python.

Everything is real and runs on loopback: a redis-server, the API (uvicorn in its own process,
with tokens, so the login is exercised), a Celery worker and beat, and the hub stand-in. The test
sets up through the public API as a person would, then checks in the page that the counts move
without a reload, that a dead letter made by the stand-in's fault injection can be replayed, that
pause and resume work, and that the explain views show each clause's values. With
AUDIENCEHUB_UPDATE_SCREENSHOTS=1 it rewrites the screenshots in docs/img/ that the README and
docs/dashboard.md show.

Skipped when the ``playwright`` package or ``/usr/bin/chromium`` is missing; it never downloads a
browser (``playwright install`` is not used anywhere).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator, RedisServer, wait_for
from tests.api.helpers import TOKEN, ApiProcess, Client, api_process

CHROMIUM = os.environ.get("AUDIENCEHUB_CHROMIUM", "/usr/bin/chromium")
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/img when AUDIENCEHUB_UPDATE_SCREENSHOTS=1 (to refresh the committed pictures), else a
    temporary folder, so a test run leaves the checkout as it found it."""
    return DOCS_IMG if os.environ.get("AUDIENCEHUB_UPDATE_SCREENSHOTS") == "1" else tmp_path


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FILTER = 'FILTER AND (country = "NL", timewindow("purchase", 2, 7))'

playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the playwright package is not installed (pip install playwright; no browser download)",
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); the browser tests use Debian's chromium",
        allow_module_level=True,
    )

pytestmark = pytest.mark.e2e


class Stack:
    def __init__(self, api: ApiProcess, hub: HubEmulator) -> None:
        self.api = api
        self.hub = hub
        self.client = Client(api.base_url)

    def url(self, path: str) -> str:
        return self.api.base_url + path

    def collect(self, events: list[dict[str, Any]]) -> None:
        resp = self.client.post("/collect/web", json=events)
        assert resp.status_code == 202 and resp.json()["rejected"] == 0, resp.text

    def job(self, ref: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/jobs/{ref}").json()
        return body


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("ui-browser")
    hub = HubEmulator(workdir)
    hub.start()
    try:
        with api_process(redis_server, workdir, "uitest") as (proc, _cfg):
            env = dict(proc.env)
            env.pop("AUDIENCEHUB_API_TOKENS")
            worker, beat = CeleryWorker(workdir, env), CeleryBeat(workdir, env)
            worker.start()
            beat.start()
            try:
                yield Stack(proc, hub)
            finally:
                beat.stop()
                worker.stop()
            assert "Traceback" not in proc.log(), proc.log()[-3000:]
    finally:
        hub.stop()


def purchases(user: str, country: str, n: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "user_id": user,
            "event": "purchase",
            "country": country,
            "email": f"{user}@example.com",
            "_ts": int((now - 3600 * (i + 1)) * 1000),
        }
        for i in range(n)
    ]


def setup_data(s: Stack) -> None:
    """Audiences, users, an authorization and two jobs, through the public API."""
    c = s.client
    for slug, text, what in [
        ("nl_buyers", FILTER, "Dutch customers with 2+ purchases in 7 days"),
        ("newsletter", "FILTER EXISTS email", "everyone with an email address"),
    ]:
        resp = c.post("/audiences", json={"slug": slug, "filter": text, "description": what})
        assert resp.status_code == 201, resp.text
    events: list[dict[str, Any]] = []
    for i in range(24):
        events += purchases(f"u{i:03d}", "NL" if i % 3 else "BE", 2 if i % 4 else 1)
    s.collect(events)
    auth = c.post(
        "/authorizations", json={"label": "hub", "connection_string": s.hub.connection_string}
    )
    assert auth.status_code == 201, auth.text
    wait_for(
        lambda: (
            c.post(
                "/jobs", json={"label": "x", "audiences": ["newsletter"], "dry_run": True}
            ).json()["messages_at_most"]
            == 24
        ),
        30,
        0.2,
        "the 24 users to be applied",
    )
    for label, slugs in [("crm-export", ["nl_buyers", "newsletter"]), ("ads-sync", ["nl_buyers"])]:
        resp = c.post(
            "/jobs",
            json={
                "label": label,
                "audiences": slugs,
                "authorization": "hub",
                "existing_users": True,
            },
        )
        assert resp.status_code == 201, resp.text
    wait_for(
        lambda: all(
            s.job(j)["backfill"]["active"] is False and s.job(j)["backlog"] == 0
            for j in ("crm-export", "ads-sync")
        ),
        30,
        0.2,
        "the backfills to be sent",
    )
    assert c.post("/jobs/ads-sync/pause").status_code == 200


def number(text: str) -> int:
    return int(text.replace(",", "").strip() or 0)


def test_dashboard_in_chromium(stack: Stack, tmp_path: Path) -> None:
    img = screenshot_dir(tmp_path)
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    setup_data(stack)
    img.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            # -- login: a token once, then a session cookie scripts cannot read -----------------
            page.goto(stack.url("/ui/"))
            expect(page).to_have_url(stack.url("/ui/login?next=%2Fui%2Fjobs"))
            page.fill("input[name=token]", "wrong-token-0123456789")
            page.click("button[type=submit]")
            expect(page.locator(".notice.bad")).to_contain_text("not valid")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            expect(page).to_have_url(stack.url("/ui/jobs"))
            errors.clear()  # the refused login was a 401, which the console reports
            cookie = next(c for c in browser.cookies() if c["name"] == "audiencehub_ui")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert TOKEN not in cookie["value"]
            assert page.evaluate("document.cookie") == ""

            # -- jobs list: counts move without a reload ------------------------------------------
            crm_id = stack.job("crm-export")["id"]
            card = page.locator(f'article[data-job="{crm_id}"]')
            expect(card.locator(".state")).to_have_text("running")
            expect(page.locator(".state-paused")).to_have_text("paused")
            sent = card.locator('[data-bind="status.counts.sent"]')
            before = number(sent.inner_text())
            assert before == stack.job("crm-export")["counts"]["sent"] > 0
            assert card.locator("svg.bars rect").count() == 60
            page.evaluate("window.__stays = true")  # gone if the page reloads
            stack.collect(purchases("late-1", "NL", 2) + purchases("late-2", "NL", 2))
            wait_for(lambda: number(sent.inner_text()) >= before + 2, 20, 0.2, "sent to grow")
            assert page.evaluate("window.__stays") is True
            page.screenshot(path=str(img / "jobs.png"), full_page=True)

            # -- a job's page: pause and resume -----------------------------------------------------
            card.locator("h2 a").click()
            expect(page).to_have_url(stack.url(f"/ui/jobs/{crm_id}"))
            scanned = stack.job("crm-export")["backfill"]["scanned"]
            assert scanned > 24  # the members of both audiences
            expect(page.locator("#backfill")).to_have_attribute("value", str(scanned))
            page.click("#pause")
            expect(page.locator(".notice.good")).to_contain_text("Paused")
            expect(page.locator("header .state")).to_have_text("paused")
            assert stack.job("crm-export")["state"] == "paused"
            page.click("#resume")
            expect(page.locator(".notice.good")).to_contain_text("Resumed")
            expect(page.locator("#history tbody tr").first).to_contain_text("resumed by request")

            # -- a dead letter from the stand-in's fault injection, then its replay -------------
            wait_for(lambda: stack.job("crm-export")["backlog"] == 0, 20, 0.1, "an empty backlog")
            faults = requests.put(
                f"{stack.hub.base_url}/_emulator/faults",
                json={"status": 400, "count": 1},
                timeout=10,
            )
            assert faults.status_code < 300, faults.text
            stack.collect([{"user_id": "refused-1", "email": "refused@example.com"}])
            row = page.locator("#dead-letters tbody tr[data-id]")
            expect(row).to_have_count(1, timeout=20_000)
            expect(row).to_contain_text("refused-1")
            expect(row.locator(".reason")).to_contain_text("400")
            page.screenshot(path=str(img / "job.png"), full_page=True)
            row.locator("button").click()
            expect(page.locator(".notice.good")).to_contain_text("Replayed 1 dead letter")
            expect(page.locator("#dead-letters tbody tr[data-id]")).to_have_count(0)
            wait_for(
                lambda: any(e["partition_key"] == "refused-1" for e in stack.hub.events()),
                20,
                0.1,
                "the replayed message at the hub",
            )

            # -- audiences: sizes, filter text, the playground ------------------------------------
            page.click("nav >> text=Audiences")
            nl = page.locator("article#a-nl_buyers")
            members = stack.client.post(
                "/jobs", json={"label": "x", "audiences": ["nl_buyers"], "dry_run": True}
            ).json()["audiences"][0]["members"]
            expect(nl.locator('[data-bind="size"]')).to_have_text(f"{members:,}")
            expect(nl.locator("pre.filter")).to_have_text(FILTER)
            expect(nl.locator("svg.line circle")).to_have_count(1)
            nl.locator("button[data-try]").click()
            page.fill(
                "textarea[name=profile]",
                '{"country": "NL", "_events": {"purchase": ["2026-03-01T09:00:00Z", '
                '"2026-03-07T09:12:00Z"]}}',
            )
            page.fill("input[name=now]", "2026-03-07T12:00:00Z")
            page.click("#evaluate")
            result = page.locator("#playground-result")
            expect(result.locator(".verdict")).to_have_text("matches at 2026-03-07T12:00:00Z")
            expect(result).to_contain_text('"NL"')
            expect(result).to_contain_text("purchase: 2 in the last 7 days")
            expect(result.locator(".next")).to_contain_text(
                "exits 2026-03-08T09:00:00Z when the purchase of 2026-03-01T09:00:00Z leaves"
            )
            page.screenshot(path=str(img / "audiences.png"), full_page=True)

            # -- profile lookup: the explanation of a stored user ---------------------------------
            page.click("nav >> text=Profiles")
            page.fill("input[name=user]", "u001")
            page.click("#explain")
            nl_card = page.locator('article[data-audience="nl_buyers"]')
            expect(nl_card.locator("header .state")).to_have_text("in")
            expect(nl_card).to_contain_text('country = "NL"')
            expect(nl_card.locator(".read").first).to_have_text('"NL"')
            expect(nl_card).to_contain_text("purchase: 2 in the last 7 days")
            expect(nl_card.locator(".next")).to_contain_text("exits")
            page.screenshot(path=str(img / "profile.png"), full_page=True)

            # -- sign out: the cookie is gone and the pages ask for the token again ---------------
            page.click("text=Sign out")
            expect(page).to_have_url(stack.url("/ui/login"))
            page.goto(stack.url("/ui/jobs"))
            expect(page).to_have_url(stack.url("/ui/login?next=%2Fui%2Fjobs"))
            assert errors == [], errors
        finally:
            browser.close()
    assert time.monotonic() - started < 90
