"""The hub's own description of itself, from the SDK's management call (AMQP ``$management``).

Why this call: it is the documented way a sender learns the partition ids, and the one the SDKs'
buffered producers make with the producer's own (send-only) credentials before they route keys to
partitions. REST has no equivalent a send-only key may use (``GET /{hub}`` needs Manage), so a
REST job asks over AMQP too. It proves that the host is an Event Hubs namespace, that the hub
exists, and that the hub accepted a token signed with this key; it does not prove the key may
send (a Listen-only key passes too): the first batch a job sends proves that.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from azure.eventhub import EventHubProducerClient

from workers.delivery.eventhub.connstr import ConnectionString
from workers.delivery.eventhub.sender import HubError

AUTH_TIMEOUT_S = 10
DEADLINE_S = 20.0
"""The SDK has no overall timeout for this call: past this the caller stops waiting (the SDK's
thread is left to end by itself, and no second call to that hub starts before it has)."""
PROBE_TIMEOUT_S = 10.0
AMQP_PORT = 5671
_SASL_HEADER = b"AMQP\x03\x01\x00\x00"
_in_flight: dict[str, threading.Thread] = {}
_in_flight_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class HubProperties:
    name: str
    partition_ids: tuple[str, ...]


def speaks_amqp(conn: ConnectionString, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Does the endpoint answer the AMQP protocol header? The SDK waits forever on a peer that
    accepts the connection and never answers (an HTTP server does), so it is asked first."""
    port = conn.port or AMQP_PORT
    try:
        with socket.create_connection((conn.host, port), timeout=timeout_s) as raw:
            sock: socket.socket = raw
            if not conn.emulator:
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=conn.host)
            sock.settimeout(timeout_s)
            sock.sendall(_SASL_HEADER)
            return sock.recv(8).startswith(b"AMQP")
    except (OSError, ValueError):
        return False


def hub_properties(conn: ConnectionString, deadline_s: float = DEADLINE_S) -> HubProperties:
    """Name and partition ids of the hub, or HubError (its reason never holds the key)."""
    from workers.delivery.eventhub.amqp import sdk_hub_error

    where = f"{conn.namespace}/{conn.hub}"
    with _in_flight_lock:
        stuck = _in_flight.get(where)
        if stuck is not None and stuck.is_alive():
            raise HubError("transient", f"{where}: the last management call has not returned")
    if not speaks_amqp(conn):
        raise HubError(
            "transient",
            f"{where}: the management call needs AMQP (port {conn.port or AMQP_PORT}), and the "
            "endpoint did not answer it; is it an Event Hubs namespace, reachable on that port?",
        )
    client = EventHubProducerClient.from_connection_string(
        conn.text(), retry_total=0, auth_timeout=AUTH_TIMEOUT_S
    )
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["props"] = client.get_eventhub_properties()
        except BaseException as exc:  # reported by the caller
            answer["error"] = exc
        finally:
            with contextlib.suppress(Exception):
                client.close()

    worker = threading.Thread(target=ask, name="hub-management", daemon=True)
    with _in_flight_lock:
        _in_flight[where] = worker
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        raise HubError(
            "transient", f"{where}: the management call got no answer within {deadline_s:g}s"
        )
    if "error" in answer:
        exc = answer["error"]
        raise exc if isinstance(exc, HubError) else sdk_hub_error(exc, conn, "management call")
    props = answer["props"]
    ids = tuple(str(p) for p in props["partition_ids"])
    if not ids:
        raise HubError("transient", f"{where}: the hub listed no partitions")
    return HubProperties(str(props.get("eventhub_name") or conn.hub), ids)
