"""One running hub stand-in: configuration, the shared state, and the faces serving it.

Everything a face needs is on :class:`Emulator`: the :class:`EventStore`, the :class:`FaultPlan`
and the :class:`Authorizer`. The REST face is always on; an AMQP face (``amqp.py``) plugs in the
same way, either on its own port or on the REST port through
``HttpServer(alt_protocols={b"AMQP": …})``, which hands over connections that open with the AMQP
header.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from audiencehub.emulator.amqp import AmqpFace
from audiencehub.emulator.auth import Authorizer
from audiencehub.emulator.faults import FaultPlan
from audiencehub.emulator.httpserver import HttpServer
from audiencehub.emulator.rest import DEFAULT_MAX_BATCH_BYTES, RestFace
from audiencehub.emulator.store import DEFAULT_MAX_EVENTS_PER_HUB, EventStore

__all__ = ["DEFAULT_HUB", "DEFAULT_KEY_NAME", "Emulator", "EmulatorConfig", "new_key"]

log = logging.getLogger("audiencehub.emulator")

DEFAULT_HUB = "audiencehub"
DEFAULT_KEY_NAME = "RootManageSharedAccessKey"
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def new_key() -> str:
    """A key shaped like Azure's: 32 random bytes, base64."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


@dataclass
class EmulatorConfig:
    """How to run the stand-in; ``keys`` maps key name → key (the first pair is advertised)."""

    host: str = "127.0.0.1"
    port: int = 0
    hubs: tuple[str, ...] = (DEFAULT_HUB,)
    partitions: int = 4
    keys: dict[str, str] = field(default_factory=dict)
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_events_per_hub: int = DEFAULT_MAX_EVENTS_PER_HUB
    advertise_host: str | None = None
    lenient: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = {DEFAULT_KEY_NAME: new_key()}
        if not self.hubs:
            self.hubs = (DEFAULT_HUB,)
        if self.max_batch_bytes < 1:
            raise ValueError("max_batch_bytes must be positive")


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Emulator:
    """The shared state and the servers; start and stop it on one asyncio loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = EventStore(config.max_events_per_hub)
        for name in config.hubs:
            self.store.create_hub(name, config.partitions)
        self.faults = FaultPlan()
        self.auth = Authorizer(config.keys)
        self.faces = ["rest"]
        self.rest = RestFace(
            self.store,
            self.faults,
            self.auth,
            config.max_batch_bytes,
            info={"service": "audiencehub hub emulator", "lenient": config.lenient},
            faces=self.faces,
            lenient=config.lenient,
        )
        self.http = HttpServer(self.rest)
        self.amqp: AmqpFace | None = None
        self.port: int | None = None
        self.started_at = 0.0

    def share_port(self, prefix: bytes, face: str, factory: Callable[[], asyncio.Protocol]) -> None:
        """Serve another protocol on the REST port: connections opening with ``prefix`` go to it.

        Meant for the AMQP face (``prefix=b"AMQP"``), so the one printed connection string works
        for REST senders and for the SDK alike. Call before :meth:`start`.
        """
        self.http.alt_protocols[prefix] = factory
        self.faces.append(face)

    def refuse_amqp(self) -> None:
        """Without the AMQP face, close connections that open with the AMQP header at once (an
        HTTP server would wait for a request line that never comes), so an SDK call fails fast."""
        self.http.alt_protocols[b"AMQP"] = _Refuse

    def enable_amqp(self) -> None:
        """Serve the AMQP 1.0 face (``amqp.py``, what the azure-eventhub SDK speaks) on this port."""
        self.amqp = AmqpFace(self.store, self.faults, self.auth, self.config.max_batch_bytes)
        self.share_port(b"AMQP", "amqp", self.amqp.protocol)

    async def start(self) -> int:
        """Open the REST port; returns the bound port (useful with port 0)."""
        self.port = await self.http.start(self.config.host, self.config.port)
        self.started_at = time.monotonic()
        log.info(
            "hub emulator listening on http://%s:%s (hubs: %s; partitions: %s; max batch %s bytes)",
            self.config.host,
            self.port,
            ", ".join(self.config.hubs),
            self.config.partitions,
            self.config.max_batch_bytes,
        )
        return self.port

    async def stop(self) -> None:
        if self.amqp is not None:
            self.amqp.close()
        await self.http.stop()
        stats = self.store.stats()
        log.info(
            "hub emulator stopped after %.1f s: %s events, requests %s",
            time.monotonic() - self.started_at,
            stats["events"],
            {face: data["by_status"] for face, data in stats["requests"].items()},
        )

    @property
    def advertised_host(self) -> str:
        host = self.config.advertise_host or self.config.host
        return "127.0.0.1" if host in _ANY_ADDRESS else host

    def connection_string(self, hub: str | None = None, key_name: str | None = None) -> str:
        """The ready-to-use string: plain transport to host:port via UseDevelopmentEmulator."""
        name = key_name or next(iter(self.config.keys))
        key = self.config.keys[name]
        host = self.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return (
            f"Endpoint=sb://{host}:{self.port}/;SharedAccessKeyName={name};"
            f"SharedAccessKey={key};EntityPath={hub or self.config.hubs[0]};"
            "UseDevelopmentEmulator=true"
        )
