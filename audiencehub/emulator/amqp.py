"""The hub stand-in's AMQP 1.0 face: what the azure-eventhub SDK speaks, on the REST port.

With ``UseDevelopmentEmulator=true`` the SDK (5.12+) opens plain AMQP to the endpoint's host and
port, so the one printed connection string serves both faces (``Emulator.share_port``). This face
speaks the subset of AMQP 1.0 the SDK uses, and nothing more:

- SASL ANONYMOUS (the SDK's CBS auth uses it), then open / begin / attach / flow / transfer /
  disposition / detach / end / close;
- CBS ``put-token`` on ``$cbs``: the SAS token is checked exactly like REST's Authorization header
  (:class:`Authorizer`), answered with status-code 202, or 401 and the reason;
- ``$management`` READ of ``com.microsoft:eventhub`` and ``com.microsoft:partition``;
- sender links to ``HUB`` or ``HUB/Partitions/N``; each delivery is one request: a batch (message
  format 0x80013700, each data section an encoded message) or a single message, possibly split
  over many transfer frames. It is stored like a REST request (face ``"amqp"``) and settled
  Accepted, or Rejected with the fault plan's or the check's AMQP condition.

Why its own codec instead of the SDK's bundled one: the SDK's decoder turns AMQP string, symbol
and binary alike into ``bytes`` (a stored property must stay a string), its encoder is private API
that moves between releases, and a table-driven decoder over ``bytes`` is several times faster.

Why every performative carries every field: the SDK's pure-Python client reads optional fields by
index (``frame[10]``, ``frame[13]``) and fails with IndexError when a peer leaves trailing nulls
out, as Qpid Proton does. Two more client quirks shape the encoder: it never gets an empty array
(the SDK misreads one, so "none" is sent as null), and performatives always use list8/list32.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import orjson

from audiencehub.emulator.auth import Authorizer, TokenError, resource_hub
from audiencehub.emulator.faults import NO_FAULT, FaultDecision, FaultPlan
from audiencehub.emulator.store import EventStore, Hub, IncomingEvent, StoreFull, UnknownHub
from workers.delivery.eventhub.partitions import MAX_PARTITION_KEY, key_length, partition_for_key

__all__ = [
    "BATCH_FORMAT",
    "AmqpFace",
    "DecodeError",
    "Described",
    "Symbol",
    "Timestamp",
    "decode_message",
    "decode_value",
    "encode_value",
]

log = logging.getLogger("audiencehub.emulator.amqp")

BATCH_FORMAT = 0x80013700
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
DEFAULT_MAX_FRAME_SIZE = 65_536
PARTITION_KEY = "x-opt-partition-key"
SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"
CONTAINER_ID = "audiencehub-hub-emulator"
# Credit handed to a sending client: the SDK waits for each batch's disposition, so a few hundred
# outstanding deliveries is plenty; it is topped up once half is used.
LINK_CREDIT = 500
SESSION_WINDOW = 65_535
# Consumers: events taken from the store per step, bytes gathered before each socket write, and
# the socket buffer above which the stand-in stops sending until the client reads.
PUMP_BATCH = 64
PUMP_TURN = 1024  # events one consumer gets per turn of the event loop
FLUSH_BYTES = 64 * 1024
WRITE_BUFFER_HIGH = 256 * 1024
# A transfer performative's largest encoding (handle, delivery-id and tag at their widest).
_TRANSFER_HEAD_MAX = 48
_MAX_ANY_FRAME = 64 * 1024 * 1024


# ==== codec ====================================================================================


class DecodeError(ValueError):
    """Bytes that are not valid AMQP 1.0 encoding."""


class Symbol(str):
    """An AMQP symbol (kept apart from string so it is written back as a symbol)."""

    __slots__ = ()


class Timestamp(int):
    """An AMQP timestamp: milliseconds since the Unix epoch."""

    __slots__ = ()


class Described(NamedTuple):
    """A described value: performatives, message sections, outcomes, errors."""

    descriptor: Any
    value: Any


class Array(NamedTuple):
    """An AMQP array for encoding: ``kind`` is "symbol" or "string"; never sent empty."""

    kind: str
    items: Sequence[str]


_Decoder = Callable[[bytes, int], tuple[Any, int]]
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_I8 = struct.Struct(">b")
_U32X2 = struct.Struct(">II")
_FRAME_HEAD = struct.Struct(">IBBH")


def _need(data: bytes, end: int) -> None:
    if end > len(data):
        raise DecodeError("value runs past the end of its frame")


def _fixed(value: Any) -> _Decoder:
    def decode(data: bytes, pos: int) -> tuple[Any, int]:
        return value, pos

    return decode


def _struct(fmt: struct.Struct, wrap: Callable[[Any], Any] | None = None) -> _Decoder:
    size = fmt.size
    unpack = fmt.unpack_from

    def decode(data: bytes, pos: int) -> tuple[Any, int]:
        _need(data, pos + size)
        value = unpack(data, pos)[0]
        return (wrap(value) if wrap else value), pos + size

    return decode


def _d_u8(data: bytes, pos: int) -> tuple[int, int]:
    return data[pos], pos + 1


def _d_bool(data: bytes, pos: int) -> tuple[bool, int]:
    return data[pos] != 0, pos + 1


def _d_uuid(data: bytes, pos: int) -> tuple[uuid.UUID, int]:
    _need(data, pos + 16)
    return uuid.UUID(bytes=data[pos : pos + 16]), pos + 16


def _d_char(data: bytes, pos: int) -> tuple[str, int]:
    _need(data, pos + 4)
    return chr(_U32.unpack_from(data, pos)[0]), pos + 4


def _raw(width: int) -> _Decoder:
    """decimal32/64/128: kept as raw bytes (nothing the SDK sends uses them)."""

    def decode(data: bytes, pos: int) -> tuple[bytes, int]:
        _need(data, pos + width)
        return data[pos : pos + width], pos + width

    return decode


def _variable(large: bool, convert: Callable[[bytes], Any] | None) -> _Decoder:
    def decode(data: bytes, pos: int) -> tuple[Any, int]:
        if large:
            _need(data, pos + 4)
            size = _U32.unpack_from(data, pos)[0]
            pos += 4
        else:
            size = data[pos]
            pos += 1
        end = pos + size
        _need(data, end)
        raw = data[pos:end]
        return (convert(raw) if convert else raw), end

    return decode


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")


def _symbol(raw: bytes) -> Symbol:
    return Symbol(raw.decode("utf-8"))


def _compound(large: bool, is_map: bool) -> _Decoder:
    def decode(data: bytes, pos: int) -> tuple[Any, int]:
        if large:
            _need(data, pos + 8)
            size, count = _U32X2.unpack_from(data, pos)
            end = pos + size + 4
            pos += 8
        else:
            size, count = data[pos], data[pos + 1]
            end = pos + size + 1
            pos += 2
        _need(data, end)
        table = _DECODERS
        if is_map:
            if count % 2:
                raise DecodeError("map with an odd number of elements")
            out: dict[Any, Any] = {}
            for _ in range(count // 2):
                fn = table[data[pos]]
                if fn is None:
                    raise DecodeError(f"unknown constructor 0x{data[pos]:02x}")
                key, pos = fn(data, pos + 1)
                fn = table[data[pos]]
                if fn is None:
                    raise DecodeError(f"unknown constructor 0x{data[pos]:02x}")
                out[key], pos = fn(data, pos + 1)
            result: Any = out
        else:
            items: list[Any] = []
            for _ in range(count):
                fn = table[data[pos]]
                if fn is None:
                    raise DecodeError(f"unknown constructor 0x{data[pos]:02x}")
                value, pos = fn(data, pos + 1)
                items.append(value)
            result = items
        if pos != end:
            raise DecodeError("compound value size does not match its contents")
        return result, end

    return decode


def _array(large: bool) -> _Decoder:
    def decode(data: bytes, pos: int) -> tuple[list[Any], int]:
        if large:
            _need(data, pos + 8)
            size, count = _U32X2.unpack_from(data, pos)
            end = pos + size + 4
            pos += 8
        else:
            size, count = data[pos], data[pos + 1]
            end = pos + size + 1
            pos += 2
        _need(data, end)
        descriptor = None
        ctor = data[pos]
        pos += 1
        if ctor == 0x00:
            descriptor, pos = decode_value(data, pos)
            ctor = data[pos]
            pos += 1
        fn = _DECODERS[ctor]
        if fn is None:
            raise DecodeError(f"unknown array element constructor 0x{ctor:02x}")
        items: list[Any] = []
        for _ in range(count):
            value, pos = fn(data, pos)
            items.append(value if descriptor is None else Described(descriptor, value))
        if pos != end:
            raise DecodeError("array size does not match its contents")
        return items, end

    return decode


def _d_described(data: bytes, pos: int) -> tuple[Described, int]:
    descriptor, pos = decode_value(data, pos)
    value, pos = decode_value(data, pos)
    return Described(descriptor, value), pos


_DECODERS: list[_Decoder | None] = [None] * 256
_DECODERS[0x00] = _d_described
_DECODERS[0x40] = _fixed(None)
_DECODERS[0x41] = _fixed(True)
_DECODERS[0x42] = _fixed(False)
_DECODERS[0x43] = _fixed(0)
_DECODERS[0x44] = _fixed(0)
_DECODERS[0x45] = lambda data, pos: ([], pos)
_DECODERS[0x50] = _d_u8
_DECODERS[0x51] = _struct(_I8)
_DECODERS[0x52] = _d_u8
_DECODERS[0x53] = _d_u8
_DECODERS[0x54] = _struct(_I8)
_DECODERS[0x55] = _struct(_I8)
_DECODERS[0x56] = _d_bool
_DECODERS[0x60] = _struct(_U16)
_DECODERS[0x61] = _struct(_I16)
_DECODERS[0x70] = _struct(_U32)
_DECODERS[0x71] = _struct(_I32)
_DECODERS[0x72] = _struct(_F32)
_DECODERS[0x73] = _d_char
_DECODERS[0x74] = _raw(4)
_DECODERS[0x80] = _struct(_U64)
_DECODERS[0x81] = _struct(_I64)
_DECODERS[0x82] = _struct(_F64)
_DECODERS[0x83] = _struct(_I64, Timestamp)
_DECODERS[0x84] = _raw(8)
_DECODERS[0x94] = _raw(16)
_DECODERS[0x98] = _d_uuid
_DECODERS[0xA0] = _variable(False, None)
_DECODERS[0xA1] = _variable(False, _utf8)
_DECODERS[0xA3] = _variable(False, _symbol)
_DECODERS[0xB0] = _variable(True, None)
_DECODERS[0xB1] = _variable(True, _utf8)
_DECODERS[0xB3] = _variable(True, _symbol)
_DECODERS[0xC0] = _compound(False, False)
_DECODERS[0xC1] = _compound(False, True)
_DECODERS[0xD0] = _compound(True, False)
_DECODERS[0xD1] = _compound(True, True)
_DECODERS[0xE0] = _array(False)
_DECODERS[0xF0] = _array(True)


def decode_value(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode the value at ``pos``; returns (value, position after it). Raises DecodeError."""
    try:
        fn = _DECODERS[data[pos]]
        if fn is None:
            raise DecodeError(f"unknown constructor 0x{data[pos]:02x} at offset {pos}")
        return fn(data, pos + 1)
    except (IndexError, struct.error) as exc:
        raise DecodeError("value runs past the end of its frame") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string is not valid UTF-8: {exc}") from exc


# ---- encoding ---------------------------------------------------------------------------------

NULL = b"\x40"
TRUE = b"\x41"
FALSE = b"\x42"


def e_bool(value: bool) -> bytes:
    return TRUE if value else FALSE


def e_ubyte(value: int) -> bytes:
    return b"\x50" + bytes((value,))


def e_ushort(value: int) -> bytes:
    return b"\x60" + _U16.pack(value)


def e_uint(value: int) -> bytes:
    if value == 0:
        return b"\x43"
    if value < 256:
        return b"\x52" + bytes((value,))
    return b"\x70" + _U32.pack(value)


def e_ulong(value: int) -> bytes:
    if value == 0:
        return b"\x44"
    if value < 256:
        return b"\x53" + bytes((value,))
    return b"\x80" + _U64.pack(value)


def e_int(value: int) -> bytes:
    if -128 <= value <= 127:
        return b"\x54" + _I8.pack(value)
    return b"\x71" + _I32.pack(value)


def e_long(value: int) -> bytes:
    if -128 <= value <= 127:
        return b"\x55" + _I8.pack(value)
    return b"\x81" + _I64.pack(value)


def _e_var(small: int, large: int, raw: bytes) -> bytes:
    n = len(raw)
    if n < 256:
        return bytes((small, n)) + raw
    return bytes((large,)) + _U32.pack(n) + raw


def e_str(value: str) -> bytes:
    return _e_var(0xA1, 0xB1, value.encode("utf-8"))


def e_sym(value: str) -> bytes:
    return _e_var(0xA3, 0xB3, value.encode("utf-8"))


def e_bin(value: bytes) -> bytes:
    return _e_var(0xA0, 0xB0, value)


def e_timestamp(ms: int) -> bytes:
    return b"\x83" + _I64.pack(ms)


def e_list(items: Sequence[bytes]) -> bytes:
    """A list of already-encoded values (list8 when it fits; an empty list is list0)."""
    if not items:
        return b"\x45"
    body = b"".join(items)
    if len(body) < 255 and len(items) < 256:
        return bytes((0xC0, len(body) + 1, len(items))) + body
    return b"\xd0" + _U32X2.pack(len(body) + 4, len(items)) + body


def e_map(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(k + v for k, v in pairs)
    count = 2 * len(pairs)
    if len(body) < 255 and count < 256:
        return bytes((0xC1, len(body) + 1, count)) + body
    return b"\xd1" + _U32X2.pack(len(body) + 4, count) + body


def e_array(kind: str, items: Sequence[str]) -> bytes:
    """An array of symbols or strings; null when empty (the SDK misreads empty arrays)."""
    if not items:
        return NULL
    raws = [s.encode("utf-8") for s in items]
    small = max(len(r) for r in raws) < 256
    ctor = {"symbol": (0xA3, 0xB3), "string": (0xA1, 0xB1)}[kind][0 if small else 1]
    if small:
        elements = b"".join(bytes((len(r),)) + r for r in raws)
    else:
        elements = b"".join(_U32.pack(len(r)) + r for r in raws)
    body = bytes((ctor,)) + elements
    if len(body) < 255 and len(raws) < 256:
        return bytes((0xE0, len(body) + 1, len(raws))) + body
    return b"\xf0" + _U32X2.pack(len(body) + 4, len(raws)) + body


def e_described(code: int, value: bytes) -> bytes:
    return b"\x00" + e_ulong(code) + value


def encode_value(value: Any) -> bytes:
    """Encode a Python value by its type (int → long, str → string, Symbol → symbol, …)."""
    if value is None:
        return NULL
    if value is True or value is False:
        return e_bool(value)
    if isinstance(value, Symbol):
        return e_sym(value)
    if isinstance(value, str):
        return e_str(value)
    if isinstance(value, Timestamp):
        return e_timestamp(value)
    if isinstance(value, int):
        return e_long(value) if value < (1 << 63) else e_ulong(value)
    if isinstance(value, float):
        return b"\x82" + _F64.pack(value)
    if isinstance(value, bytes | bytearray):
        return e_bin(bytes(value))
    if isinstance(value, uuid.UUID):
        return b"\x98" + value.bytes
    if isinstance(value, Described):
        descriptor = value.descriptor
        head = e_ulong(descriptor) if isinstance(descriptor, int) else e_sym(str(descriptor))
        return b"\x00" + head + encode_value(value.value)
    if isinstance(value, Array):
        return e_array(value.kind, value.items)
    if isinstance(value, dict):
        return e_map([(encode_value(k), encode_value(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return e_list([encode_value(v) for v in value])
    raise TypeError(f"cannot encode {type(value).__name__} as AMQP")


def e_message_id(value: Any) -> bytes:
    """A message-id / correlation-id echoed in its own type (ulong, uuid, binary or string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return e_ulong(value)
    return encode_value(value)


# ---- performatives ----------------------------------------------------------------------------

OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44
_ERROR, _ACCEPTED, _REJECTED = 0x1D, 0x24, 0x25
_SOURCE, _TARGET = 0x28, 0x29
_SECTION_CODES = {
    "amqp:header:list": 0x70,
    "amqp:delivery-annotations:map": 0x71,
    "amqp:message-annotations:map": 0x72,
    "amqp:properties:list": 0x73,
    "amqp:application-properties:map": 0x74,
    "amqp:data:binary": 0x75,
    "amqp:amqp-sequence:list": 0x76,
    "amqp:amqp-value:*": 0x77,
    "amqp:footer:map": 0x78,
}
_PERFORMATIVE_CODES = {
    "amqp:open:list": OPEN,
    "amqp:begin:list": BEGIN,
    "amqp:attach:list": ATTACH,
    "amqp:flow:list": FLOW,
    "amqp:transfer:list": TRANSFER,
    "amqp:disposition:list": DISPOSITION,
    "amqp:detach:list": DETACH,
    "amqp:end:list": END,
    "amqp:close:list": CLOSE,
    "amqp:sasl-init:list": SASL_INIT,
}


def _code_of(descriptor: Any, names: dict[str, int]) -> int:
    if isinstance(descriptor, int):
        return descriptor
    return names.get(str(descriptor), -1)


def performative(code: int, *fields: bytes) -> bytes:
    """A performative body with every field present (the SDK indexes them)."""
    body = b"".join(fields)
    if len(body) < 255:
        return bytes((0x00, 0x53, code, 0xC0, len(body) + 1, len(fields))) + body
    return bytes((0x00, 0x53, code, 0xD0)) + _U32X2.pack(len(body) + 4, len(fields)) + body


def frame(channel: int, body: bytes, frame_type: int = 0) -> bytes:
    return _FRAME_HEAD.pack(8 + len(body), 2, frame_type, channel) + body


def e_error(condition: str, description: str, info: dict[str, Any] | None = None) -> bytes:
    info_bytes = e_map([(e_sym(k), encode_value(v)) for k, v in info.items()]) if info else NULL
    return performative(_ERROR, e_sym(condition), e_str(description), info_bytes)


ACCEPTED = e_described(_ACCEPTED, b"\x45")


def rejected(condition: str, description: str, info: dict[str, Any] | None = None) -> bytes:
    return e_described(_REJECTED, e_list([e_error(condition, description, info)]))


def _field(fields: list[Any], index: int, default: Any = None) -> Any:
    if index < len(fields):
        value = fields[index]
        return default if value is None else value
    return default


# ==== messages =================================================================================


class Message(NamedTuple):
    """The parts of one decoded AMQP message that the stand-in keeps or answers from."""

    body: bytes
    application_properties: dict[Any, Any]
    annotations: dict[Any, Any]
    properties: list[Any]
    data: list[bytes]
    value: Any


_NO_PROPS: list[Any] = []


def decode_message(data: bytes) -> Message:
    """Split an encoded message into its sections; the body is the data sections joined."""
    pos = 0
    end = len(data)
    app: dict[Any, Any] = {}
    ann: dict[Any, Any] = {}
    props: list[Any] = _NO_PROPS
    parts: list[bytes] = []
    value: Any = None
    has_value = False
    sequence: list[Any] = []
    table = _DECODERS
    try:
        while pos < end:
            if data[pos] != 0x00:
                raise DecodeError(f"message section at offset {pos} is not a described value")
            ctor = data[pos + 1]
            if ctor == 0x53:
                code = data[pos + 2]
                pos += 3
            else:
                descriptor, pos = decode_value(data, pos + 1)
                code = _code_of(descriptor, _SECTION_CODES)
            fn = table[data[pos]]
            if fn is None:
                raise DecodeError(f"unknown constructor 0x{data[pos]:02x} at offset {pos}")
            section, pos = fn(data, pos + 1)
            if code == 0x75:
                if not isinstance(section, bytes):
                    raise DecodeError("a data section must hold binary")
                parts.append(section)
            elif code == 0x74:
                if not isinstance(section, dict):
                    raise DecodeError("application-properties must be a map")
                app = section
            elif code == 0x72:
                if not isinstance(section, dict):
                    raise DecodeError("message-annotations must be a map")
                ann = section
            elif code == 0x73:
                if not isinstance(section, list):
                    raise DecodeError("properties must be a list")
                props = section
            elif code == 0x77:
                value = section
                has_value = True
            elif code == 0x76:
                sequence.append(section)
            elif code not in (0x70, 0x71, 0x78):
                raise DecodeError(f"unknown message section 0x{code:02x}")
    except (IndexError, struct.error) as exc:
        raise DecodeError("message runs past the end of its delivery") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string is not valid UTF-8: {exc}") from exc
    if parts:
        body = parts[0] if len(parts) == 1 else b"".join(parts)
    elif has_value:
        body = _value_body(value)
    elif sequence:
        body = orjson.dumps(sequence, default=_jsonable)
    else:
        body = b""
    return Message(body, app, ann, props, parts, value)


def _value_body(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return orjson.dumps(value, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, Described):
        return {"descriptor": _jsonable(value.descriptor), "value": value.value}
    raise TypeError


_BROKER_NAMES = {
    0: "MessageId",
    2: "To",
    3: "Label",
    4: "ReplyTo",
    5: "CorrelationId",
    6: "ContentType",
}


def incoming_event(message: Message, batch_key: str | None = None) -> IncomingEvent:
    """The stored form, shaped like the REST face's: UserProperties, BrokerProperties, key.

    Values keep their AMQP types (binary, UUID, timestamp, symbol …) so consumers get them back
    as sent; the JSON readback shows them with ``store.plain_value``.
    """
    user = {str(k): v for k, v in message.application_properties.items()}
    key = batch_key
    broker: dict[str, Any] = {}
    for name, raw in message.annotations.items():
        if name == PARTITION_KEY:
            if isinstance(raw, str):
                key = str(raw)
        else:
            broker[str(name)] = raw
    if key is not None:
        broker["PartitionKey"] = key
    props = message.properties
    if props:
        for index, name in _BROKER_NAMES.items():
            if index < len(props) and props[index] is not None:
                broker[name] = props[index]
    return IncomingEvent(message.body, user, broker, key)


def decode_delivery(payload: bytes, message_format: int) -> tuple[list[IncomingEvent], str | None]:
    """The events of one delivery and the batch's partition key (a batch lands in one place)."""
    outer = decode_message(payload)
    key = outer.annotations.get(PARTITION_KEY)
    key = str(key) if isinstance(key, str) else None
    if message_format != BATCH_FORMAT:
        return [incoming_event(outer)], key
    if not outer.data:
        raise DecodeError("batch is empty (no data sections)")
    events = [incoming_event(decode_message(part), key) for part in outer.data]
    return events, key


# ==== the face =================================================================================


@dataclass(slots=True)
class _Link:
    """One attached link, from the stand-in's side."""

    name: str
    remote_handle: int
    handle: int
    receiving: bool  # True: the client sends on it
    kind: str  # "events", "cbs", "management", "reply", "consumer"
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
    decision: FaultDecision = NO_FAULT
    # replies waiting for credit
    pending: list[bytes] = field(default_factory=list)
    # a consumer link: what it reads (consumer.Reader) and whether the client asked to drain
    reader: Reader | None = None
    drain: bool = False


@dataclass(slots=True)
class _Session:
    remote_channel: int
    channel: int
    next_incoming_id: int
    next_outgoing_id: int = 0  # transfer-id: counts transfer frames, as windows do
    next_delivery_id: int = 0
    remote_incoming_window: int = 0
    links: dict[int, _Link] = field(default_factory=dict)  # by the client's handle
    detaching: set[int] = field(default_factory=set)  # client handles we detached
    handles: Iterator[int] = field(default_factory=lambda: iter(range(1 << 32)))


class _Pause(Exception):
    """Raised by a handler that scheduled its own continuation (a fault's delay)."""


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
        self.connections: set[AmqpConnection] = set()
        self.consumer_groups = list(consumer_groups or (DEFAULT_CONSUMER_GROUP,))
        self.readers = Readers()
        # Consumers that have read everything, by (hub lower-cased, partition): woken on append.
        self.waiting: dict[tuple[str, str], set[Reader]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        store.on_append(self.appended)

    def protocol(self) -> asyncio.Protocol:
        return AmqpConnection(self)

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


class AmqpConnection(asyncio.Protocol):
    """One client connection: SASL, then AMQP frames, processed in arrival order."""

    def __init__(self, face: AmqpFace) -> None:
        self.face = face
        self.store = face.store
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.stage = "header"  # header → sasl → amqp-header → amqp
        self.closed = False
        self.paused = False
        self.sessions: dict[int, _Session] = {}  # by the client's channel
        self.scopes: dict[str, int] = {}  # hub (lower-case, "" = namespace) → token expiry
        self.remote_max_frame = 512
        self.resume_timer: asyncio.TimerHandle | None = None  # a fault's delay
        self.beat_timer: asyncio.TimerHandle | None = None  # heartbeats
        self.peer = "?"
        self.last_write = time.monotonic()
        self.out_size = 0
        self.write_paused = False  # the transport's buffer is over its high-water mark

    # ---- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Consumers stop being served while this much is unsent, so a slow reader costs a
        # bounded buffer (the link credit alone would allow credit × message size).
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self.face.connections.add(self)
        if self.face.loop is None:
            self.face.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.face.connections.discard(self)
        for session in self.sessions.values():
            self.release_links(session)
        for timer in (self.resume_timer, self.beat_timer):
            if timer is not None:
                timer.cancel()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closed:
            return
        for session in list(self.sessions.values()):
            for link in list(session.links.values()):
                if link.reader is not None:
                    self.pump(session, link)
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
                size, doff, frame_type, channel = _FRAME_HEAD.unpack_from(buf, pos)
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
                except _Pause:
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
        raise _Pause

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
        if _code_of(descriptor, _PERFORMATIVE_CODES) != SASL_INIT:
            raise DecodeError("expected sasl-init")
        mechanism = str(_field(fields, 0, ""))
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
            code = _code_of(descriptor, _PERFORMATIVE_CODES)
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

    def session(self, channel: int) -> _Session | None:
        """The session on ``channel``; None for frames that crossed our reply to its end."""
        session = self.sessions.get(channel)
        if session is None:
            log.debug("ignored a frame on channel %s, which has no session", channel)
        return session

    def on_open(self, fields: list[Any]) -> None:
        self.remote_max_frame = max(512, int(_field(fields, 2, 4294967295)))
        channel_max = int(_field(fields, 3, 65535))
        idle_ms = int(_field(fields, 4, 0))
        self.send(
            0,
            performative(
                OPEN,
                e_str(CONTAINER_ID),
                NULL,  # hostname
                e_uint(self.face.max_frame_size),
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

    def on_begin(self, channel: int, fields: list[Any]) -> None:
        if channel in self.sessions:
            raise DecodeError(f"begin on channel {channel}, which already has a session")
        session = _Session(
            remote_channel=channel,
            channel=channel,
            next_incoming_id=int(_field(fields, 1, 0)),
            remote_incoming_window=int(_field(fields, 2, 0)),
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

    # ---- links --------------------------------------------------------------------------------

    def on_attach(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        name = str(_field(fields, 0, ""))
        remote_handle = int(_field(fields, 1, 0))
        client_is_receiver = bool(_field(fields, 2, False))
        snd_mode = int(_field(fields, 3, 2))
        rcv_mode = int(_field(fields, 4, 0))
        source = _terminus(_field(fields, 5))
        target = _terminus(_field(fields, 6))
        initial_count = int(_field(fields, 9, 0))
        link = _Link(
            name=name,
            remote_handle=remote_handle,
            handle=next(session.handles),
            receiving=not client_is_receiver,
            kind="events",
            delivery_count=0 if client_is_receiver else initial_count,
        )
        refusal: tuple[str, str] | None = None
        displaced: list[Reader] = []
        if client_is_receiver:
            node = source.get("address") or ""
            if node in ("$cbs", "$management"):
                link.kind, link.node = "reply", node
            else:
                refusal, displaced = self.bind_consumer_link(session, link, node, source, fields)
                if refusal is None:
                    snd_mode = 1  # settled: Event Hubs deliveries need no disposition
        else:
            node = target.get("address") or ""
            if node in ("$cbs", "$management"):
                link.kind = "cbs" if node == "$cbs" else "management"
                link.node = node
            else:
                refusal = self.bind_events_link(link, node)
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
                _e_source(source),
                _e_target(target),
                NULL,  # unsettled
                FALSE,  # incomplete-unsettled
                NULL if link.receiving else e_uint(0),  # initial-delivery-count
                e_ulong(self.face.max_batch_bytes),
                e_array("symbol", [RUNTIME_METRIC])  # offered-capabilities
                if link.reader is not None and link.reader.runtime_metric
                else NULL,
                NULL,  # desired-capabilities
                NULL,  # properties
            ),
        )
        if refusal is not None:
            session.links.pop(remote_handle, None)
            session.detaching.add(remote_handle)
            self.send(
                session.channel,
                performative(DETACH, e_uint(link.handle), TRUE, e_error(*refusal)),
            )
            log.info("refused link %r (%s) from %s: %s", name, node, self.peer, refusal[1])
            return
        if link.receiving:
            link.credit = LINK_CREDIT
            self.send_flow(session, link)
        elif link.reader is not None:
            for other in displaced:  # after our attach, so the new link is known first
                other.conn.steal(other, link.reader)
            log.info(
                "consumer link %r from %s reads %s/%s (group %s) from sequence number %s",
                name[:100],
                self.peer,
                link.reader.hub,
                link.reader.partition,
                link.reader.consumer_group,
                link.reader.next_sequence,
            )

    def bind_consumer_link(
        self,
        session: _Session,
        link: _Link,
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
                _field(fields, 13),
                _field(fields, 12),
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
        session.links.pop(link.remote_handle, None)
        session.detaching.add(link.remote_handle)
        mine = (
            "no owner level" if reader.owner_level is None else f"owner level {reader.owner_level}"
        )
        error = e_error(
            "amqp:link:stolen",
            f"New receiver '{by.name[:100]}' with owner level {by.owner_level} took partition "
            f"{by.partition!r} of event hub {by.hub!r} (consumer group {by.consumer_group!r}) "
            f"from receiver '{reader.name[:100]}' with {mine}",
        )
        self.send(session.channel, performative(DETACH, e_uint(link.handle), TRUE, error))
        self.flush()
        log.info(
            "receiver %r from %s lost its partition to %r",
            reader.name[:100],
            self.peer,
            by.name[:100],
        )

    def release_links(self, session: _Session) -> None:
        for link in session.links.values():
            if link.reader is not None:
                self.face.release(link.reader)

    def bind_events_link(self, link: _Link, address: str) -> tuple[str, str] | None:
        """Point a sending link at its hub (and partition); the reason if it cannot be."""
        entity = parse_entity(address)
        if entity is None:
            return "amqp:not-found", f"{address!r} is not an event hub (HUB or HUB/Partitions/N)"
        hub_name, partition = entity
        try:
            hub = self.store.hub(hub_name)
        except UnknownHub:
            return "amqp:not-found", f"event hub {hub_name!r} does not exist in this namespace"
        if partition is not None and partition not in hub.partition_ids:
            return (
                "amqp:not-found",
                f"event hub {hub.name!r} has no partition {partition!r} "
                f"(partitions: {', '.join(hub.partition_ids)})",
            )
        if not self.authorized(hub.name):
            return (
                "amqp:unauthorized-access",
                f"no valid token for event hub {hub.name!r} on this connection "
                "(put one on $cbs first)",
            )
        link.hub = hub.name
        link.partition = partition
        return None

    def authorized(self, hub: str) -> bool:
        now = time.time()
        for scope in (hub.lower(), ""):
            expiry = self.scopes.get(scope)
            if expiry is not None and expiry > now:
                return True
        return False

    def on_detach(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        handle = int(_field(fields, 0, 0))
        link = session.links.pop(handle, None)
        if link is None:
            session.detaching.discard(handle)  # the answer to our own detach
            return
        if link.reader is not None:
            self.face.release(link.reader)
        closed = bool(_field(fields, 1, False))
        self.send(session.channel, performative(DETACH, e_uint(link.handle), e_bool(closed), NULL))

    def on_flow(self, channel: int, fields: list[Any]) -> None:
        session = self.session(channel)
        if session is None:
            return
        next_incoming = _field(fields, 0)
        window = int(_field(fields, 1, 0))
        start = session.next_outgoing_id if next_incoming is None else int(next_incoming)
        session.remote_incoming_window = start + window - session.next_outgoing_id
        handle = _field(fields, 4)
        if handle is None:
            self.drain_replies(session)
            self.pump_session(session)
            return
        link = session.links.get(int(handle))
        if link is None:
            return
        echo = bool(_field(fields, 9, False))
        if link.receiving:
            if echo:
                self.send_flow(session, link)
            return
        delivery_count = int(_field(fields, 5, 0))
        credit = int(_field(fields, 6, 0))
        link.credit = delivery_count + credit - link.delivery_count
        if link.reader is not None:
            link.drain = bool(_field(fields, 8, False))
            self.pump_session(session)  # the session window may have opened for its siblings
            if echo:
                self.send_flow(session, link)
            return
        self.drain_replies(session)
        if bool(_field(fields, 8, False)) and not link.pending and link.credit > 0:
            link.delivery_count += link.credit
            link.credit = 0
            echo = True
        if echo:
            self.send_flow(session, link)

    def send_flow(self, session: _Session, link: _Link) -> None:
        reader = link.reader
        available = len(link.pending)
        if reader is not None:
            available = max(
                self.store.end_of(reader.hub, reader.partition) - reader.next_sequence, 0
            )
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

    # ---- consumers: events out, as far as credit, window and the socket allow -----------------

    def pump_session(self, session: _Session) -> None:
        for link in list(session.links.values()):
            if link.reader is not None:
                self.pump(session, link)

    def pump(self, session: _Session, link: _Link) -> None:
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

    def pump_later(self, session: _Session, link: _Link) -> None:
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

    # ---- transfers ----------------------------------------------------------------------------

    def on_transfer(self, channel: int, fields: list[Any], payload: bytes) -> None:
        session = self.session(channel)
        if session is None:
            return
        handle = int(_field(fields, 0, -1))
        link = session.links.get(handle)
        if link is None and handle in session.detaching:
            return  # frames already in flight when we detached the link
        if link is None or not link.receiving:
            raise DecodeError(f"transfer on handle {handle}, which is not attached for sending")
        if link.delivery_id is None:
            delivery_id = _field(fields, 1)
            if delivery_id is None:
                raise DecodeError("the first transfer of a delivery must carry its delivery-id")
            link.delivery_id = int(delivery_id)
            link.delivery_tag = bytes(_field(fields, 2, b""))
            link.message_format = int(_field(fields, 3, 0))
            link.settled = bool(_field(fields, 4, False))
            session.next_incoming_id = link.delivery_id + 1
            if link.kind == "events":
                link.decision = self.face.faults.decide("amqp", link.hub, "send")
                decision = link.decision
                if decision.drop == "after_headers" and not decision.delay_ms:
                    self.dropped(decision, f"transfer to {link.hub}")
                    return
        if bool(_field(fields, 9, False)):  # aborted
            self.reset_delivery(link)
            return
        link.chunks.append(payload)
        link.size += len(payload)
        if link.size > self.face.hard_delivery_limit:
            self.reset_delivery(link)
            session.links.pop(link.remote_handle, None)
            session.detaching.add(link.remote_handle)
            error = e_error(
                "amqp:link:message-size-exceeded",
                f"delivery is over {self.face.hard_delivery_limit} bytes; the limit is "
                f"{self.face.max_batch_bytes} bytes per publication",
            )
            self.send(session.channel, performative(DETACH, e_uint(link.handle), TRUE, error))
            self.store.count_request("amqp", 413)
            return
        if bool(_field(fields, 5, False)):  # more
            return
        data = link.chunks[0] if len(link.chunks) == 1 else b"".join(link.chunks)
        delivery = (link.delivery_id, link.delivery_tag, link.message_format, link.settled)
        decision = link.decision
        self.reset_delivery(link)
        link.delivery_count += 1
        if link.receiving and link.credit > 0:
            link.credit -= 1
        if link.credit < LINK_CREDIT // 2:
            link.credit = LINK_CREDIT
            self.send_flow(session, link)
        if link.kind == "events":
            if decision.delay_ms:
                self.store.count_fault("delay")
                self.pause(
                    decision.delay_ms,
                    lambda: self.deliver_events(session, link, delivery, data, decision),
                )
            self.deliver_events(session, link, delivery, data, decision)
        else:
            self.on_request(session, link, delivery, data)

    @staticmethod
    def reset_delivery(link: _Link) -> None:
        link.chunks = []
        link.size = 0
        link.delivery_id = None
        link.decision = NO_FAULT

    def settle(self, session: _Session, delivery_id: int, state: bytes) -> None:
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

    def dropped(self, decision: FaultDecision, what: str) -> None:
        self.store.count_fault(decision.kind)
        self.store.count_request("amqp", 0)
        log.debug("fault: dropped AMQP connection from %s (%s)", self.peer, what)
        self.abort()

    def deliver_events(
        self,
        session: _Session,
        link: _Link,
        delivery: tuple[int, bytes, int, bool],
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
        status, outcome = self.accept(link, data, message_format)
        self.store.count_request("amqp", status)
        if status != 201:
            log.info("rejected AMQP delivery to %s: %s", link.hub, outcome[1])
        if not presettled:
            state = ACCEPTED if status == 201 else rejected(*outcome)
            self.settle(session, delivery_id, state)

    def accept(self, link: _Link, data: bytes, message_format: int) -> tuple[int, tuple[str, str]]:
        """Check and store one delivery: (status as REST would say it, (condition, reason))."""
        if not self.authorized(link.hub):
            return 401, (
                "amqp:unauthorized-access",
                f"the token for event hub {link.hub!r} on this connection has expired",
            )
        if len(data) > self.face.max_batch_bytes:
            return 413, (
                "amqp:link:message-size-exceeded",
                f"message of {len(data)} bytes exceeds the maximum of "
                f"{self.face.max_batch_bytes} bytes per publication",
            )
        if message_format not in (0, BATCH_FORMAT):
            return 400, ("amqp:not-implemented", f"message format {message_format:#x} is unknown")
        try:
            events, key = decode_delivery(data, message_format)
        except DecodeError as exc:
            return 400, ("amqp:decode-error", f"message cannot be decoded: {exc}")
        try:
            hub = self.store.hub(link.hub)
        except UnknownHub:
            return 404, ("amqp:not-found", f"event hub {link.hub!r} no longer exists")
        for index, event in enumerate(events):
            if (
                event.partition_key is not None
                and key_length(event.partition_key) > MAX_PARTITION_KEY
            ):
                return 400, (
                    "amqp:invalid-field",
                    f"event[{index}]'s partition key is {key_length(event.partition_key)} "
                    f"characters; the limit is {MAX_PARTITION_KEY}",
                )
        try:
            self.store.append(
                hub.name,
                events,
                "amqp",
                partition_id=self.placement(hub, link, key, message_format),
            )
        except StoreFull as exc:
            # The service's answer to a full entity: QuotaExceeded, amqp:resource-limit-exceeded.
            return 403, ("amqp:resource-limit-exceeded", f"QuotaExceeded: {exc}")
        return 201, ("", "")

    @staticmethod
    def placement(hub: Hub, link: _Link, key: str | None, message_format: int) -> str | None:
        """The link's partition, else the batch key's, else one round-robin pick per batch."""
        if link.partition is not None:
            return link.partition
        if message_format != BATCH_FORMAT:
            return None  # one message: the store places it by its key or round-robin
        if key is not None:
            return partition_for_key(key, hub.partition_ids)
        return hub.next_round_robin()

    # ---- $cbs and $management -----------------------------------------------------------------

    def on_request(
        self, session: _Session, link: _Link, delivery: tuple[int, bytes, int, bool], data: bytes
    ) -> None:
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
            code, text, body = self.management(request)
            # Event Hubs answers with status-code / status-description; the SDK (5.15) reads
            # the description under statusDescription, so it goes under both names.
            status = {"status-code": code, "status-description": text, "statusDescription": text}
            self.reply(session, link.node, message_id, status, body)

    def put_token(self, session: _Session, node: str, request: Message, message_id: Any) -> None:
        props = request.application_properties
        audience = str(props.get("name") or "")
        hub = resource_hub(audience) if audience else None
        decision = self.face.faults.decide("amqp", hub, "auth")

        def finish() -> None:
            code, text = self.check_token(request, hub, decision)
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

    def check_token(
        self, request: Message, hub: str | None, decision: FaultDecision
    ) -> tuple[int, str]:
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
        addressed = urlsplit(audience).netloc if "://" in audience else None
        try:
            parsed = self.face.auth.check(token, hub or "", namespace=addressed)
        except TokenError as exc:
            log.info("refused put-token from %s: %s", self.peer, exc)
            return 401, f"authorization failed: {exc}"
        if hub is not None:
            try:
                self.store.hub(hub)
            except UnknownHub:
                return 404, f"event hub {hub!r} does not exist in this namespace"
        self.scopes[hub or ""] = parsed.expiry
        return 202, "Accepted"

    def management(self, request: Message) -> tuple[int, str, Any]:
        """READ com.microsoft:eventhub / com.microsoft:partition: (status, text, body)."""
        props = request.application_properties
        operation = props.get("operation")
        kind = props.get("type")
        name = str(props.get("name") or "")
        if operation != "READ":
            return 501, f"operation {operation!r} is not supported (only READ)", None
        token = props.get("security_token")
        try:
            if isinstance(token, str):
                self.face.auth.check(token, name)
            elif not self.authorized(name):
                return 401, f"no valid token for event hub {name!r} on this connection", None
        except TokenError as exc:
            return 401, f"authorization failed: {exc}", None
        try:
            hub = self.store.hub(name)
        except UnknownHub:
            return 404, f"event hub {name!r} does not exist in this namespace", None
        if kind == "com.microsoft:eventhub":
            return (
                200,
                "OK",
                {
                    "name": hub.name,
                    "type": "com.microsoft:eventhub",
                    "created_at": Timestamp(hub.created_at // 1_000_000),
                    "partition_count": len(hub.partition_ids),
                    "partition_ids": Array("string", list(hub.partition_ids)),
                },
            )
        if kind == "com.microsoft:partition":
            partition = str(props.get("partition") or "")
            if partition not in hub.partition_ids:
                return 404, f"event hub {hub.name!r} has no partition {partition!r}", None
            info = self.store.partition_info(hub.name, partition)
            return (
                200,
                "OK",
                {
                    "name": hub.name,
                    "type": "com.microsoft:partition",
                    "partition": partition,
                    "begin_sequence_number": info.begin_sequence_number,
                    "last_enqueued_sequence_number": info.last_enqueued_sequence_number,
                    "last_enqueued_offset": str(info.last_enqueued_offset),
                    "last_enqueued_time_utc": Timestamp(info.last_enqueued_time // 1_000_000),
                    "is_partition_empty": info.is_empty,
                },
            )
        return 400, f"unknown management type {kind!r}", None

    def reply(
        self,
        session: _Session,
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
        properties = performative(
            0x73,
            NULL,  # message-id
            NULL,  # user-id
            NULL,  # to
            NULL,  # subject
            NULL,  # reply-to
            e_message_id(correlation_id),
            NULL,
            NULL,
            NULL,
            NULL,
            NULL,
            NULL,
            NULL,
        )
        app = e_described(0x74, e_map([(e_str(k), encode_value(v)) for k, v in status.items()]))
        message = properties + app
        if body is not None:
            message += e_described(0x77, encode_value(body))
        link.pending.append(message)
        self.drain_replies(session)

    def drain_replies(self, session: _Session) -> None:
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

    def transfer(
        self, session: _Session, link: _Link, message: bytes, settled: bool = True
    ) -> None:
        """Send one message, split over frames if the client's frames are small.

        Each frame is one transfer-id (what session windows count); the delivery-id counts
        messages.
        """
        delivery_id = session.next_delivery_id
        session.next_delivery_id += 1
        link.delivery_count += 1
        link.credit -= 1
        tag = _U32.pack(link.delivery_count & 0xFFFFFFFF)
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


# ---- addresses and termini --------------------------------------------------------------------


def parse_entity(address: str) -> tuple[str, str | None] | None:
    """``HUB`` → (HUB, None); ``HUB/Partitions/N`` → (HUB, N); URLs use their path."""
    path = urlsplit(address).path if "://" in address else address
    parts = [unquote(part) for part in path.split("/") if part]
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 3 and parts[1].lower() == "partitions":
        return parts[0], parts[2]
    return None


def _terminus(value: Any) -> dict[str, Any]:
    fields = value.value if isinstance(value, Described) else value
    if not isinstance(fields, list):
        return {}
    address = fields[0] if fields else None
    found: dict[str, Any] = {"address": str(address) if isinstance(address, str) else None}
    filters = _field(fields, 7)
    if isinstance(filters, dict) and filters:
        found["filter"] = filters
    return found


def _e_address(terminus: dict[str, Any]) -> bytes:
    address = terminus.get("address")
    return e_str(address) if isinstance(address, str) else NULL


def _e_source(terminus: dict[str, Any]) -> bytes:
    return performative(
        _SOURCE,
        _e_address(terminus),
        e_uint(0),  # durable: none
        e_sym("session-end"),
        e_uint(0),  # timeout
        FALSE,  # dynamic
        NULL,  # dynamic-node-properties
        NULL,  # distribution-mode
        _e_filter(terminus.get("filter")),
        NULL,  # default-outcome
        NULL,  # outcomes
        NULL,  # capabilities
    )


def _e_filter(filters: Any) -> bytes:
    """The filter set echoed as the client sent it (a consumer's start position)."""
    if not filters:
        return NULL
    try:
        return encode_value(filters)
    except (TypeError, struct.error):
        return NULL


def _e_target(terminus: dict[str, Any]) -> bytes:
    return performative(
        _TARGET,
        _e_address(terminus),
        e_uint(0),
        e_sym("session-end"),
        e_uint(0),
        FALSE,
        NULL,
        NULL,
    )


# Imported last: the consumer module (Event Hubs' receive side) builds on this module's codec.
# Issue 14 moves the codec to its own module, which ends the cycle.
from audiencehub.emulator.consumer import (  # noqa: E402
    DEFAULT_CONSUMER_GROUP,
    RUNTIME_METRIC,
    LinkRefused,
    Reader,
    Readers,
    open_reader,
    parse_consumer_address,
)
