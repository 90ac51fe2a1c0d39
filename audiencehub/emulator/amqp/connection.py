"""An AMQP 1.0 connection, the transport half: protocol headers, SASL, frames in and out, open,
close, heartbeats and a pause that holds later frames back (a fault's delay).

It knows nothing of sessions, links or Event Hubs: every session and link performative goes to a
handler a subclass provides (``links.LinkConnection``), so this layer reads as the connection
state machine alone: header → sasl → amqp-header → amqp.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from audiencehub.emulator.amqp.codec import (
    NULL,
    DecodeError,
    decode_value,
    e_array,
    e_map,
    e_str,
    e_sym,
    e_ubyte,
    e_uint,
    e_ushort,
)
from audiencehub.emulator.amqp.frames import (
    AMQP_HEADER,
    ATTACH,
    BEGIN,
    CLOSE,
    DETACH,
    DISPOSITION,
    END,
    FLOW,
    FRAME_HEAD,
    OPEN,
    PERFORMATIVE_CODES,
    SASL_HEADER,
    SASL_INIT,
    SASL_MECHANISMS,
    SASL_OUTCOME,
    TRANSFER,
    code_of,
    e_error,
    frame,
    get_field,
    performative,
)

__all__ = [
    "CONTAINER_ID",
    "DEFAULT_MAX_FRAME_SIZE",
    "WRITE_BUFFER_HIGH",
    "Connection",
    "Pause",
]

log = logging.getLogger("audiencehub.emulator.amqp")

DEFAULT_MAX_FRAME_SIZE = 65_536
CONTAINER_ID = "audiencehub-hub-emulator"
_MAX_ANY_FRAME = 64 * 1024 * 1024
# The socket buffer above which the stand-in stops sending until the client reads.
WRITE_BUFFER_HIGH = 256 * 1024


class Pause(Exception):
    """Raised by a handler that scheduled its own continuation (a fault's delay)."""


class Connection(asyncio.Protocol):
    """One client connection: SASL, then AMQP frames, processed in arrival order."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.stage = "header"  # header → sasl → amqp-header → amqp
        self.closed = False
        self.paused = False
        self.remote_max_frame = 512
        self.hostname: str | None = None
        """The host the client's open named (the namespace it addressed; AMQP lets it name none)."""
        self.resume_timer: asyncio.TimerHandle | None = None  # a fault's delay
        self.beat_timer: asyncio.TimerHandle | None = None  # heartbeats
        self.peer = "?"
        self.last_write = time.monotonic()
        self.out_size = 0
        self.write_paused = False  # the transport's buffer is over its high-water mark

    # ---- what the session and link layer handles ----------------------------------------------

    def on_begin(self, channel: int, fields: list[Any]) -> None:
        raise NotImplementedError

    def on_end(self, channel: int) -> None:
        raise NotImplementedError

    def on_attach(self, channel: int, fields: list[Any]) -> None:
        raise NotImplementedError

    def on_detach(self, channel: int, fields: list[Any]) -> None:
        raise NotImplementedError

    def on_flow(self, channel: int, fields: list[Any]) -> None:
        raise NotImplementedError

    def on_transfer(self, channel: int, fields: list[Any], payload: bytes) -> None:
        raise NotImplementedError

    def on_writable(self) -> None:
        """The socket drained below its high-water mark: send what waited for it."""

    def on_lost(self) -> None:
        """The connection is gone: let go of what its sessions held."""

    # ---- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (which has the same methods but does not
        # subclass asyncio.Transport).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        # Consumers stop being served while this much is unsent, so a slow reader costs a
        # bounded buffer (the link credit alone would allow credit × message size).
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_lost()
        for timer in (self.resume_timer, self.beat_timer):
            if timer is not None:
                timer.cancel()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closed:
            return
        self.on_writable()
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf += data
        if not self.paused:
            self.process()

    # ---- output -------------------------------------------------------------------------------

    def send(self, channel: int, body: bytes, frame_type: int = 0) -> None:
        data = frame(channel, body, frame_type)
        self.out.append(data)
        self.out_size += len(data)

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
            self.last_write = time.monotonic()
        self.out.clear()
        self.out_size = 0

    def shutdown(self, condition: str, description: str) -> None:
        """Close with an error (protocol violation, or the stand-in stopping)."""
        if self.closed:
            return
        if self.stage == "amqp":
            self.send(0, performative(CLOSE, e_error(condition, description)))
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        log.info("closed AMQP connection from %s: %s (%s)", self.peer, condition, description)

    def abort(self) -> None:
        """Drop the connection without a word (fault injection)."""
        self.out.clear()
        self.out_size = 0
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ---- the frame loop -------------------------------------------------------------------------

    def process(self) -> None:
        """Handle every complete unit in the buffer, in order, until done, paused or closed."""
        buf = self.buf
        pos = 0
        try:
            while not self.closed and not self.paused:
                if self.stage in ("header", "amqp-header"):
                    if len(buf) - pos < 8:
                        break
                    header = bytes(buf[pos : pos + 8])
                    pos += 8
                    self.on_header(header)
                    continue
                if len(buf) - pos < 8:
                    break
                size, doff, frame_type, channel = FRAME_HEAD.unpack_from(buf, pos)
                if size < 8 or doff < 2 or size > _MAX_ANY_FRAME:
                    self.shutdown(
                        "amqp:connection:framing-error", f"bad frame header (size {size})"
                    )
                    break
                if len(buf) - pos < size:
                    break
                body = bytes(memoryview(buf)[pos + doff * 4 : pos + size])
                pos += size
                try:
                    if self.stage == "sasl":
                        self.on_sasl(frame_type, body)
                    elif frame_type != 0:
                        raise DecodeError(f"unexpected frame type {frame_type}")
                    elif body:
                        self.on_frame(channel, body)
                    # an empty body is a heartbeat
                except Pause:
                    break
                except (DecodeError, IndexError, struct.error) as exc:
                    self.shutdown("amqp:decode-error", str(exc) or "malformed frame")
                    break
        except Exception:
            log.exception("AMQP connection from %s failed", self.peer)
            self.shutdown("amqp:internal-error", "internal error in the hub stand-in")
        finally:
            del buf[:pos]
            self.flush()

    def pause(self, delay_ms: int, then: Callable[[], None]) -> None:
        """Hold every later frame back for ``delay_ms``, then run ``then`` and carry on."""
        self.paused = True
        loop = asyncio.get_running_loop()

        def resume() -> None:
            self.resume_timer = None
            if self.closed:
                return
            self.paused = False
            try:
                then()
            except Exception:
                log.exception("AMQP connection from %s failed", self.peer)
                self.shutdown("amqp:internal-error", "internal error in the hub stand-in")
                return
            self.flush()
            if not self.closed and not self.paused:
                self.process()

        self.resume_timer = loop.call_later(delay_ms / 1000, resume)
        raise Pause

    # ---- protocol header and SASL -------------------------------------------------------------

    def on_header(self, header: bytes) -> None:
        assert self.transport is not None
        if self.stage == "header" and header == SASL_HEADER:
            self.out.append(SASL_HEADER)
            mechanisms = performative(SASL_MECHANISMS, e_array("symbol", ["ANONYMOUS"]))
            self.send(0, mechanisms, 1)
            self.stage = "sasl"
        elif header == AMQP_HEADER:
            # Straight after SASL, or without SASL at all (tokens still come through $cbs).
            self.out.append(AMQP_HEADER)
            self.stage = "amqp"
        else:
            self.out.append(SASL_HEADER)
            self.flush()
            self.closed = True
            self.transport.close()
            log.info("refused AMQP connection from %s: protocol header %r", self.peer, header)

    def on_sasl(self, frame_type: int, body: bytes) -> None:
        if frame_type != 1 or not body or body[0] != 0x00:
            raise DecodeError("expected a SASL frame")
        descriptor, pos = decode_value(body, 1)
        fields, _ = decode_value(body, pos)
        if code_of(descriptor, PERFORMATIVE_CODES) != SASL_INIT:
            raise DecodeError("expected sasl-init")
        mechanism = str(get_field(fields, 0, ""))
        ok = mechanism == "ANONYMOUS"
        self.send(0, performative(SASL_OUTCOME, e_ubyte(0 if ok else 1), NULL), 1)
        if ok:
            self.stage = "amqp-header"
        else:
            self.flush()
            self.closed = True
            assert self.transport is not None
            self.transport.close()
            log.info("refused SASL mechanism %r from %s", mechanism, self.peer)

    # ---- AMQP frames --------------------------------------------------------------------------

    def on_frame(self, channel: int, body: bytes) -> None:
        if body[0] != 0x00:
            raise DecodeError("a frame body must start with a described performative")
        if body[1] == 0x53:
            code = body[2]
            pos = 3
        else:
            descriptor, pos = decode_value(body, 1)
            code = code_of(descriptor, PERFORMATIVE_CODES)
        fields, pos = decode_value(body, pos)
        if not isinstance(fields, list):
            raise DecodeError("a performative must be a list")
        if code == TRANSFER:
            self.on_transfer(channel, fields, body[pos:])
        elif code == FLOW:
            self.on_flow(channel, fields)
        elif code == DISPOSITION:
            pass  # everything the stand-in sends is pre-settled
        elif code == ATTACH:
            self.on_attach(channel, fields)
        elif code == DETACH:
            self.on_detach(channel, fields)
        elif code == BEGIN:
            self.on_begin(channel, fields)
        elif code == END:
            self.on_end(channel)
        elif code == OPEN:
            self.on_open(fields)
        elif code == CLOSE:
            self.on_close()
        else:
            raise DecodeError(f"unknown performative 0x{code:02x}")

    def on_open(self, fields: list[Any]) -> None:
        hostname = get_field(fields, 1, None)
        self.hostname = hostname if isinstance(hostname, str) else None
        self.remote_max_frame = max(512, int(get_field(fields, 2, 4294967295)))
        channel_max = int(get_field(fields, 3, 65535))
        idle_ms = int(get_field(fields, 4, 0))
        self.send(
            0,
            performative(
                OPEN,
                e_str(CONTAINER_ID),
                NULL,  # hostname
                e_uint(self.max_frame_size),
                e_ushort(min(channel_max, 65535)),
                NULL,  # idle-time-out: the stand-in never closes an idle client
                NULL,  # outgoing-locales
                NULL,  # incoming-locales
                NULL,  # offered-capabilities
                NULL,  # desired-capabilities
                e_map([(e_sym("product"), e_str(CONTAINER_ID))]),
            ),
        )
        if idle_ms > 0:
            self.heartbeat(max(idle_ms / 2000, 0.05))

    def heartbeat(self, every_s: float) -> None:
        """Empty frames often enough for a client that asked for an idle time-out."""
        loop = asyncio.get_running_loop()

        def beat() -> None:
            if self.closed:
                return
            if time.monotonic() - self.last_write >= every_s and self.transport is not None:
                self.transport.write(frame(0, b""))
                self.last_write = time.monotonic()
            self.beat_timer = loop.call_later(every_s, beat)

        self.beat_timer = loop.call_later(every_s, beat)

    def on_close(self) -> None:
        self.send(0, performative(CLOSE, NULL))
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
