"""CBS on ``$cbs``: the SAS tokens one AMQP connection holds, and the put-token check.

The SDK puts a token for each hub (or for the namespace) before it attaches to it. The token is
checked exactly like REST's Authorization header (:class:`Authorizer`) and held until it
expires; the link layer asks :meth:`Tokens.authorized` before it lets a link send or read.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from audiencehub.emulator.amqp import Message
from audiencehub.emulator.auth import Authorizer, TokenError, resource_hub
from audiencehub.emulator.faults import FaultDecision
from audiencehub.emulator.hubs import UnknownHub
from audiencehub.emulator.store import EventStore

__all__ = ["SAS_TOKEN_TYPE", "Tokens", "token_hub"]

log = logging.getLogger("audiencehub.emulator.amqp")

SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"


def token_hub(request: Message) -> str | None:
    """The hub a put-token is for (None: the namespace), from its audience."""
    audience = str(request.application_properties.get("name") or "")
    return resource_hub(audience) if audience else None


class Tokens:
    """The tokens one connection holds: hub (lower-case, "" = namespace) → expiry."""

    def __init__(self, auth: Authorizer, store: EventStore) -> None:
        self.auth = auth
        self.store = store
        self.scopes: dict[str, int] = {}

    def authorized(self, hub: str) -> bool:
        now = time.time()
        for scope in (hub.lower(), ""):
            expiry = self.scopes.get(scope)
            if expiry is not None and expiry > now:
                return True
        return False

    def put(
        self, request: Message, hub: str | None, decision: FaultDecision, peer: str
    ) -> tuple[int, str]:
        """Check a put-token request and hold its token: (status-code, status-description)."""
        if decision.status is not None:
            self.store.count_fault(decision.kind)
            return decision.status, decision.message
        props = request.application_properties
        operation = props.get("operation")
        token_type = str(props.get("type") or "")
        if operation != "put-token":
            return 400, f"unknown $cbs operation {operation!r} (expected put-token)"
        if token_type != SAS_TOKEN_TYPE:
            return 401, (
                f"token type {token_type!r} is not supported by the hub stand-in "
                f"(use {SAS_TOKEN_TYPE})"
            )
        token = request.value
        if not isinstance(token, str):
            return 401, "put-token carries no token (expected a string body)"
        audience = str(props.get("name") or "")
        # The namespace addressed, with or without a scheme (as a token's ``sr`` is read): an
        # audience naming none fails the namespace check rather than skipping it.
        addressed = urlsplit(audience).netloc if "://" in audience else audience.partition("/")[0]
        try:
            parsed = self.auth.check(token, hub or "", namespace=addressed)
        except TokenError as exc:
            log.info("refused put-token from %s: %s", peer, exc)
            return 401, f"authorization failed: {exc}"
        if hub is not None:
            try:
                self.store.hub(hub)
            except UnknownHub:
                return 404, f"event hub {hub!r} does not exist in this namespace"
        self.scopes[hub or ""] = parsed.expiry
        return 202, "Accepted"
