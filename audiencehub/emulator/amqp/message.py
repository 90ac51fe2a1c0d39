"""One AMQP message split into the sections the stand-in keeps or answers from.

The body is the data sections joined; an amqp-value or amqp-sequence body is kept as its JSON
form (bytes and UUIDs readable), so every face stores a body as bytes.
"""

from __future__ import annotations

import base64
import struct
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from audiencehub.emulator.amqp.codec import DECODERS, DecodeError, Described, decode_value
from audiencehub.emulator.amqp.frames import SECTION_CODES, code_of

__all__ = ["Message", "decode_message"]


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
    table = DECODERS
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
                code = code_of(descriptor, SECTION_CODES)
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
