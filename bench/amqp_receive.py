"""AMQP receive rate: events/s an unmodified SDK consumer reads from the hub stand-in.

Starts ``python -m audiencehub.emulator`` and fills one partition over REST with ~430-byte JSON
envelopes, each with its partition key and idempotency property (what an export job sends).
Then, in the same run:

1. **stand-in alone**: a bare AMQP reader (this file; no SDK) gives the link credit for every
   event and only splits what arrives into frames: the stand-in's own sending rate. It keeps the
   frames.
2. **SDK decode alone** (the baseline): those very frames through the SDK's decoder
   (``decode_frame``, ``decode_payload``) into ``EventData``, with no network: the receive cost
   the SDK itself puts on every event, which bounds any SDK consumer.
3. **SDK consumer**: ``EventHubConsumerClient.receive(partition_id=…, starting_position="-1")``,
   counted from its first event to its last, with the CPU of this process and of the stand-in.

Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/amqp_receive.py [--events 60000]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import cpu_seconds, sample_message, start_bench_hub  # noqa: E402
from azure.eventhub import EventData, EventHubConsumerClient  # noqa: E402
from azure.eventhub._pyamqp._decode import decode_frame, decode_payload  # noqa: E402

from audiencehub.emulator.amqp import (  # noqa: E402
    AMQP_HEADER,
    NULL,
    SASL_HEADER,
    TRUE,
    Described,
    Symbol,
    e_bin,
    e_bool,
    e_str,
    e_sym,
    e_uint,
    encode_value,
    frame,
    performative,
)
from workers.delivery.eventhub.connstr import ConnectionString, parse_connection_string  # noqa: E402
from workers.delivery.eventhub.sas import make_token  # noqa: E402

PARTITION = "0"
BATCH = "application/vnd.microsoft.servicebus.json"


def fill(conn: ConnectionString, base: str, count: int) -> int:
    """Post ``count`` events to one partition in ~1 MB batches; returns the body bytes."""
    rng = random.Random(11)
    token = make_token(
        f"https://{conn.namespace}/{conn.hub}", conn.key_name, conn.key, int(time.time()) + 3600
    )
    session = requests.Session()
    url = f"{base}/{conn.hub}/partitions/{PARTITION}/messages"
    sent = size = 0
    while sent < count:
        batch = []
        for n in range(sent, min(sent + 1500, count)):
            user = f"user-{rng.randrange(50_000)}"
            body = sample_message(rng, user, n).decode()
            size += len(body)
            batch.append(
                {
                    "Body": body,
                    "UserProperties": {"idempotency_key": f"job-1:{user}:{n:08d}"},
                    "BrokerProperties": {"PartitionKey": user},
                }
            )
        resp = session.post(
            url, data=orjson.dumps(batch), headers={"Authorization": token, "Content-Type": BATCH}
        )
        resp.raise_for_status()
        sent += len(batch)
    return size


# ---- 1. a bare AMQP reader --------------------------------------------------------------------


class BareReader:
    """SASL ANONYMOUS, open, begin, a put-token on $cbs, one consumer link: frames, undecoded."""

    def __init__(self, conn: ConnectionString) -> None:
        self.sock = socket.create_connection((conn.host, conn.port or 0))
        self.buf = bytearray()
        self.conn = conn

    def send(self, channel: int, body: bytes, frame_type: int = 0) -> None:
        self.sock.sendall(frame(channel, body, frame_type))

    def frames(self) -> Any:
        """Each frame's body (after its header), as the socket delivers them."""
        buf = self.buf
        while True:
            while len(buf) >= 8:
                size, doff = struct.unpack_from(">IB", buf)
                if len(buf) < size:
                    break
                body = bytes(buf[doff * 4 : size])
                del buf[:size]
                yield body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return
            buf += chunk

    def handshake(self) -> Any:
        frames = self.frames()
        self.sock.sendall(SASL_HEADER)
        self._bytes(8)
        next(frames)  # sasl-mechanisms
        self.send(0, performative(0x41, e_sym("ANONYMOUS"), e_bin(b""), NULL), 1)
        next(frames)  # sasl-outcome
        self.sock.sendall(AMQP_HEADER)
        self.send(0, performative(0x10, e_str("bench"), e_str("localhost"), e_uint(1 << 20)))
        self._bytes(8)
        next(frames)  # open
        self.send(1, performative(0x11, NULL, e_uint(0), e_uint(1 << 31), e_uint(100)))
        next(frames)  # begin
        return frames

    def _bytes(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read(self, count: int) -> tuple[float, list[bytes]]:
        """Seconds from the first event to the last, and every transfer frame's body."""
        frames = self.handshake()
        conn = self.conn
        cbs = encode_value(Described(0x29, ["$cbs"]))
        self.send(
            1,
            performative(
                0x12,
                e_str("cbs-out"),
                e_uint(0),
                e_bool(False),
                e_uint(0),
                e_uint(0),
                encode_value(Described(0x28, ["b"])),
                cbs,
                NULL,
                NULL,
                e_uint(0),
            ),
        )
        next(frames), next(frames)  # attach, flow
        self.send(
            1,
            performative(
                0x12,
                e_str("cbs-in"),
                e_uint(1),
                TRUE,
                e_uint(0),
                e_uint(0),
                encode_value(Described(0x28, ["$cbs"])),
                encode_value(Described(0x29, ["b"])),
            ),
        )
        next(frames)
        self.send(
            1,
            performative(
                0x13,
                e_uint(0),
                e_uint(1 << 31),
                e_uint(1),
                e_uint(100),
                e_uint(1),
                e_uint(0),
                e_uint(10),
            ),
        )
        token = make_token(
            f"sb://{conn.namespace}/{conn.hub}", conn.key_name, conn.key, int(time.time()) + 3600
        )
        request = (
            encode_value(Described(0x73, [uuid.uuid4()]))
            + encode_value(
                Described(
                    0x74,
                    {
                        "operation": "put-token",
                        "type": "servicebus.windows.net:sastoken",
                        "name": f"sb://{conn.namespace}/{conn.hub}",
                    },
                )
            )
            + encode_value(Described(0x77, token))
        )
        self.send(1, performative(0x14, e_uint(0), e_uint(0), e_bin(b"t"), e_uint(0)) + request)
        next(frames), next(frames)  # disposition, the answer
        address = f"{conn.hub}/ConsumerGroups/$Default/Partitions/{PARTITION}"
        selector = Symbol("apache.org:selector-filter:string")
        earliest = {selector: Described(selector, "amqp.annotation.x-opt-offset > '-1'")}
        source = Described(
            0x28, [address, 0, Symbol("session-end"), 0, False, None, None, earliest]
        )
        self.send(
            1,
            performative(
                0x12,
                e_str("events"),
                e_uint(2),
                TRUE,
                e_uint(0),
                e_uint(0),
                encode_value(source),
                encode_value(Described(0x29, ["b"])),
            ),
        )
        next(frames)  # attach
        self.send(
            1,
            performative(
                0x13,
                e_uint(2),
                e_uint(1 << 31),
                e_uint(1),
                e_uint(100),
                e_uint(2),
                e_uint(0),
                e_uint(count),
            ),
        )
        got: list[bytes] = []
        first = 0.0
        for body in frames:
            if body[2] != 0x14:
                continue
            if not got:
                first = time.perf_counter()
            got.append(body)
            if len(got) == count:
                break
        return time.perf_counter() - first, got


# ---- 2. the SDK's decoder alone ---------------------------------------------------------------


def sdk_decode(frames: list[bytes]) -> tuple[float, int]:
    """Seconds the SDK's decoder takes to turn the frames into EventData (best of two)."""
    best = float("inf")
    checksum = 0
    for _ in range(2):
        start = time.perf_counter()
        checksum = 0
        for body in frames:
            _, fields = decode_frame(memoryview(body))
            event = EventData._from_message(decode_payload(fields[-1]))
            checksum += event.sequence_number or 0
        best = min(best, time.perf_counter() - start)
    return best, checksum


# ---- 3. the SDK's consumer --------------------------------------------------------------------


def sdk_consume(connection_string: str, count: int) -> tuple[float, float, float]:
    """(connect seconds, seconds from first event to last, this process's CPU seconds)."""
    client = EventHubConsumerClient.from_connection_string(
        connection_string, consumer_group="$Default"
    )
    seen = 0
    first = last = 0.0
    done = threading.Event()

    def on_event(_: Any, event: EventData | None) -> None:
        nonlocal seen, first, last
        if event is None:
            return
        seen += 1
        if seen == 1:
            first = time.perf_counter()
        if seen == count:
            last = time.perf_counter()
            done.set()

    cpu0 = time.process_time()
    start = time.perf_counter()
    worker = threading.Thread(
        target=client.receive,
        kwargs={"on_event": on_event, "partition_id": PARTITION, "starting_position": "-1"},
    )
    worker.start()
    done.wait(600)
    cpu = time.process_time() - cpu0
    client.close()
    worker.join(60)
    return first - start, last - first, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args()
    count = args.events

    hub = start_bench_hub()
    assert hub.proc is not None
    hub_pid = hub.proc.pid
    conn = parse_connection_string(hub.connection_string)
    try:
        body_bytes = fill(conn, hub.base_url, count)
        print(
            f"AMQP receive, {os.cpu_count()} CPU(s) (load average {os.getloadavg()[0]:.1f}), "
            f"{count:,} events of {body_bytes / count:.0f}-byte JSON bodies in one partition, "
            "each with its partition key and idempotency property"
        )
        emu0 = cpu_seconds(hub_pid, children=False)
        reader = BareReader(conn)
        raw_s, frames = reader.read(count)
        reader.sock.close()
        emu_raw = cpu_seconds(hub_pid, children=False) - emu0
        wire = sum(len(f) + 8 for f in frames) / count
        print(
            f"1. stand-in alone (bare reader): {count / raw_s:>9,.0f} events/s "
            f"({wire:.0f} bytes/event on the wire; stand-in CPU {emu_raw / count * 1e6:.0f} "
            "µs/event)"
        )
        decode_s, _ = sdk_decode(frames)
        print(
            f"2. SDK decode alone (baseline):  {count / decode_s:>9,.0f} events/s "
            f"({decode_s / count * 1e6:.0f} µs/event: decode_frame + decode_payload + EventData)"
        )
        emu0 = cpu_seconds(hub_pid, children=False)
        connect_s, read_s, cpu = sdk_consume(hub.connection_string, count)
        emu = cpu_seconds(hub_pid, children=False) - emu0
        rate = count / read_s
        print(
            f"3. SDK consumer:                 {rate:>9,.0f} events/s "
            f"(first event after {connect_s:.2f} s; consumer CPU {cpu / (connect_s + read_s):.0%} "
            f"of a core, {cpu / count * 1e6:.0f} µs/event; stand-in "
            f"{emu / count * 1e6:.0f} µs/event)"
        )
        print(
            f"   → the SDK consumer reaches {rate * decode_s / count:.0%} of what its own decoder "
            f"allows; the stand-in sends {count / raw_s / rate:.1f}× faster than it reads"
        )
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
