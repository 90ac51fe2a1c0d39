"""Shared Access Signature tokens: made by the senders, checked by the local hub stand-in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote_plus

TOKEN_PREFIX = "SharedAccessSignature "


def _signature(encoded_uri: str, expiry: int, key: str) -> str:
    message = f"{encoded_uri}\n{expiry}".encode()
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def make_token(uri: str, key_name: str, key: str, expiry: int) -> str:
    """``SharedAccessSignature sr=…&sig=…&se=…&skn=…`` for ``uri`` valid until ``expiry`` (epoch s)."""
    encoded = quote_plus(uri)
    sig = quote_plus(_signature(encoded, expiry, key))
    return f"{TOKEN_PREFIX}sr={encoded}&sig={sig}&se={expiry}&skn={quote_plus(key_name)}"


class TokenCache:
    """One token per sender, renewed a margin before it expires instead of signed per request."""

    def __init__(self, uri: str, key_name: str, key: str, ttl_s: int = 3600, margin_s: int = 300):
        self._args = (uri, key_name, key)
        self._ttl = ttl_s
        self._margin = margin_s
        self._token = ""
        self._expiry = 0

    def token(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if now >= self._expiry - self._margin:
            self._expiry = int(now) + self._ttl
            self._token = make_token(*self._args, expiry=self._expiry)
        return self._token


class TokenError(ValueError):
    """Why a presented token is refused (safe to show: it never contains a key); ``code`` is
    the error name the stand-in answers with, in the style of the service's."""

    def __init__(self, message: str, code: str = "InvalidToken") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ParsedToken:
    resource: str
    key_name: str
    expiry: int
    signature: str
    encoded_resource: str


def parse_token(header: str) -> ParsedToken:
    if not header.startswith(TOKEN_PREFIX):
        raise TokenError("Authorization is not a SharedAccessSignature token", "MalformedToken")
    fields = parse_qs(header[len(TOKEN_PREFIX) :], keep_blank_values=True)
    encoded_parts = dict(
        part.split("=", 1) for part in header[len(TOKEN_PREFIX) :].split("&") if "=" in part
    )
    try:
        resource = fields["sr"][0]
        signature = fields["sig"][0]
        key_name = fields["skn"][0]
        expiry = int(fields["se"][0])
    except (KeyError, IndexError, ValueError):
        raise TokenError(
            "token must carry sr, sig, se (integer) and skn", "MalformedToken"
        ) from None
    return ParsedToken(resource, key_name, expiry, signature, encoded_parts["sr"])


def verify_token(header: str, keys: dict[str, str], now: float | None = None) -> ParsedToken:
    """Check signature, key name and expiry; raise TokenError naming what is wrong."""
    token = parse_token(header)
    key = keys.get(token.key_name)
    if key is None:
        raise TokenError(f"unknown SharedAccessKeyName {token.key_name[:60]!r}", "UnknownKeyName")
    expected = _signature(token.encoded_resource, token.expiry, key)
    if not hmac.compare_digest(expected, token.signature):
        raise TokenError(
            "signature does not match (wrong key, or sr/se altered)", "InvalidSignature"
        )
    now = time.time() if now is None else now
    if token.expiry <= now:
        raise TokenError(f"token expired at {token.expiry} (now {int(now)})", "ExpiredToken")
    return token
