"""Event Hubs connection strings, parsed and checked, with the key kept out of every repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


class ConnectionStringError(ValueError):
    """The connection string is unusable; the message names the part and never the key."""


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """What a sender needs: where the hub is and which key signs for it.

    ``emulator`` is set by ``UseDevelopmentEmulator=true``: plain http/AMQP to ``host:port``,
    as the azure-eventhub SDK (5.12+) does against the local emulator.
    """

    host: str
    port: int | None
    key_name: str
    key: str = field(repr=False)
    hub: str
    emulator: bool = False

    @property
    def namespace(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def rest_base(self) -> str:
        """Base URL of the hub for the REST API."""
        if self.emulator:
            return f"http://{self.host}:{self.port or 80}/{self.hub}"
        return f"https://{self.namespace}/{self.hub}"

    @property
    def resource_uri(self) -> str:
        """The URI a SAS token is scoped to (the hub, on its https address)."""
        return f"https://{self.namespace}/{self.hub}"

    def redacted(self) -> str:
        """The string with the key masked, safe for logs and errors."""
        extra = ";UseDevelopmentEmulator=true" if self.emulator else ""
        return (
            f"Endpoint=sb://{self.namespace}/;SharedAccessKeyName={self.key_name};"
            f"SharedAccessKey=***;EntityPath={self.hub}{extra}"
        )

    def text(self) -> str:
        """The full string, key included: only for storing encrypted and for the SDK."""
        extra = ";UseDevelopmentEmulator=true" if self.emulator else ""
        return (
            f"Endpoint=sb://{self.namespace}/;SharedAccessKeyName={self.key_name};"
            f"SharedAccessKey={self.key};EntityPath={self.hub}{extra}"
        )


_REQUIRED = ("Endpoint", "SharedAccessKeyName", "SharedAccessKey")


def parse_connection_string(text: str, hub: str | None = None) -> ConnectionString:
    """Parse ``Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…``.

    A namespace-level string (no EntityPath) needs ``hub``; when both are given they must agree.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConnectionStringError("connection string is empty")
    parts: dict[str, str] = {}
    pieces = [p for p in text.strip().strip(";").split(";") if p.strip()]
    for number, piece in enumerate(pieces, start=1):
        name, sep, value = piece.partition("=")
        if not sep:
            # The text is not quoted back: a key pasted on its own would be shown.
            raise ConnectionStringError(
                f"connection string part {number} of {len(pieces)} is not of the form Name=value"
            )
        parts[name.strip().lower()] = value.strip()
    canon = {k.lower(): k for k in (*_REQUIRED, "EntityPath", "UseDevelopmentEmulator")}
    missing = [name for name in _REQUIRED if not parts.get(name.lower())]
    if missing:
        raise ConnectionStringError(
            f"connection string is missing {', '.join(missing)} "
            "(expected Endpoint=sb://<namespace>/;SharedAccessKeyName=<name>;"
            "SharedAccessKey=<key>;EntityPath=<hub>)"
        )
    unknown = sorted(set(parts) - set(canon) - {"sharedaccesssignature"})
    if unknown:
        names = ", ".join(n[:30] for n in unknown if len(n) <= 30)
        raise ConnectionStringError(
            f"connection string has {len(unknown)} unknown part(s)"
            + (f": {names}" if names else "")
            + "; expected only Endpoint, SharedAccessKeyName, SharedAccessKey, EntityPath"
        )
    endpoint = urlsplit(parts["endpoint"])
    if endpoint.scheme not in ("sb", "amqps", "amqp", "https", "http") or not endpoint.hostname:
        raise ConnectionStringError(
            f"Endpoint {parts['endpoint']!r} must look like sb://<namespace>.servicebus.windows.net/"
        )
    entity = parts.get("entitypath") or None
    if entity and hub and entity != hub:
        raise ConnectionStringError(f"EntityPath={entity!r} disagrees with the hub name {hub!r}")
    hub_name = entity or hub
    if not hub_name:
        raise ConnectionStringError(
            "connection string has no EntityPath; give the event hub name as well"
        )
    emulator_flag = parts.get("usedevelopmentemulator", "false").lower()
    if emulator_flag not in ("true", "false"):
        raise ConnectionStringError("UseDevelopmentEmulator must be true or false")
    try:
        port = endpoint.port
    except ValueError:
        raise ConnectionStringError(f"Endpoint {parts['endpoint']!r} has a bad port") from None
    return ConnectionString(
        host=endpoint.hostname,
        port=port,
        key_name=parts["sharedaccesskeyname"],
        key=parts["sharedaccesskey"],
        hub=hub_name,
        emulator=emulator_flag == "true",
    )
