"""Who may use the dashboard: a login with an API token, kept in a signed, HttpOnly cookie.

A browser cannot attach ``Authorization: Bearer`` to a page it navigates to, so ``/ui/login``
takes one of the API's tokens once and answers with a session cookie. The cookie never holds the
token: it is ``v1.<issued>.<nonce>.<mac>`` with ``mac = HMAC-SHA256(token, issued|nonce)``.
Checking it needs no server-side store (every API process behind a load balancer accepts it), and
removing a token from ``AUDIENCEHUB_API_TOKENS`` ends every session it opened. Signing out also
ends that one session everywhere: its nonce is kept in Redis as revoked until the cookie would
have expired anyway, so a copy of the cookie stops working too (``Ui.session``).

The cookie is ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict`` (another site's form
or fetch never carries it), ``Path=/ui`` (the JSON API never accepts it) and ``Secure`` over HTTPS,
including behind a TLS proxy whose ``X-Forwarded-Proto`` the API is told to trust
(``AUDIENCEHUB_API_FORWARDED_ALLOW_IPS``).
State-changing forms also carry a per-session CSRF token, ``HMAC(token, csrf|nonce)``, so even a
browser that ignores SameSite cannot be made to pause a job from another site.

With no tokens configured (demo and test modes) the API is open, and so is the dashboard; the
CSRF token then comes from a random key of this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "audiencehub_ui"
COOKIE_PATH = "/ui"
MAX_AGE_S = 12 * 3600
VERSION = "v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _mac(key: bytes, *parts: str) -> str:
    return _b64(hmac.new(key, "|".join(parts).encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser (or anyone, when auth is off) and its CSRF token."""

    csrf: str
    auth_required: bool
    nonce: str = ""
    issued: int = 0


class Sessions:
    """Issue and check session cookies against the configured tokens."""

    def __init__(self, tokens: tuple[str, ...], max_age_s: int = MAX_AGE_S) -> None:
        self.keys = tuple(t.encode() for t in tokens)
        self.max_age_s = max_age_s
        self._open_key = secrets.token_bytes(32)

    @property
    def auth_required(self) -> bool:
        return bool(self.keys)

    def _match_token(self, token: str) -> bytes | None:
        given = token.strip().encode()
        found = None
        for key in self.keys:  # no early exit: the time taken does not tell which token matched
            if hmac.compare_digest(given, key):
                found = key
        return found

    def login(self, token: str, now: float | None = None) -> str | None:
        """The cookie value for a valid token, else None."""
        key = self._match_token(token)
        if key is None:
            return None
        issued = str(int(now if now is not None else time.time()))
        nonce = secrets.token_urlsafe(18)
        return f"{VERSION}.{issued}.{nonce}.{_mac(key, 'ui-session', issued, nonce)}"

    def check(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a request carries, or None when it must log in."""
        if not self.auth_required:
            return Session(csrf=_mac(self._open_key, "ui-csrf", "open"), auth_required=False)
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not parts[1].isdigit():
            return None
        _, issued, nonce, mac = parts
        age = (now if now is not None else time.time()) - int(issued)
        if not -60 <= age <= self.max_age_s:
            return None
        found = None
        for key in self.keys:
            if hmac.compare_digest(_mac(key, "ui-session", issued, nonce), mac):
                found = key
        if found is None:
            return None
        return Session(
            csrf=_mac(found, "ui-csrf", nonce), auth_required=True, nonce=nonce, issued=int(issued)
        )

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())
