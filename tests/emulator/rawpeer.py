"""A raw AMQP peer: just enough of a client to look at the stand-in's frames field by field.

Its put-token is for hub ``HUB`` with key ``KEY_NAME`` / ``KEY``: start the stand-in with them.
"""

from __future__ import annotations

import socket
import struct
import uuid
from typing import Any

from audiencehub.emulator.amqp import (
    AMQP_HEADER,
    NULL,
    SASL_HEADER,
    Described,
    decode_message,
    decode_value,
    e_bin,
    e_bool,
    e_str,
    e_sym,
    e_ubyte,
    e_uint,
    encode_value,
    frame,
    performative,
)
from tests.emulator.helpers import HubProcess

HUB = "orders"
KEY_NAME = "send"
KEY = "c2VjcmV0LWtleS1mb3ItdGhlLWFtcXAtZmFjZS10ZXN0cw=="


class RawPeer:
    """Just enough of an AMQP client to look at the face's frames field by field."""

    def __init__(self, hub: HubProcess) -> None:
        self.sock = socket.create_connection((hub.conn.host, hub.conn.port or 0), timeout=5)
        self.hub = hub

    def close(self) -> None:
        self.sock.close()

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def frame(self) -> tuple[int, int, list[Any], bytes]:
        """(channel, performative code, fields, payload after the performative)."""
        size, doff, _, channel = struct.unpack(">IBBH", self.read(8))
        body = self.read(size - 8)[doff * 4 - 8 :]
        descriptor, pos = decode_value(body, 1)
        fields, pos = decode_value(body, pos)
        return channel, descriptor, fields, body[pos:]

    def send(self, channel: int, body: bytes, frame_type: int = 0) -> None:
        self.sock.sendall(frame(channel, body, frame_type))

    def open(self, hostname: str = "localhost") -> list[Any]:
        self.sock.sendall(SASL_HEADER)
        assert self.read(8) == SASL_HEADER
        _, code, fields, _ = self.frame()
        assert code == 0x40 and fields == [["ANONYMOUS"]]
        self.send(0, performative(0x41, e_sym("ANONYMOUS"), e_bin(b""), NULL), 1)
        _, code, fields, _ = self.frame()
        assert (code, fields) == (0x44, [0, None])
        self.sock.sendall(AMQP_HEADER)
        self.send(0, performative(0x10, e_str("raw-peer"), e_str(hostname), e_uint(512)))
        assert self.read(8) == AMQP_HEADER
        _, code, fields, _ = self.frame()
        assert code == 0x10
        return fields

    def begin(self, channel: int = 1) -> list[Any]:
        self.send(channel, performative(0x11, NULL, e_uint(0), e_uint(100), e_uint(100)))
        _, code, fields, _ = self.frame()
        assert code == 0x11
        return fields

    def attach(self, name: str, handle: int, receiver: bool, address: str) -> list[Any]:
        terminus = encode_value(Described(0x29 if not receiver else 0x28, [address]))
        self.send(
            1,
            performative(
                0x12,
                e_str(name),
                e_uint(handle),
                e_bool(receiver),
                e_ubyte(0),
                e_ubyte(0),
                terminus if receiver else encode_value(Described(0x28, ["peer"])),
                encode_value(Described(0x29, ["peer"])) if receiver else terminus,
                NULL,
                NULL,
                NULL if receiver else e_uint(0),
            ),
        )
        _, code, fields, _ = self.frame()
        assert code == 0x12
        return fields

    def transfer(self, handle: int, delivery: int, payload: bytes, fmt: int = 0) -> None:
        self.send(
            1,
            performative(
                0x14, e_uint(handle), e_uint(delivery), e_bin(b"t%d" % delivery), e_uint(fmt)
            )
            + payload,
        )

    def put_token(self, token: str | None = None, audience: str | None = None) -> int:
        """Put a token on ``$cbs`` (by default one for ``HUB`` here); the answer's status code."""
        token = token or self.hub.token(HUB, key=KEY, key_name=KEY_NAME)
        properties = {
            "operation": "put-token",
            "type": "servicebus.windows.net:sastoken",
            "name": audience or f"sb://{self.hub.conn.namespace}/{HUB}",
        }
        status, _ = self.request("$cbs", properties, token)
        return status

    def read_hub(self, token: str) -> tuple[int, str]:
        """``$management`` READ of ``HUB`` carrying its own ``security_token``: (status, text)."""
        properties = {
            "operation": "READ",
            "type": "com.microsoft:eventhub",
            "name": HUB,
            "security_token": token,
        }
        return self.request("$management", properties, None)

    def request(self, node: str, properties: dict[str, Any], body: Any) -> tuple[int, str]:
        """One request on ``node`` (its two links attached first): the answer's status and text."""
        self.attach(f"{node}-out", 0, False, node)
        self.frame()  # flow: credit for the request link
        self.attach(f"{node}-in", 1, True, node)
        self.send(
            1,
            performative(
                0x13,
                e_uint(0),
                e_uint(100),
                e_uint(0),
                e_uint(100),
                e_uint(1),
                e_uint(0),
                e_uint(10),
            ),
        )
        message = encode_value(Described(0x73, [uuid.uuid4()])) + encode_value(
            Described(0x74, properties)
        )
        if body is not None:
            message += encode_value(Described(0x77, body))
        self.transfer(0, 0, message)
        _, code, fields, _ = self.frame()
        assert code == 0x15 and len(fields) == 6  # disposition of the request
        _, code, fields, payload = self.frame()
        assert code == 0x14 and len(fields) == 11
        answer = decode_message(payload).application_properties
        return int(answer["status-code"]), str(answer["status-description"])
