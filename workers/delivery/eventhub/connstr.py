"""Event Hubs connection strings, parsed and checked, with the key kept out of every repr."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HUB_NAME = 256
_HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,256}")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")
ENDPOINT_SCHEMES = ("sb", "amqps", "amqp", "https", "http")


def valid_hub_name(name: str) -> bool:
    """Azure's rule for an event hub name: 1-256 letters, digits, ``.``, ``-`` and ``_``,
    starting and ending with a letter or digit (so it is one path segment, nothing more)."""
    return 0 < len(name) <= MAX_HUB_NAME and _HUB_NAME.fullmatch(name) is not None


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
    host, port = _endpoint(parts["endpoint"])
    if not _KEY_NAME.fullmatch(parts["sharedaccesskeyname"]):
        raise ConnectionStringError(
            "SharedAccessKeyName must be 1-256 letters, digits, '.', '-' or '_' "
            "(the policy name, such as RootManageSharedAccessKey; not the key)"
        )
    entity = parts.get("entitypath") or None
    for what, named in (("EntityPath", entity), ("the hub name", hub)):
        if named is not None and not valid_hub_name(named):
            raise ConnectionStringError(
                f"{what} ({len(named)} characters) is not an event hub name: 1-{MAX_HUB_NAME} "
                "letters, digits, '.', '-' or '_', starting and ending with a letter or digit"
            )
    if entity and hub and entity.lower() != hub.lower():
        raise ConnectionStringError("EntityPath disagrees with the hub name given beside it")
    hub_name = entity or hub
    if not hub_name:
        raise ConnectionStringError(
            "connection string has no EntityPath; give the event hub name as well"
        )
    emulator_flag = parts.get("usedevelopmentemulator", "false").lower()
    if emulator_flag not in ("true", "false"):
        raise ConnectionStringError("UseDevelopmentEmulator must be true or false")
    return ConnectionString(
        host=host,
        port=port,
        key_name=parts["sharedaccesskeyname"],
        key=parts["sharedaccesskey"],
        hub=hub_name,
        emulator=emulator_flag == "true",
    )


def _endpoint(text: str) -> tuple[str, int | None]:
    """Host and port of ``sb://<namespace>/``; the error never quotes the value (a key pasted
    into Endpoint would be shown), it names what is wrong."""
    shape = "Endpoint must look like sb://<namespace>.servicebus.windows.net/"
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        raise ConnectionStringError(f"{shape}: its port or address is not valid") from None
    if url.scheme.lower() not in ENDPOINT_SCHEMES or not url.netloc or not url.hostname:
        raise ConnectionStringError(f"{shape} (a scheme such as sb:// and a host name)")
    if "@" in url.netloc:
        raise ConnectionStringError(f"{shape}: user names or passwords do not belong in it")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConnectionStringError(f"{shape}: nothing after the host name but '/'")
    host = url.hostname
    bracketed = url.netloc.startswith("[")
    if not (_IPV6.fullmatch(host) if bracketed else _HOST_NAME.fullmatch(host)) or len(host) > 253:
        raise ConnectionStringError(f"{shape}: its host name has characters a host name cannot")
    return host, port
