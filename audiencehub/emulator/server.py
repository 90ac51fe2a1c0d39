"""One running hub stand-in: configuration, the shared state, and the faces serving it.

Everything a face needs is on :class:`Emulator`: the :class:`EventStore`, the :class:`FaultPlan`
and the :class:`Authorizer`. The REST face is always on; an AMQP face (``amqp_face.py``) plugs in
the same way, either on its own port or on the REST port through
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
from pathlib import Path

from audiencehub.emulator.amqp_face import AmqpFace
from audiencehub.emulator.auth import Authorizer
from audiencehub.emulator.consumer import DEFAULT_CONSUMER_GROUP, valid_consumer_group
from audiencehub.emulator.faults import FaultPlan
from audiencehub.emulator.httpserver import HttpServer
from audiencehub.emulator.journal import Journal
from audiencehub.emulator.rest import DEFAULT_MAX_BATCH_BYTES, RestFace
from audiencehub.emulator.store import DEFAULT_MAX_EVENTS_PER_HUB, WHEN_FULL, EventStore

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
    # What a full hub does: "refuse" new events (403 / amqp:resource-limit-exceeded), or
    # "drop-oldest" (like retention; consumers skip what is gone).
    when_full: str = "refuse"
    # Consumer groups every hub has besides $Default.
    consumer_groups: tuple[str, ...] = ()
    # Keep events on disk here (None: in memory only).
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = {DEFAULT_KEY_NAME: new_key()}
        if not self.hubs:
            self.hubs = (DEFAULT_HUB,)
        if self.max_batch_bytes < 1:
            raise ValueError("max_batch_bytes must be positive")
        if self.when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}")
        for group in self.consumer_groups:
            if not valid_consumer_group(group):
                raise ValueError(
                    f"consumer group {group[:60]!r} is not valid (letters, digits, '.', '-', "
                    "'_'; at most 50)"
                )

    @property
    def all_consumer_groups(self) -> list[str]:
        groups = [DEFAULT_CONSUMER_GROUP]
        for group in self.consumer_groups:
            if group.lower() not in (g.lower() for g in groups):
                groups.append(group)
        return groups


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Emulator:
    """The shared state and the servers; start and stop it on one asyncio loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.journal = Journal(config.data_dir) if config.data_dir is not None else None
        self.store = EventStore(config.max_events_per_hub, config.when_full, self.journal)
        try:
            for name in config.hubs:
                self.store.create_hub(name, config.partitions)
            loaded = self.store.load()
        except Exception:
            if self.journal is not None:
                self.journal.close()
            raise
        if self.journal is not None:
            log.info("loaded %s event(s) from %s", loaded, config.data_dir)
        self.faults = FaultPlan()
        self.auth = Authorizer(config.keys)
        self.faces = ["rest"]
        self.rest = RestFace(
            self.store,
            self.faults,
            self.auth,
            config.max_batch_bytes,
            info={
                "service": "audiencehub hub emulator",
                "lenient": config.lenient,
                "consumer_groups": config.all_consumer_groups,
                "max_events_per_hub": config.max_events_per_hub,
                "when_full": config.when_full,
                "on_disk": config.data_dir is not None,
            },
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
        """Serve the AMQP 1.0 face (``amqp_face.py``: what the azure-eventhub SDK speaks) here."""
        self.amqp = AmqpFace(
            self.store,
            self.faults,
            self.auth,
            self.config.max_batch_bytes,
            consumer_groups=self.config.all_consumer_groups,
        )
        self.share_port(b"AMQP", "amqp", self.amqp.protocol)
        self.rest.stats_sections.append(self.amqp.consumer_stats)

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
        if self.journal is not None:
            self.journal.close()
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
