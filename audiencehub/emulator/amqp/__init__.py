"""The AMQP 1.0 protocol as the hub stand-in speaks it: the subset the azure-eventhub SDK uses.

By layer, each knowing only the ones above it in this list:

- ``codec``: AMQP types on the wire (decode_value, encode_value, one ``e_*`` per type);
- ``frames``: protocol headers, the frame header, performatives, outcomes, termini;
- ``message``: one message split into its sections;
- ``connection``: headers, SASL ANONYMOUS, open / close, heartbeats, the frame loop;
- ``links``: sessions and links (begin / attach / flow / transfer / disposition / detach / end).

Nothing here knows Event Hubs: ``amqp_face.py`` gives links their meaning ($cbs tokens,
``$management``, sending to a hub, reading a partition).
"""

from audiencehub.emulator.amqp.codec import (
    FALSE,
    NULL,
    TRUE,
    Array,
    DecodeError,
    Described,
    Symbol,
    Timestamp,
    decode_value,
    e_array,
    e_bin,
    e_bool,
    e_described,
    e_int,
    e_list,
    e_long,
    e_map,
    e_message_id,
    e_str,
    e_sym,
    e_timestamp,
    e_ubyte,
    e_uint,
    e_ulong,
    e_ushort,
    encode_value,
)
from audiencehub.emulator.amqp.frames import (
    ACCEPTED,
    AMQP_HEADER,
    SASL_HEADER,
    e_error,
    frame,
    performative,
    rejected,
)
from audiencehub.emulator.amqp.message import Message, decode_message

__all__ = [
    "ACCEPTED",
    "AMQP_HEADER",
    "FALSE",
    "NULL",
    "SASL_HEADER",
    "TRUE",
    "Array",
    "DecodeError",
    "Described",
    "Message",
    "Symbol",
    "Timestamp",
    "decode_message",
    "decode_value",
    "e_array",
    "e_bin",
    "e_bool",
    "e_described",
    "e_error",
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
    "frame",
    "performative",
    "rejected",
]
