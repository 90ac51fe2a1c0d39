"""AMQP 1.0 sessions and links on a connection: begin/end, attach/detach, flow (credit and
session windows), transfers in (a delivery assembled from its frames) and out (a message split
over the client's frame size), and dispositions.

What a link is *for* (a hub to send to, a partition to read, ``$cbs`` …) is decided by the layer
above (``amqp_face.HubConnection``) through the hooks at the top of :class:`LinkConnection`; this
layer only keeps the protocol's books.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from audiencehub.emulator.amqp.codec import (
    FALSE,
    NULL,
    TRUE,
    U32,
    DecodeError,
    e_bin,
    e_bool,
    e_str,
    e_ubyte,
    e_uint,
    e_ulong,
    e_ushort,
)
from audiencehub.emulator.amqp.connection import DEFAULT_MAX_FRAME_SIZE, Connection
from audiencehub.emulator.amqp.frames import (
    ATTACH,
    BEGIN,
    DETACH,
    DISPOSITION,
    END,
    FLOW,
    TRANSFER,
    e_error,
    e_source,
    e_target,
    get_field,
    performative,
    terminus,
)

if TYPE_CHECKING:
    from audiencehub.emulator.consumer import Reader
    from audiencehub.emulator.faults import FaultDecision

__all__ = [
    "LINK_CREDIT",
    "SESSION_WINDOW",
    "Binding",
    "Delivery",
    "Link",
    "LinkConnection",
    "Session",
]

log = logging.getLogger("audiencehub.emulator.amqp")

# Credit handed to a sending client: the SDK waits for each batch's disposition, so a few hundred
# outstanding deliveries is plenty; it is topped up once half is used.
LINK_CREDIT = 500
SESSION_WINDOW = 65_535
# A transfer performative's largest encoding (handle, delivery-id and tag at their widest).
_TRANSFER_HEAD_MAX = 48


@dataclass(slots=True)
class Link:
    """One attached link, from the stand-in's side."""

    name: str
    remote_handle: int
    handle: int
    receiving: bool  # True: the client sends on it
    # what the layer above made of it ("events", "cbs", "management", "reply", "consumer")
    kind: str = ""
    node: str = ""  # $cbs / $management for request and reply links
    hub: str = ""
    partition: str | None = None
    delivery_count: int = 0
    credit: int = 0
    # a delivery being assembled from transfer frames
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    delivery_id: int | None = None
    delivery_tag: bytes = b""
    message_format: int = 0
    settled: bool = False
    decision: FaultDecision | None = None  # the fault plan's word on the current delivery
    # replies waiting for credit
    pending: list[bytes] = field(default_factory=list)
    # a consumer link: what it reads (consumer.Reader) and whether the client asked to drain
    reader: Reader | None = None
    drain: bool = False


@dataclass(slots=True)
class Session:
    remote_channel: int
    channel: int
    next_incoming_id: int
    next_outgoing_id: int = 0  # transfer-id: counts transfer frames, as windows do
    next_delivery_id: int = 0
    remote_incoming_window: int = 0
    links: dict[int, Link] = field(default_factory=dict)  # by the client's handle
    detaching: set[int] = field(default_factory=set)  # client handles we detached
    handles: Iterator[int] = field(default_factory=lambda: iter(range(1 << 32)))


class Binding(NamedTuple):
    """What the layer above made of a new link: the refusal (condition, reason) if it will not
    serve it, the sender settle mode to answer with, and what to do once it is attached."""

    refusal: tuple[str, str] | None
    snd_mode: int
    then: Callable[[], None] | None = None


# A delivery as it arrived: delivery-id, tag, message format, whether the client pre-settled it.
Delivery = tuple[int, bytes, int, bool]


class LinkConnection(Connection):
    """A connection's sessions and links."""

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int = 0,
        hard_delivery_limit: int = 0,
    ) -> None:
        super().__init__(max_frame_size)
        self.max_message_size = max_message_size
        # A delivery this far over the limit is refused as it arrives (the link is detached).
        self.hard_delivery_limit = hard_delivery_limit
        self.sessions: dict[int, Session] = {}  # by the client's channel

    # ---- what the layer above decides -----------------------------------------------------------

    def bind_link(
        self,
        session: Session,
        link: Link,
        source: dict[str, Any],
        target: dict[str, Any],
        fields: list[Any],
        snd_mode: int,
    ) -> Binding:
        """Give a new link its purpose (``link.kind`` …), or refuse it."""
        raise NotImplementedError

    def offered_capabilities(self, link: Link) -> bytes:
        return NULL

    def link_closed(self, link: Link) -> None:
        """A link went away (detached, its session ended or the connection was lost)."""

    def pump_session(self, session: Session) -> None:
        """The session's window may have opened: send what its streaming links hold."""

    def available(self, link: Link) -> int:
        """Messages the link could send now (the flow's ``available`` field)."""
        return len(link.pending)

    def delivery_started(self, session: Session, link: Link) -> bool:
        """The first frame of a delivery arrived; False if the connection is gone."""
        return True

    def delivered(self, session: Session, link: Link, delivery: Delivery, data: bytes) -> None:
        """A whole delivery arrived on a receiving link."""
        raise NotImplementedError

    def refused_oversized(self) -> None:
        """A delivery went over the hard limit (its link was detached)."""

    # ---- sessions -------------------------------------------------------------------------------

    def session(self, channel: int) -> Session | None:
        """The session on ``channel``; None for frames that crossed our reply to its end."""
        session = self.sessions.get(channel)
        if session is None:
            log.debug("ignored a frame on channel %s, which has no session", channel)
        return session

    def on_begin(self, channel: int, fields: list[Any]) -> None:
        if channel in self.sessions:
            raise DecodeError(f"begin on channel {channel}, which already has a session")
        session = Session(
            remote_channel=channel,
            channel=channel,
            next_incoming_id=int(get_field(fields, 1, 0)),
            remote_incoming_window=int(get_field(fields, 2, 0)),
        )
        self.sessions[channel] = session
        self.send(
            session.channel,
            performative(
                BEGIN,
                e_ushort(channel),  # remote-channel
                e_uint(session.next_outgoing_id),
                e_uint(SESSION_WINDOW),  # incoming-window
                e_uint(SESSION_WINDOW),  # outgoing-window
                e_uint(65535),  # handle-max
                NULL,
                NULL,
                NULL,
            ),
        )

    def on_end(self, channel: int) -> None:
        session = self.sessions.pop(channel, None)
        if session is None:
            return
        self.release_links(session)
        self.send(session.channel, performative(END, NULL))

    def on_lost(self) -> None:
        for session in self.sessions.values():
            self.release_links(session)

    def release_links(self, session: Session) -> None:
        for link in session.links.values():
            self.link_closed(link)

    # ---- links ----------------------------------------------------------------------------------

    def on_attach(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        name = str(get_field(fields, 0, ""))
        remote_handle = int(get_field(fields, 1, 0))
        client_is_receiver = bool(get_field(fields, 2, False))
        snd_mode = int(get_field(fields, 3, 2))
        rcv_mode = int(get_field(fields, 4, 0))
        source = terminus(get_field(fields, 5))
        target = terminus(get_field(fields, 6))
        initial_count = int(get_field(fields, 9, 0))
        link = Link(
            name=name,
            remote_handle=remote_handle,
            handle=next(session.handles),
            receiving=not client_is_receiver,
            delivery_count=0 if client_is_receiver else initial_count,
        )
        node = (source if client_is_receiver else target).get("address") or ""
        refusal, snd_mode, then = self.bind_link(session, link, source, target, fields, snd_mode)
        session.links[remote_handle] = link
        self.send(
            session.channel,
            performative(
                ATTACH,
                e_str(name),
                e_uint(link.handle),
                e_bool(link.receiving),  # role: True = receiver
                e_ubyte(snd_mode),
                e_ubyte(rcv_mode),
                e_source(source),
                e_target(target),
                NULL,  # unsettled
                FALSE,  # incomplete-unsettled
                NULL if link.receiving else e_uint(0),  # initial-delivery-count
                e_ulong(self.max_message_size),
                self.offered_capabilities(link),
                NULL,  # desired-capabilities
                NULL,  # properties
            ),
        )
        if refusal is not None:
            self.detach(session, link, e_error(*refusal))
            log.info("refused link %r (%s) from %s: %s", name, node, self.peer, refusal[1])
            return
        if link.receiving:
            link.credit = LINK_CREDIT
            self.send_flow(session, link)
        elif then is not None:
            then()

    def detach(self, session: Session, link: Link, error: bytes) -> None:
        """Detach a link on our side, closing it with ``error``."""
        session.links.pop(link.remote_handle, None)
        session.detaching.add(link.remote_handle)
        self.send(session.channel, performative(DETACH, e_uint(link.handle), TRUE, error))

    def on_detach(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        handle = int(get_field(fields, 0, 0))
        link = session.links.pop(handle, None)
        if link is None:
            session.detaching.discard(handle)  # the answer to our own detach
            return
        self.link_closed(link)
        closed = bool(get_field(fields, 1, False))
        self.send(session.channel, performative(DETACH, e_uint(link.handle), e_bool(closed), NULL))

    def on_flow(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        next_incoming = get_field(fields, 0)
        window = int(get_field(fields, 1, 0))
        start = session.next_outgoing_id if next_incoming is None else int(next_incoming)
        session.remote_incoming_window = start + window - session.next_outgoing_id
        handle = get_field(fields, 4)
        if handle is None:
            self.drain_replies(session)
            self.pump_session(session)
            return
        link = session.links.get(int(handle))
        if link is None:
            return
        echo = bool(get_field(fields, 9, False))
        if link.receiving:
            if echo:
                self.send_flow(session, link)
            return
        delivery_count = int(get_field(fields, 5, 0))
        credit = int(get_field(fields, 6, 0))
        link.credit = delivery_count + credit - link.delivery_count
        if link.reader is not None:
            link.drain = bool(get_field(fields, 8, False))
            self.pump_session(session)  # the session window may have opened for its siblings
            if echo:
                self.send_flow(session, link)
            return
        self.drain_replies(session)
        if bool(get_field(fields, 8, False)) and not link.pending and link.credit > 0:
            link.delivery_count += link.credit
            link.credit = 0
            echo = True
        if echo:
            self.send_flow(session, link)

    def send_flow(self, session: Session, link: Link) -> None:
        available = self.available(link)
        self.send(
            session.channel,
            performative(
                FLOW,
                e_uint(session.next_incoming_id),
                e_uint(SESSION_WINDOW),
                e_uint(session.next_outgoing_id),
                e_uint(SESSION_WINDOW),
                e_uint(link.handle),
                e_uint(link.delivery_count & 0xFFFFFFFF),
                e_uint(max(link.credit, 0)),
                e_uint(min(available, 0xFFFFFFFF)),  # available
                e_bool(link.drain),  # drain
                FALSE,  # echo
                NULL,  # properties
            ),
        )

    def on_writable(self) -> None:
        for session in list(self.sessions.values()):
            self.pump_session(session)

    # ---- transfers ------------------------------------------------------------------------------

    def on_transfer(self, channel: int, fields: list[Any], payload: bytes) -> None:
        session = self.session(channel)
        if session is None:
            return
        handle = int(get_field(fields, 0, -1))
        link = session.links.get(handle)
        if link is None and handle in session.detaching:
            return  # frames already in flight when we detached the link
        if link is None or not link.receiving:
            raise DecodeError(f"transfer on handle {handle}, which is not attached for sending")
        if link.delivery_id is None:
            delivery_id = get_field(fields, 1)
            if delivery_id is None:
                raise DecodeError("the first transfer of a delivery must carry its delivery-id")
            link.delivery_id = int(delivery_id)
            link.delivery_tag = bytes(get_field(fields, 2, b""))
            link.message_format = int(get_field(fields, 3, 0))
            link.settled = bool(get_field(fields, 4, False))
            session.next_incoming_id = link.delivery_id + 1
            if not self.delivery_started(session, link):
                return
        if bool(get_field(fields, 9, False)):  # aborted
            self.reset_delivery(link)
            return
        link.chunks.append(payload)
        link.size += len(payload)
        if link.size > self.hard_delivery_limit:
            self.reset_delivery(link)
            error = e_error(
                "amqp:link:message-size-exceeded",
                f"delivery is over {self.hard_delivery_limit} bytes; the limit is "
                f"{self.max_message_size} bytes per publication",
            )
            self.detach(session, link, error)
            self.refused_oversized()
            return
        if bool(get_field(fields, 5, False)):  # more
            return
        data = link.chunks[0] if len(link.chunks) == 1 else b"".join(link.chunks)
        delivery = (link.delivery_id, link.delivery_tag, link.message_format, link.settled)
        self.reset_delivery(link)
        link.delivery_count += 1
        if link.receiving and link.credit > 0:
            link.credit -= 1
        if link.credit < LINK_CREDIT // 2:
            link.credit = LINK_CREDIT
            self.send_flow(session, link)
        self.delivered(session, link, delivery, data)

    @staticmethod
    def reset_delivery(link: Link) -> None:
        link.chunks = []
        link.size = 0
        link.delivery_id = None

    def settle(self, session: Session, delivery_id: int, state: bytes) -> None:
        self.send(
            session.channel,
            performative(
                DISPOSITION,
                TRUE,  # role: receiver
                e_uint(delivery_id),
                e_uint(delivery_id),
                TRUE,  # settled
                state,
                FALSE,  # batchable
            ),
        )

    def drain_replies(self, session: Session) -> None:
        for link in session.links.values():
            while (
                link.pending
                and link.credit > 0
                and self.frames_for(link.pending[0]) <= session.remote_incoming_window
            ):
                self.transfer(session, link, link.pending.pop(0))

    def frames_for(self, message: bytes) -> int:
        """Transfer frames one message takes at the client's max frame size."""
        room = self.remote_max_frame - 8 - _TRANSFER_HEAD_MAX
        return max(1, -(-len(message) // room))

    def transfer(self, session: Session, link: Link, message: bytes, settled: bool = True) -> None:
        """Send one message, split over frames if the client's frames are small.

        Each frame is one transfer-id (what session windows count); the delivery-id counts
        messages.
        """
        delivery_id = session.next_delivery_id
        session.next_delivery_id += 1
        link.delivery_count += 1
        link.credit -= 1
        tag = U32.pack(link.delivery_count & 0xFFFFFFFF)
        handle = e_uint(link.handle)
        delivery = e_uint(delivery_id & 0xFFFFFFFF)
        e_tag = e_bin(tag)
        e_settled = e_bool(settled)

        def head(more: bool) -> bytes:
            return performative(
                TRANSFER,
                handle,
                delivery,
                e_tag,
                b"\x43",  # message-format 0
                e_settled,
                TRUE if more else FALSE,
                NULL,  # rcv-settle-mode
                NULL,  # state
                FALSE,  # resume
                FALSE,  # aborted
                FALSE,  # batchable
            )

        room = self.remote_max_frame - 8 - _TRANSFER_HEAD_MAX
        if len(message) > room:
            more_head = head(True)
            view = memoryview(message)
            while len(view) > room:
                self.send(session.channel, more_head + view[:room])
                session.next_outgoing_id += 1
                session.remote_incoming_window -= 1
                view = view[room:]
            message = bytes(view)
        self.send(session.channel, head(False) + message)
        session.next_outgoing_id += 1
        session.remote_incoming_window -= 1
