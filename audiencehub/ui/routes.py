"""The dashboard's pages, the JSON they poll, and the few forms that change something.

Pages are rendered on the server from the dicts in ``audiencehub.ui.data``; ``/ui/api/…`` serves
the same dicts as JSON for ``ui.js`` to refresh them. Forms post ``application/x-www-form-urlencoded``
(parsed here, so no multipart library is needed) with the session's CSRF token, and answer with a
303 back to the page (post/redirect/get: a reload never repeats the action).

Routes are top-level functions on this module's ``router``, as the API's are; what they need
(the ``Ui``: sessions and templates; the engine; the session; the form) comes as dependencies.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment

from audiencehub.api.errors import ApiError
from audiencehub.api.filters import compile_with, parse_time, profile_from_json
from audiencehub.api.models import STREAM_ID_PATTERN
from audiencehub.ui import data
from audiencehub.ui.session import COOKIE, COOKIE_PATH, Session, Sessions
from workers.audiences.explain import explain_user
from workers.audiences.registry_store import Conflict, NotFound
from workers.delivery.dead_letters import DeadLetters
from workers.engine import Engine
from workers.filterql import Filter
from workers.filterql.explain import explain
from workers.jobs.control import JobControl
from workers.pipeline.profile import Profile
from workers.pipeline.profiles import stored_profile
from workers.timefmt import parse_rfc3339

log = logging.getLogger("audiencehub.ui")

PREFIX = "/ui"
JOBS_POLL_MS = 3000
AUDIENCES_POLL_MS = 5000
_DEAD_LETTER_ID = re.compile(STREAM_ID_PATTERN)
NOTICES = {
    "paused": "Paused: triggers keep collecting in the outbox; resume sends them.",
    "resumed": "Resumed: sending again.",
}


class LoginRequired(Exception):
    """Raised by a route that needs a session; answered with a redirect to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next = next_url


@dataclass
class Ui:
    """What every route needs: the API app (for its engine), sessions and templates."""

    api: FastAPI
    sessions: Sessions
    env: Environment

    def engine(self) -> Engine:
        engine: Engine = self.api.state.engine
        return engine

    def session(self, cookie: str | None) -> Session | None:
        """The signed-in session a cookie carries, unless it was signed out (revoked)."""
        session = self.sessions.check(cookie)
        if session is None or not session.nonce:
            return session
        e = self.engine()
        return None if e.r.exists(e.keys.ui_revoked(session.nonce)) else session

    def revoke(self, session: Session) -> None:
        """Sign this session out everywhere, for as long as its cookie could still be used."""
        if not session.nonce:
            return
        left = session.issued + self.sessions.max_age_s - int(time.time()) + 60
        e = self.engine()
        e.r.set(e.keys.ui_revoked(session.nonce), 1, ex=max(left, 1))

    @staticmethod
    def login_url(next_url: str = "") -> str:
        return f"{PREFIX}/login" + (f"?{urlencode({'next': next_url})}" if next_url else "")

    def page(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        values: dict[str, Any] = {
            "base": PREFIX,
            "session": session,
            "page": template.removesuffix(".html"),
            "nav": "",
            "poll": "",
            "interval": 0,
            "notice": None,
            "at": "",
        }
        values.update(context)
        return HTMLResponse(self.env.get_template(template).render(values), status_code=status)


def safe_next(value: str | None) -> str:
    """Only a dashboard path: never another site (``//evil``) or the API."""
    if (
        value
        and value.startswith(f"{PREFIX}/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return f"{PREFIX}/jobs"


def notice(code: str | None, n: int | None = None) -> dict[str, str] | None:
    """A message chosen from a fixed list by code: nothing from the query is echoed."""
    if code == "replayed":
        count = n or 0
        return {"kind": "good", "text": f"Replayed {count} dead letter{'' if count == 1 else 's'}."}
    if code in NOTICES:
        return {"kind": "good", "text": NOTICES[code]}
    return None


def stored_profile_or_none(e: Engine, user_id: str) -> Profile | None:
    try:
        return stored_profile(e, user_id)
    except NotFound:
        return None


def playground(e: Engine, form: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Explain ``form``'s filter for its profile: (explanation, None) or (None, problem)."""
    text = form.get("filter", "").strip()
    if not text:
        return None, {"message": "Write a filter, e.g. FILTER EXISTS email.", "caret": ""}
    known: dict[str, Filter] = {a.slug: a.filter for a in e.registry.get().audiences.values()}
    try:
        compiled = compile_with(text, known)
        user_id = form.get("user_id", "").strip()
        if user_id:
            profile = stored_profile_or_none(e, user_id)
            if profile is None:
                raise ApiError(422, f"no stored profile for user {user_id!r}")
        else:
            try:
                raw = orjson.loads(form.get("profile", "").strip() or "{}")
            except orjson.JSONDecodeError as exc:
                raise ApiError(422, f"the profile is not JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise ApiError(422, "the profile must be a JSON object of fields")
            profile = profile_from_json(raw)
        at = form.get("now", "").strip()
        now = parse_time(at, "at") if at else e.clock.now_ns()
        explained = explain(compiled, profile, now).as_dict()
    except ApiError as exc:
        caret = (exc.filterql or {}).get("caret", "")
        return None, {"message": exc.message, "caret": caret}
    except (TypeError, ValueError, ArithmeticError, RecursionError, OverflowError) as exc:
        message = f"the filter could not be evaluated on this profile ({type(exc).__name__}: {exc})"
        return None, {"message": message[:300], "caret": ""}
    return explained, {}


def _ui(request: Request) -> Ui:
    ui: Ui = request.app.state.ui
    return ui


async def the_ui(request: Request) -> Ui:
    return _ui(request)


async def the_engine(request: Request) -> Engine:
    """The engine the API's lifespan made (read per request: the UI app is built before it)."""
    return _ui(request).engine()


def current(request: Request) -> Session:
    """The request's session; a login redirect (or a 401 for scripts) when it has none.
    Not async: the revocation check reads Redis, so it runs in the thread pool."""
    session = _ui(request).session(request.cookies.get(COOKIE))
    if session is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query if request.method == "GET" else "")
    return session


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form (what every dashboard form posts); the size is capped by the gate."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


UiDep = Annotated[Ui, Depends(the_ui)]
EngineDep = Annotated[Engine, Depends(the_engine)]
SessionDep = Annotated[Session, Depends(current)]
FormDep = Annotated[dict[str, str], Depends(form_of)]

router = APIRouter(prefix=PREFIX)


def checked(ui: Ui, session: Session, form: dict[str, str]) -> Session:
    if not ui.sessions.csrf_ok(session, form.get("csrf")):
        raise ApiError(403, "the form is stale or came from another site; reload the page")
    return session


# -- sign in ------------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def home() -> Response:
    return RedirectResponse(f"{PREFIX}/jobs", status_code=303)


@router.get("/login")
def login_form(request: Request, ui: UiDep, next: str = "") -> Response:
    if ui.session(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return ui.page(
        request,
        "login.html",
        None,
        next=safe_next(next),
        failed=False,
        hours=ui.sessions.max_age_s // 3600,
    )


@router.post("/login")
def login(request: Request, ui: UiDep, form: FormDep) -> Response:
    sessions = ui.sessions
    target = safe_next(form.get("next"))
    cookie = sessions.login(form.get("token", ""))
    if cookie is None:
        log.warning("ui: a sign-in with an invalid token from %s", request.client)
        return ui.page(
            request,
            "login.html",
            None,
            status=401,
            next=target,
            failed=True,
            hours=sessions.max_age_s // 3600,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=sessions.max_age_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(ui: UiDep, session: SessionDep, form: FormDep) -> Response:
    checked(ui, session, form)
    ui.revoke(session)
    response = RedirectResponse(ui.login_url(), status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# -- jobs ---------------------------------------------------------------------------------------
@router.get("/jobs")
def jobs_page(request: Request, ui: UiDep, engine: EngineDep, session: SessionDep) -> Response:
    overview = data.jobs_overview(engine)
    return ui.page(
        request,
        "jobs.html",
        session,
        nav="jobs",
        poll=f"{PREFIX}/api/jobs",
        interval=JOBS_POLL_MS,
        **overview,
    )


@router.get("/api/jobs")
def jobs_json(engine: EngineDep, session: SessionDep) -> JSONResponse:
    return JSONResponse(data.jobs_overview(engine))


@router.get("/jobs/{job_ref}")
def job_page(
    request: Request,
    job_ref: str,
    ui: UiDep,
    engine: EngineDep,
    session: SessionDep,
    notice_code: Annotated[str | None, Query(alias="notice")] = None,
    n: int | None = None,
) -> Response:
    card = data.job_detail(engine, job_ref)
    return ui.page(
        request,
        "job.html",
        session,
        nav="jobs",
        card=card,
        at=card["at"],
        poll=f"{PREFIX}/api/jobs/{quote(card['status']['id'])}",
        interval=JOBS_POLL_MS,
        notice=notice(notice_code, n),
    )


@router.get("/api/jobs/{job_ref}")
def job_json(job_ref: str, engine: EngineDep, session: SessionDep) -> JSONResponse:
    return JSONResponse(data.job_detail(engine, job_ref))


def _after(job_id: str, code: str, **q: Any) -> Response:
    query = urlencode({"notice": code, **q})
    return RedirectResponse(f"{PREFIX}/jobs/{quote(job_id)}?{query}", status_code=303)


def _refused(request: Request, ui: Ui, session: Session, job_ref: str, exc: Exception) -> Response:
    card = data.job_detail(ui.engine(), job_ref)
    return ui.page(
        request,
        "job.html",
        session,
        status=409,
        nav="jobs",
        card=card,
        at=card["at"],
        poll=f"{PREFIX}/api/jobs/{quote(card['status']['id'])}",
        interval=JOBS_POLL_MS,
        notice={"kind": "bad", "text": str(exc)},
    )


def _control(
    request: Request, ui: Ui, session: Session, form: dict[str, str], job_ref: str, action: str
) -> Response:
    """Pause or resume; a refusal (already paused, stopped…) shows on the job's page."""
    checked(ui, session, form)
    control = JobControl(ui.engine())
    try:
        job = control.pause(job_ref) if action == "paused" else control.resume(job_ref)
    except Conflict as exc:
        return _refused(request, ui, session, job_ref, exc)
    return _after(job.id, action)


@router.post("/jobs/{job_ref}/pause")
def pause(
    request: Request, job_ref: str, ui: UiDep, session: SessionDep, form: FormDep
) -> Response:
    return _control(request, ui, session, form, job_ref, "paused")


@router.post("/jobs/{job_ref}/resume")
def resume(
    request: Request, job_ref: str, ui: UiDep, session: SessionDep, form: FormDep
) -> Response:
    return _control(request, ui, session, form, job_ref, "resumed")


@router.post("/jobs/{job_ref}/dead-letters/replay")
def replay(job_ref: str, ui: UiDep, session: SessionDep, form: FormDep) -> Response:
    """One letter (``id``) or every letter (``all=1``), back into its user's outbox."""
    checked(ui, session, form)
    e = ui.engine()
    job = e.jobs.get(job_ref)
    letter = form.get("id", "")
    if form.get("all") == "1":
        count = DeadLetters(e).replay(job.id, None)
    elif _DEAD_LETTER_ID.match(letter):
        count = DeadLetters(e).replay(job.id, [letter])
    else:
        raise ApiError(422, "name a dead letter to replay, or replay all")
    return _after(job.id, "replayed", n=count)


# -- audiences ----------------------------------------------------------------------------------
def _range(name: str) -> str:
    return name if name in data.SIZE_RANGES else "1h"


def _audiences(
    request: Request, ui: Ui, session: Session, range_name: str, status: int = 200, **extra: Any
) -> Response:
    chosen = _range(range_name)
    overview = data.audiences_overview(ui.engine(), data.SIZE_RANGES[chosen])
    context: dict[str, Any] = {
        "form": {"filter": "", "profile": "", "user_id": "", "now": ""},
        "result": None,
        "problem": None,
    }
    context.update(extra)
    return ui.page(
        request,
        "audiences.html",
        session,
        status=status,
        nav="audiences",
        poll=f"{PREFIX}/api/audiences?range={chosen}",
        interval=AUDIENCES_POLL_MS,
        ranges=list(data.SIZE_RANGES),
        range=chosen,
        **overview,
        **context,
    )


@router.get("/audiences")
def audiences_page(
    request: Request,
    ui: UiDep,
    session: SessionDep,
    range_name: Annotated[str, Query(alias="range")] = "1h",
) -> Response:
    return _audiences(request, ui, session, range_name)


@router.get("/api/audiences")
def audiences_json(
    engine: EngineDep,
    session: SessionDep,
    range_name: Annotated[str, Query(alias="range")] = "1h",
) -> JSONResponse:
    return JSONResponse(data.audiences_overview(engine, data.SIZE_RANGES[_range(range_name)]))


@router.post("/playground")
def playground_run(request: Request, ui: UiDep, session: SessionDep, form: FormDep) -> Response:
    """Side-effect free, but CSRF-checked like every form. ``X-Fragment: 1`` (what ui.js
    sends) answers with the result alone; a plain form post gets the whole page."""
    checked(ui, session, form)
    result, problem = playground(ui.engine(), form)
    status = 200 if result is not None else 422
    if request.headers.get("x-fragment") == "1":
        body = ui.env.get_template("_playground.html").render(
            base=PREFIX, result=result, problem=problem or None
        )
        return HTMLResponse(body, status_code=status)
    shown = {k: form.get(k, "") for k in ("filter", "profile", "user_id", "now")}
    return _audiences(
        request,
        ui,
        session,
        "1h",
        status=status,
        form=shown,
        result=result,
        problem=problem or None,
    )


# -- profiles -----------------------------------------------------------------------------------
@router.get("/profiles")
def profile_page(
    request: Request,
    ui: UiDep,
    engine: EngineDep,
    session: SessionDep,
    user: str = "",
    audience: str = "",
    at: str = "",
) -> Response:
    explained: list[dict[str, Any]] | None = None
    problem = ""
    if user.strip():
        try:
            when = parse_rfc3339(at) if at.strip() else None
            explained = explain_user(engine, user.strip(), [audience] if audience else None, when)
        except ValueError:
            problem = "'at' is not an RFC 3339 time, e.g. 2026-03-07T09:12:00Z"
        except NotFound as exc:
            problem = str(exc)
    slugs = sorted(a.slug for a in engine.registry.get().audiences.values())
    return ui.page(
        request,
        "profile.html",
        session,
        nav="profiles",
        slugs=slugs,
        form={"user": user, "audience": audience, "at": at},
        explained=explained,
        problem=problem,
    )
