"""The hub stand-in's AMQP face: what the azure-eventhub SDK speaks, on the REST port.

With ``UseDevelopmentEmulator=true`` the SDK (5.12+) opens plain AMQP to the endpoint's host and
port, so the one printed connection string serves both faces (``Emulator.share_port``). The
protocol is ``amqp/`` (codec, frames, connection, sessions and links); this module gives links
their Event Hubs meaning and holds what the face shares across connections:

- CBS ``put-token`` on ``$cbs`` (``cbs.py``): answered with status-code 202, or 401 and the
  reason;
- ``$management`` READ of ``com.microsoft:eventhub`` and ``com.microsoft:partition``
  (``management.py``);
- sender links to ``HUB`` or ``HUB/Partitions/N`` (``intake.py``); each delivery is one request:
  a batch (message format 0x80013700, each data section an encoded message) or a single message,
  possibly split over many transfer frames. It is stored like a REST request (face ``"amqp"``)
  and settled Accepted, or Rejected with the fault plan's or the check's AMQP condition;
- receiver links to ``HUB/ConsumerGroups/G/Partitions/N`` (``consumer.py``), served as far as
  credit, the session window and the socket allow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from audiencehub.emulator import intake, management
from audiencehub.emulator.amqp import (
    ACCEPTED,
    NULL,
    DecodeError,
    Message,
    decode_message,
    e_array,
    e_error,
    rejected,
)
from audiencehub.emulator.amqp.connection import DEFAULT_MAX_FRAME_SIZE
from audiencehub.emulator.amqp.frames import get_field
from audiencehub.emulator.amqp.links import (
    Binding,
    Delivery,
    Link,
    LinkConnection,
    Session,
)
from audiencehub.emulator.auth import Authorizer
from audiencehub.emulator.cbs import Tokens, token_hub
from audiencehub.emulator.consumer import (
    DEFAULT_CONSUMER_GROUP,
    RUNTIME_METRIC,
    LinkRefused,
    Reader,
    Readers,
    open_reader,
    parse_consumer_address,
)
from audiencehub.emulator.faults import NO_FAULT, FaultDecision, FaultPlan
from audiencehub.emulator.store import EventStore

__all__ = ["AmqpFace", "HubConnection"]

log = logging.getLogger("audiencehub.emulator.amqp")

# Consumers: events taken from the store per step, and bytes gathered before each socket write.
PUMP_BATCH = 64
PUMP_TURN = 1024  # events one consumer gets per turn of the event loop
FLUSH_BYTES = 64 * 1024


class AmqpFace:
    """The AMQP face: a protocol factory for ``share_port`` plus its open connections."""

    def __init__(
        self,
        store: EventStore,
        faults: FaultPlan,
        auth: Authorizer,
        max_batch_bytes: int,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        consumer_groups: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.auth = auth
        self.max_batch_bytes = max_batch_bytes
        self.max_frame_size = max_frame_size
        # A delivery this far over the limit is refused as it arrives (the link is detached).
        self.hard_delivery_limit = max(4 * max_batch_bytes, 16 * 1024 * 1024)
        self.connections: set[HubConnection] = set()
        self.consumer_groups = list(consumer_groups or (DEFAULT_CONSUMER_GROUP,))
        self.readers = Readers()
        # Consumers that have read everything, by (hub lower-cased, partition): woken on append.
        self.waiting: dict[tuple[str, str], set[Reader]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        store.on_append(self.appended)

    def protocol(self) -> asyncio.Protocol:
        return HubConnection(self)

    # ---- consumers waiting for events ----------------------------------------------------------

    def appended(self, hub: str, partitions: frozenset[str]) -> None:
        """Store listener (any thread): wake the consumers of these partitions on the loop."""
        loop = self.loop
        if loop is not None and self.waiting and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, hub.lower(), partitions)

    def wake(self, hub: str, partitions: frozenset[str]) -> None:
        for pid in partitions:
            for reader in self.waiting.pop((hub, pid), ()):
                conn = reader.conn
                if not reader.closed and not conn.closed:
                    conn.pump(reader.session, reader.link)
                    conn.flush()

    def wait_for_events(self, reader: Reader) -> None:
        self.waiting.setdefault((reader.hub.lower(), reader.partition), set()).add(reader)

    def consumer_stats(self) -> dict[str, Any]:
        """Who reads what, for ``/_emulator/stats``: each consumer link's position and state."""
        readers = []
        for conn in self.connections:
            for session in conn.sessions.values():
                for link in session.links.values():
                    reader = link.reader
                    if reader is None:
                        continue
                    waiting = reader in self.waiting.get((reader.hub.lower(), reader.partition), ())
                    readers.append(
                        {
                            "hub": reader.hub,
                            "consumer_group": reader.consumer_group,
                            "partition_id": reader.partition,
                            "link": reader.name[:200],
                            "peer": conn.peer,
                            "owner_level": reader.owner_level,
                            "next_sequence_number": reader.next_sequence,
                            "credit": max(link.credit, 0),
                            # caught up and waiting for events, or held back by a full socket
                            "state": "waiting"
                            if waiting
                            else "socket full"
                            if conn.write_paused
                            else "no credit"
                            if link.credit <= 0
                            else "sending",
                        }
                    )
        readers.sort(key=lambda r: (r["hub"], r["consumer_group"], r["partition_id"], r["link"]))
        return {"consumers": readers}

    def release(self, reader: Reader) -> None:
        """A consumer link is gone: it no longer holds its partition nor waits for events."""
        reader.closed = True
        self.readers.leave(reader)
        key = (reader.hub.lower(), reader.partition)
        waiting = self.waiting.get(key)
        if waiting is not None:
            waiting.discard(reader)
            if not waiting:
                del self.waiting[key]

    def close(self) -> None:
        """Close every connection (the stand-in is stopping)."""
        for conn in list(self.connections):
            conn.shutdown("amqp:connection:forced", "the hub stand-in is shutting down")


class HubConnection(LinkConnection):
    """One client connection, with Event Hubs behind its links."""

    def __init__(self, face: AmqpFace) -> None:
        super().__init__(face.max_frame_size, face.max_batch_bytes, face.hard_delivery_limit)
        self.face = face
        self.store = face.store
        self.tokens = Tokens(face.auth, face.store)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.face.connections.add(self)
        if self.face.loop is None:
            self.face.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.face.connections.discard(self)
        super().connection_lost(exc)

    def authorized(self, hub: str) -> bool:
        return self.tokens.authorized(hub)

    # ---- links: what each one is for ----------------------------------------------------------

    def bind_link(
        self,
        session: Session,
        link: Link,
        source: dict[str, Any],
        target: dict[str, Any],
        fields: list[Any],
        snd_mode: int,
    ) -> Binding:
        if not link.receiving:  # the client receives on it
            node = source.get("address") or ""
            if node in ("$cbs", "$management"):
                link.kind, link.node = "reply", node
                return Binding(None, snd_mode)
            refusal, displaced = self.bind_consumer_link(session, link, node, source, fields)
            if refusal is not None:
                return Binding(refusal, snd_mode)
            # settled: Event Hubs deliveries need no disposition
            return Binding(None, 1, lambda: self.consumer_attached(link, displaced))
        node = target.get("address") or ""
        if node in ("$cbs", "$management"):
            link.kind = "cbs" if node == "$cbs" else "management"
            link.node = node
            return Binding(None, snd_mode)
        link.kind = "events"
        return Binding(intake.bind_sender(self.store, link, node, self.authorized), snd_mode)

    def offered_capabilities(self, link: Link) -> bytes:
        if link.reader is not None and link.reader.runtime_metric:
            return e_array("symbol", [RUNTIME_METRIC])
        return NULL

    def link_closed(self, link: Link) -> None:
        if link.reader is not None:
            self.face.release(link.reader)

    def bind_consumer_link(
        self,
        session: Session,
        link: Link,
        address: str,
        source: dict[str, Any],
        fields: list[Any],
    ) -> tuple[tuple[str, str] | None, list[Reader]]:
        """Make a receiver link a consumer of its partition: (the refusal if it cannot be one,
        the readers it takes the partition from)."""
        target = parse_consumer_address(address)
        if target is not None and not self.authorized(target.hub):
            return (
                "amqp:unauthorized-access",
                f"no valid token for event hub {target.hub[:100]!r} on this connection "
                "(put one on $cbs first)",
            ), []
        try:
            reader = open_reader(
                self.store,
                self.face.consumer_groups,
                link.name,
                address,
                source.get("filter"),
                get_field(fields, 13),
                get_field(fields, 12),
            )
            displaced = self.face.readers.admit(reader)
        except LinkRefused as exc:
            return (exc.condition, exc.description), []
        reader.conn, reader.session, reader.link = self, session, link
        link.kind, link.reader, link.hub, link.partition = (
            "consumer",
            reader,
            reader.hub,
            reader.partition,
        )
        return None, displaced

    def steal(self, reader: Reader, by: Reader) -> None:
        """Detach a consumer link whose partition a receiver with a higher owner level took."""
        self.face.release(reader)
        session, link = reader.session, reader.link
        if self.closed or session is None or link is None:
            return
        mine = (
            "no owner level" if reader.owner_level is None else f"owner level {reader.owner_level}"
        )
        error = e_error(
            "amqp:link:stolen",
            f"New receiver '{by.name[:100]}' with owner level {by.owner_level} took partition "
            f"{by.partition!r} of event hub {by.hub!r} (consumer group {by.consumer_group!r}) "
            f"from receiver '{reader.name[:100]}' with {mine}",
        )
        self.detach(session, link, error)
        self.flush()
        log.info(
            "receiver %r from %s lost its partition to %r",
            reader.name[:100],
            self.peer,
            by.name[:100],
        )

    def consumer_attached(self, link: Link, displaced: list[Reader]) -> None:
        reader = link.reader
        assert reader is not None
        for other in displaced:  # after our attach, so the new link is known first
            other.conn.steal(other, reader)
        log.info(
            "consumer link %r from %s reads %s/%s (group %s) from sequence number %s",
            link.name[:100],
            self.peer,
            reader.hub,
            reader.partition,
            reader.consumer_group,
            reader.next_sequence,
        )

    # ---- consumers: events out, as far as credit, window and the socket allow -----------------

    def available(self, link: Link) -> int:
        reader = link.reader
        if reader is None:
            return len(link.pending)
        return max(self.store.end_of(reader.hub, reader.partition) - reader.next_sequence, 0)

    def pump_session(self, session: Session) -> None:
        for link in list(session.links.values()):
            if link.reader is not None:
                self.pump(session, link)

    def pump(self, session: Session, link: Link) -> None:
        """Send a consumer link the events it has credit for, in order.

        Stops at the end of the partition (then waits to be woken by an append), when the
        link's credit or the session's window is used up (the client's next flow resumes it), or
        when the socket's buffer is full (``resume_writing`` resumes it). A drain request that
        finds nothing more to send uses up the credit and says so. One call sends at most
        ``PUMP_TURN`` events and then lets the loop serve others before it goes on, so a fast
        reader with a long backlog cannot starve the rest of the stand-in.
        """
        reader = link.reader
        if reader is None or reader.closed or self.closed:
            return
        caught_up = False
        budget = PUMP_TURN
        while link.credit > 0 and not self.write_paused and session.remote_incoming_window > 0:
            if budget <= 0:
                self.pump_later(session, link)
                break
            start, messages = reader.take(self.store, min(link.credit, PUMP_BATCH, budget))
            if not messages:
                caught_up = True
                break
            budget -= len(messages)
            for sent, message in enumerate(messages):
                if self.write_paused or self.frames_for(message) > session.remote_incoming_window:
                    # Taken but not sent: sent when the socket drains or the window opens. (A
                    # client whose whole window is smaller than one event's frames stalls.)
                    reader.next_sequence = start + sent
                    break
                self.transfer(session, link, message, settled=True)
                if self.out_size >= FLUSH_BYTES:
                    self.flush()  # may pause writing (asyncio calls pause_writing at once)
            else:
                continue
            break
        if link.credit > 0 and not caught_up and not self.write_paused:
            caught_up = reader.next_sequence >= self.store.end_of(reader.hub, reader.partition)
        if caught_up:
            self.face.wait_for_events(reader)
            if link.drain and link.credit > 0:
                link.delivery_count += link.credit
                link.credit = 0
                self.send_flow(session, link)
                link.drain = False

    def pump_later(self, session: Session, link: Link) -> None:
        reader = link.reader
        if reader is None or reader.scheduled:
            return
        reader.scheduled = True

        def resume() -> None:
            reader.scheduled = False
            if not self.closed and not reader.closed:
                self.pump(session, link)
                self.flush()

        asyncio.get_running_loop().call_soon(resume)

    # ---- deliveries from the client ------------------------------------------------------------

    def delivery_started(self, session: Session, link: Link) -> bool:
        if link.kind == "events":
            link.decision = self.face.faults.decide("amqp", link.hub, "send")
            decision = link.decision
            if decision.drop == "after_headers" and not decision.delay_ms:
                self.dropped(decision, f"transfer to {link.hub}")
                return False
        return True

    def delivered(self, session: Session, link: Link, delivery: Delivery, data: bytes) -> None:
        if link.kind == "events":
            decision = link.decision or NO_FAULT
            if decision.delay_ms:
                self.store.count_fault("delay")
                self.pause(
                    decision.delay_ms,
                    lambda: self.deliver_events(session, link, delivery, data, decision),
                )
            self.deliver_events(session, link, delivery, data, decision)
        else:
            self.on_request(session, link, delivery, data)

    def refused_oversized(self) -> None:
        self.store.count_request("amqp", 413)

    def dropped(self, decision: FaultDecision, what: str) -> None:
        self.store.count_fault(decision.kind)
        self.store.count_request("amqp", 0)
        log.debug("fault: dropped AMQP connection from %s (%s)", self.peer, what)
        self.abort()

    def deliver_events(
        self,
        session: Session,
        link: Link,
        delivery: Delivery,
        data: bytes,
        decision: FaultDecision,
    ) -> None:
        """One publication: faults first, then token, size and shape; stored all or nothing."""
        delivery_id, _, message_format, presettled = delivery
        if decision.fails:
            if decision.drop is not None:
                self.dropped(decision, f"transfer to {link.hub}")
                return
            assert decision.status is not None
            self.store.count_fault(decision.kind)
            self.store.count_request("amqp", decision.status)
            condition = decision.amqp_condition or "amqp:internal-error"
            description = decision.message
            if decision.retry_after is not None:
                # Azure's wording; the SDK passes it on as text, the only place it can go.
                description = (
                    f"{description.rstrip('.')}. "
                    f"Please wait {decision.retry_after} seconds and try again."
                )
            log.debug("fault: rejected delivery to %s with %s", link.hub, condition)
            if not presettled:
                self.settle(session, delivery_id, rejected(condition, description))
            return
        status, outcome = intake.accept(
            self.store, self.face.max_batch_bytes, self.authorized, link, data, message_format
        )
        self.store.count_request("amqp", status)
        if status != 201:
            log.info("rejected AMQP delivery to %s: %s", link.hub, outcome[1])
        if not presettled:
            state = ACCEPTED if status == 201 else rejected(*outcome)
            self.settle(session, delivery_id, state)

    # ---- $cbs and $management -----------------------------------------------------------------

    def on_request(self, session: Session, link: Link, delivery: Delivery, data: bytes) -> None:
        delivery_id, _, _, presettled = delivery
        try:
            request = decode_message(data)
        except DecodeError as exc:
            if not presettled:
                self.settle(session, delivery_id, rejected("amqp:decode-error", str(exc)))
            return
        if not presettled:
            self.settle(session, delivery_id, ACCEPTED)
        message_id = request.properties[0] if request.properties else None
        if link.kind == "cbs":
            self.put_token(session, link.node, request, message_id)
        else:
            code, text, body = management.read(
                request, self.face.auth, self.store, self.authorized, self.hostname
            )
            self.reply(session, link.node, message_id, management.status(code, text), body)

    def put_token(self, session: Session, node: str, request: Message, message_id: Any) -> None:
        hub = token_hub(request)
        decision = self.face.faults.decide("amqp", hub, "auth")

        def finish() -> None:
            code, text = self.tokens.put(request, hub, decision, self.peer)
            if code >= 300:
                self.store.count_request("amqp", code)
            self.reply(
                session, node, message_id, {"status-code": code, "status-description": text}, None
            )

        if decision.delay_ms:
            self.store.count_fault("delay")
            if decision.drop is None:
                self.pause(decision.delay_ms, finish)
        if decision.drop is not None:
            if decision.delay_ms:
                self.pause(decision.delay_ms, lambda: self.dropped(decision, "put-token"))
            self.dropped(decision, "put-token")
            return
        finish()

    def reply(
        self,
        session: Session,
        node: str,
        correlation_id: Any,
        status: dict[str, Any],
        body: Any,
    ) -> None:
        """Answer on the session's reply link for ``node`` (the SDK sets no reply-to)."""
        link = next(
            (ln for ln in session.links.values() if ln.kind == "reply" and ln.node == node), None
        )
        if link is None:
            log.info("no reply link for %s on session %s from %s", node, session.channel, self.peer)
            return
        link.pending.append(management.reply_message(correlation_id, status, body))
        self.drain_replies(session)
