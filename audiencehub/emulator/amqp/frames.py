"""AMQP 1.0 frames and performatives: protocol headers, the frame header, performative bodies,
outcomes, errors and link termini.

Why every performative carries every field: the SDK's pure-Python client reads optional fields by
index (``frame[10]``, ``frame[13]``) and fails with IndexError when a peer leaves trailing nulls
out, as Qpid Proton does. Performatives always use list8/list32.
"""

from __future__ import annotations

import struct
from typing import Any

from audiencehub.emulator.amqp.codec import (
    FALSE,
    NULL,
    U32X2,
    Described,
    e_described,
    e_list,
    e_map,
    e_str,
    e_sym,
    e_uint,
    encode_value,
)

__all__ = [
    "ACCEPTED",
    "AMQP_HEADER",
    "FRAME_HEAD",
    "PERFORMATIVE_CODES",
    "SASL_HEADER",
    "SECTION_CODES",
    "code_of",
    "e_error",
    "e_source",
    "e_target",
    "frame",
    "get_field",
    "performative",
    "rejected",
    "terminus",
]

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
FRAME_HEAD = struct.Struct(">IBBH")

OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44
_ERROR, _ACCEPTED, _REJECTED = 0x1D, 0x24, 0x25
_SOURCE, _TARGET = 0x28, 0x29
SECTION_CODES = {
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
PERFORMATIVE_CODES = {
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


def code_of(descriptor: Any, names: dict[str, int]) -> int:
    if isinstance(descriptor, int):
        return descriptor
    return names.get(str(descriptor), -1)


def performative(code: int, *fields: bytes) -> bytes:
    """A performative body with every field present (the SDK indexes them)."""
    body = b"".join(fields)
    if len(body) < 255:
        return bytes((0x00, 0x53, code, 0xC0, len(body) + 1, len(fields))) + body
    return bytes((0x00, 0x53, code, 0xD0)) + U32X2.pack(len(body) + 4, len(fields)) + body


def frame(channel: int, body: bytes, frame_type: int = 0) -> bytes:
    return FRAME_HEAD.pack(8 + len(body), 2, frame_type, channel) + body


def e_error(condition: str, description: str, info: dict[str, Any] | None = None) -> bytes:
    info_bytes = e_map([(e_sym(k), encode_value(v)) for k, v in info.items()]) if info else NULL
    return performative(_ERROR, e_sym(condition), e_str(description), info_bytes)


ACCEPTED = e_described(_ACCEPTED, b"\x45")


def rejected(condition: str, description: str, info: dict[str, Any] | None = None) -> bytes:
    return e_described(_REJECTED, e_list([e_error(condition, description, info)]))


def get_field(fields: list[Any], index: int, default: Any = None) -> Any:
    if index < len(fields):
        value = fields[index]
        return default if value is None else value
    return default


def terminus(value: Any) -> dict[str, Any]:
    fields = value.value if isinstance(value, Described) else value
    if not isinstance(fields, list):
        return {}
    address = fields[0] if fields else None
    found: dict[str, Any] = {"address": str(address) if isinstance(address, str) else None}
    filters = get_field(fields, 7)
    if isinstance(filters, dict) and filters:
        found["filter"] = filters
    return found


def _e_address(terminus: dict[str, Any]) -> bytes:
    address = terminus.get("address")
    return e_str(address) if isinstance(address, str) else NULL


def e_source(terminus: dict[str, Any]) -> bytes:
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


def e_target(terminus: dict[str, Any]) -> bytes:
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
