"""AMQP 1.0 types on the wire: a table-driven decoder over ``bytes`` and one encoder per type.

Why its own codec instead of the azure-eventhub SDK's bundled one: the SDK's decoder turns AMQP
string, symbol and binary alike into ``bytes`` (a stored property must stay a string), its
encoder is private API that moves between releases, and a table-driven decoder over ``bytes`` is
several times faster. Two client quirks shape the encoder: the SDK never gets an empty array (it
misreads one, so "none" is sent as null), and compound values use list8/list32.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "DECODERS",
    "FALSE",
    "NULL",
    "TRUE",
    "U32",
    "U32X2",
    "Array",
    "DecodeError",
    "Described",
    "Symbol",
    "Timestamp",
    "decode_value",
    "e_array",
    "e_bin",
    "e_bool",
    "e_described",
    "e_int",
    "e_list",
    "e_long",
    "e_map",
    "e_message_id",
    "e_str",
    "e_sym",
    "e_timestamp",
    "e_ubyte",
    "e_uint",
    "e_ulong",
    "e_ushort",
    "encode_value",
]


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
U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_I8 = struct.Struct(">b")
U32X2 = struct.Struct(">II")


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
    return chr(U32.unpack_from(data, pos)[0]), pos + 4


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
            size = U32.unpack_from(data, pos)[0]
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
            size, count = U32X2.unpack_from(data, pos)
            end = pos + size + 4
            pos += 8
        else:
            size, count = data[pos], data[pos + 1]
            end = pos + size + 1
            pos += 2
        _need(data, end)
        table = DECODERS
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
            size, count = U32X2.unpack_from(data, pos)
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
        fn = DECODERS[ctor]
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


DECODERS: list[_Decoder | None] = [None] * 256
DECODERS[0x00] = _d_described
DECODERS[0x40] = _fixed(None)
DECODERS[0x41] = _fixed(True)
DECODERS[0x42] = _fixed(False)
DECODERS[0x43] = _fixed(0)
DECODERS[0x44] = _fixed(0)
DECODERS[0x45] = lambda data, pos: ([], pos)
DECODERS[0x50] = _d_u8
DECODERS[0x51] = _struct(_I8)
DECODERS[0x52] = _d_u8
DECODERS[0x53] = _d_u8
DECODERS[0x54] = _struct(_I8)
DECODERS[0x55] = _struct(_I8)
DECODERS[0x56] = _d_bool
DECODERS[0x60] = _struct(_U16)
DECODERS[0x61] = _struct(_I16)
DECODERS[0x70] = _struct(U32)
DECODERS[0x71] = _struct(_I32)
DECODERS[0x72] = _struct(_F32)
DECODERS[0x73] = _d_char
DECODERS[0x74] = _raw(4)
DECODERS[0x80] = _struct(_U64)
DECODERS[0x81] = _struct(_I64)
DECODERS[0x82] = _struct(_F64)
DECODERS[0x83] = _struct(_I64, Timestamp)
DECODERS[0x84] = _raw(8)
DECODERS[0x94] = _raw(16)
DECODERS[0x98] = _d_uuid
DECODERS[0xA0] = _variable(False, None)
DECODERS[0xA1] = _variable(False, _utf8)
DECODERS[0xA3] = _variable(False, _symbol)
DECODERS[0xB0] = _variable(True, None)
DECODERS[0xB1] = _variable(True, _utf8)
DECODERS[0xB3] = _variable(True, _symbol)
DECODERS[0xC0] = _compound(False, False)
DECODERS[0xC1] = _compound(False, True)
DECODERS[0xD0] = _compound(True, False)
DECODERS[0xD1] = _compound(True, True)
DECODERS[0xE0] = _array(False)
DECODERS[0xF0] = _array(True)


def decode_value(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode the value at ``pos``; returns (value, position after it). Raises DecodeError."""
    try:
        fn = DECODERS[data[pos]]
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
    return b"\x70" + U32.pack(value)


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
    return bytes((large,)) + U32.pack(n) + raw


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
    return b"\xd0" + U32X2.pack(len(body) + 4, len(items)) + body


def e_map(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(k + v for k, v in pairs)
    count = 2 * len(pairs)
    if len(body) < 255 and count < 256:
        return bytes((0xC1, len(body) + 1, count)) + body
    return b"\xd1" + U32X2.pack(len(body) + 4, count) + body


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
        elements = b"".join(U32.pack(len(r)) + r for r in raws)
    body = bytes((ctor,)) + elements
    if len(body) < 255 and len(raws) < 256:
        return bytes((0xE0, len(body) + 1, len(raws))) + body
    return b"\xf0" + U32X2.pack(len(body) + 4, len(raws)) + body


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
