"""The local hub's SAS check: what a real hub verifies, shared by the REST and AMQP faces.

Signature, key name and expiry come from :func:`workers.delivery.eventhub.sas.verify_token`. On top of that
the token's ``sr`` must cover the hub being used: its path must be empty (a namespace-wide token)
or start with the hub's name, compared case-insensitively like entity names; and its host must be
the namespace the client addressed (the REST request's ``Host``, the AMQP put-token's audience),
so a token made for another namespace is refused. The scheme is not compared (tokens name
``https://…`` or ``sb://…`` while the stand-in speaks plain http and AMQP), nor is a port the
token leaves out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from workers.delivery.eventhub.sas import ParsedToken, TokenError, verify_token

__all__ = ["Authorizer", "TokenError", "resource_host", "resource_hub", "same_namespace"]

_CACHE_LIMIT = 4096
# resource_host, split_host and resource_hub are pure and see the same few strings on every
# request (the token's sr, the Host header): each is cached, as parsing them costs more than
# the rest of the check.


@lru_cache(maxsize=1024)
def resource_host(resource: str) -> tuple[str, int | None] | None:
    """Host (lower-cased) and port a token's ``sr`` names, or None when it names none."""
    authority = urlsplit(resource).netloc if "://" in resource else resource.partition("/")[0]
    return split_host(unquote(authority))


@lru_cache(maxsize=1024)
def split_host(authority: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port`` or ``[v6]:port`` as (host, port); None if empty or malformed."""
    if not authority:
        return None
    try:
        url = urlsplit("//" + authority)
        host, port = url.hostname, url.port
    except ValueError:
        return None
    return (host.lower(), port) if host else None


@lru_cache(maxsize=1024)
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

    def check(
        self,
        header: str | None,
        hub: str,
        now: float | None = None,
        namespace: str | None = None,
    ) -> ParsedToken:
        """Accept a token for ``hub`` in ``namespace`` (the host[:port] the client addressed;
        None: not compared) or raise TokenError with a reason safe to show."""
        if not header:
            raise TokenError(
                "missing Authorization header (expected SharedAccessSignature …)", "MissingToken"
            )
        now = time.time() if now is None else now
        token = self._verified.get(header)
        if token is None:
            token = verify_token(header, self._keys, now)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[header] = token
        elif token.expiry <= now:
            raise TokenError(f"token expired at {token.expiry} (now {int(now)})", "ExpiredToken")
        if namespace is not None and not same_namespace(token.resource, namespace):
            raise TokenError(
                f"token is for {token.resource[:200]!r}, another namespace than {namespace!r}",
                "InvalidAudience",
            )
        scope = resource_hub(token.resource)
        if scope is not None and scope != hub.lower():
            raise TokenError(
                f"token is for {token.resource[:200]!r}, which does not cover event hub {hub!r}",
                "InvalidAudience",
            )
        return token


def same_namespace(resource: str, addressed: str) -> bool:
    """Does the token's ``sr`` name the namespace the client addressed? Hosts must match; ports
    only when both name one."""
    named, wanted = resource_host(resource), split_host(addressed)
    if named is None or wanted is None:
        return False
    if named[0] != wanted[0]:
        return False
    return named[1] is None or wanted[1] is None or named[1] == wanted[1]
