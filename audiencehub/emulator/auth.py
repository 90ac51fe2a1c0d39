"""The local hub's SAS check: what a real hub verifies, shared by the REST and AMQP faces.

Signature, key name and expiry come from :func:`workers.eventhub.sas.verify_token`. On top of that
the token's ``sr`` must cover the hub being used: its path must be empty (a namespace-wide token)
or start with the hub's name, compared case-insensitively like entity names. Scheme and host are
ignored because the stand-in listens on loopback while tokens name ``https://{namespace}/…``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from workers.eventhub.sas import ParsedToken, TokenError, verify_token

__all__ = ["Authorizer", "TokenError", "resource_hub"]

_CACHE_LIMIT = 4096


def resource_hub(resource: str) -> str | None:
    """The entity (first path segment, lower-cased) a token's ``sr`` names; None = namespace."""
    if "://" in resource:
        path = urlsplit(resource).path
    else:
        _, _, path = resource.partition("/")
    segments = [unquote(part) for part in path.split("/") if part]
    return segments[0].lower() if segments else None


class Authorizer:
    """Verifies ``SharedAccessSignature`` tokens against the keys this stand-in was started with.

    Verified signatures are remembered per token text (senders reuse one token for an hour), so
    the HMAC and parsing run once per token; expiry and hub coverage are checked on every use.
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError("the hub stand-in needs at least one key")
        self._keys = dict(keys)
        self._verified: dict[str, ParsedToken] = {}

    @property
    def key_names(self) -> list[str]:
        return list(self._keys)

    def check(self, header: str | None, hub: str, now: float | None = None) -> ParsedToken:
        """Accept a token for ``hub`` or raise TokenError with a reason safe to show."""
        if not header:
            raise TokenError("missing Authorization header (expected SharedAccessSignature …)")
        now = time.time() if now is None else now
        token = self._verified.get(header)
        if token is None:
            token = verify_token(header, self._keys, now)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[header] = token
        elif token.expiry <= now:
            raise TokenError(f"token expired at {token.expiry} (now {int(now)})")
        scope = resource_hub(token.resource)
        if scope is not None and scope != hub.lower():
            raise TokenError(
                f"token is for {token.resource!r}, which does not cover event hub {hub!r}"
            )
        return token
