"""The dashboard's ASGI app, and the gate that sends ``/ui`` requests to it.

The UI is a FastAPI app of its own rather than routes of the API: its auth is a session cookie,
not a bearer header, and its pages are not part of the API's OpenAPI contract. ``UiGate`` sits
outside the API's bearer check (but inside the metrics middleware, so ``/metrics`` counts UI
requests by route template too) and hands every ``/ui`` request to this app; every other request
goes to the API untouched. The UI reads the engine the API's lifespan made.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from audiencehub.api.errors import ApiError, BodyTooLarge
from audiencehub.api.middleware import BodyLimit
from audiencehub.api.settings import ApiSettings
from audiencehub.ui.render import STATIC, environment
from audiencehub.ui.routes import PREFIX, LoginRequired, Ui, router
from audiencehub.ui.session import COOKIE, Sessions
from workers.audiences.registry_store import Conflict, NotFound
from workers.redisconn import write_refusal

log = logging.getLogger("audiencehub.ui")

MAX_FORM_BYTES = 256 * 1024
"""The largest form the UI takes (a playground filter and profile); the API's limit may be more."""

SECURITY_HEADERS = {
    # Scripts and styles only from /ui/static: an injected tag could not run. Data for the charts
    # travels in <script type="application/json">, which is never executed.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def create_ui(api: FastAPI, api_settings: ApiSettings) -> FastAPI:
    """The dashboard for ``api`` (its ``state.engine`` is read per request)."""
    ui_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ui = Ui(api, Sessions(api_settings.tokens), environment())
    ui_app.state.ui = ui
    ui_app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="static")
    ui_app.include_router(router)

    @ui_app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            if name == "cache-control" and request.url.path.startswith(f"{PREFIX}/static/"):
                continue
            response.headers.setdefault(name, value)
        return response

    def _json(request: Request) -> bool:
        """JSON for what scripts fetch (the polled data, the playground's fragments)."""
        fetched = request.headers.get("x-fragment") == "1"
        return fetched or request.url.path.startswith(f"{PREFIX}/api/")

    def _page(request: Request, status: int, heading: str, message: str) -> Response:
        if _json(request):
            return JSONResponse({"error": heading, "message": message}, status_code=status)
        session = ui.sessions.check(request.cookies.get(COOKIE))  # the nav only, no data
        return ui.page(
            request, "error.html", session, status=status, heading=heading, message=message
        )

    @ui_app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if _json(request):
            return JSONResponse(
                {"error": "unauthorized", "message": "sign in at /ui/login"}, status_code=401
            )
        return RedirectResponse(ui.login_url(exc.next), status_code=303)

    @ui_app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        heading = {403: "Forbidden", 422: "Not understood"}.get(exc.status, "Error")
        return _page(request, exc.status, heading, exc.message)

    @ui_app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in err.get("loc", ())) for err in exc.errors())
        return _page(request, 422, "Not understood", f"Check the address: {where}.")

    @ui_app.exception_handler(BodyTooLarge)
    async def _large(request: Request, exc: BodyTooLarge) -> Response:
        return _page(request, 413, "Too large", f"The form is larger than {exc.limit:,} bytes.")

    @ui_app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> Response:
        return _page(request, 404, "Not found", str(exc))

    @ui_app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return _page(request, 409, "Not possible now", str(exc))

    @ui_app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        heading = {404: "Not found", 403: "Forbidden", 405: "Not allowed"}.get(
            exc.status_code, "Error"
        )
        message = str(exc.detail) if exc.status_code != 404 else "There is no such page."
        return _page(request, exc.status_code, heading, message)

    @ui_app.exception_handler(redis.exceptions.RedisError)
    async def _redis_down(request: Request, exc: Exception) -> Response:
        reason = write_refusal(exc)
        if reason is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return _page(request, 500, "Internal error", "The API log has the details.")
        log.error("redis unavailable on %s %s: %s", request.method, request.url.path, reason)
        return _page(
            request, 503, "Unavailable", f"The state store: {reason}. The page retries by itself."
        )

    @ui_app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _page(request, 500, "Internal error", "The API log has the details.")

    return ui_app


class UiGate:
    """Send ``/ui`` and ``/ui/…`` to the dashboard app; everything else to the API."""

    def __init__(self, app: ASGIApp, api: FastAPI, api_settings: ApiSettings) -> None:
        self.app = app
        limit = min(api_settings.max_body, MAX_FORM_BYTES)
        self.ui: ASGIApp = BodyLimit(create_ui(api, api_settings), limit=limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PREFIX or path.startswith(f"{PREFIX}/"):
            await self.ui(scope, receive, send)
        else:
            await self.app(scope, receive, send)
