"""Helpers for the hub stand-in tests: a real emulator process and a sender's-eye view of it.

The emulator tests get them through ``conftest.py``'s fixtures or import them; tests elsewhere
that need a stand-in of their own (the AMQP sender's, the SDK consumer end to end) import them.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import requests
from azure.eventhub import EventData, EventHubConsumerClient

from workers.delivery.eventhub.connstr import ConnectionString, parse_connection_string
from workers.delivery.eventhub.sas import make_token

ROOT = Path(__file__).resolve().parents[2]
BATCH = "application/vnd.microsoft.servicebus.json"
SINGLE = "application/atom+xml;type=entry;charset=utf-8"


def clean_env() -> dict[str, str]:
    """This environment, minus anything that would change the stand-in's defaults."""
    env = {k: v for k, v in os.environ.items() if k != "AUDIENCEHUB_HUB_EMULATOR_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    return env


class HubProcess:
    """``python -m audiencehub.emulator --port 0 …`` as a subprocess, ready once it printed."""

    def __init__(self, *args: str, start_timeout: float = 15.0) -> None:
        self.args = ["--port", "0", *args]
        fd, log_path = tempfile.mkstemp(prefix="hub-emulator-", suffix=".log")
        self._log_path = Path(log_path)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "audiencehub.emulator", *self.args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=fd,
                env=clean_env(),
            )
        finally:
            os.close(fd)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        if not ready:
            log = self.log()  # before stop(), which deletes it
            self.stop()
            raise RuntimeError(f"hub emulator printed nothing in {start_timeout}s:\n{log}")
        self.first_line = self.proc.stdout.readline().decode().rstrip("\n")
        if not self.first_line:
            self.proc.wait(timeout=10)
            log = self.log()
            self.stop()
            raise RuntimeError(f"hub emulator exited before it was ready:\n{log}")
        self.conn: ConnectionString = parse_connection_string(self.first_line)
        self.base = f"http://{self.conn.host}:{self.conn.port}"
        self.session = requests.Session()

    # ---- lifecycle --------------------------------------------------------------------------

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_path.unlink(missing_ok=True)

    # ---- the sender's side ------------------------------------------------------------------

    def token(
        self,
        hub: str | None = None,
        *,
        uri: str | None = None,
        key: str | None = None,
        key_name: str | None = None,
        expiry: int | None = None,
    ) -> str:
        resource = uri or f"https://{self.conn.namespace}/{hub or self.conn.hub}"
        return make_token(
            resource,
            key_name or self.conn.key_name,
            key or self.conn.key,
            expiry if expiry is not None else int(time.time()) + 3600,
        )

    def url(self, hub: str | None = None, partition: str | None = None) -> str:
        where = f"/partitions/{partition}" if partition is not None else ""
        return f"{self.base}/{hub or self.conn.hub}{where}/messages?timeout=60&api-version=2014-01"

    def post(
        self,
        body: bytes | Sequence[Mapping[str, Any]],
        *,
        hub: str | None = None,
        partition: str | None = None,
        token: str | None = None,
        content_type: str | None = BATCH,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> requests.Response:
        data = body if isinstance(body, bytes) else orjson.dumps(list(body))
        sent: dict[str, str] = {"Authorization": token or self.token(hub)}
        if content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        return (session or self.session).post(
            self.url(hub, partition), data=data, headers=sent, timeout=30
        )

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=30, **kwargs)

    def events(self, hub: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every stored event of ``hub``, paging through the readback endpoint."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            resp = self.control(
                "GET",
                f"/_emulator/hubs/{hub or self.conn.hub}/events",
                params={"after": after, "limit": 1000, **params},
            )
            assert resp.status_code == 200, resp.text
            page = resp.json()
            out.extend(page["events"])
            after = page["last_seq"]
            if not page["more"]:
                return out

    def plan(self, plan: Any) -> dict[str, Any]:
        """Put a fault plan (``PUT /_emulator/faults``); the stand-in's answer."""
        resp = self.control("PUT", "/_emulator/faults", json=plan)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def requests(self, face: str) -> dict[str, int]:
        """The face's requests so far, by status."""
        by_status: dict[str, int] = self.stats()["requests"].get(face, {}).get("by_status", {})
        return by_status

    def stats(self) -> dict[str, Any]:
        resp = self.control("GET", "/_emulator/stats")
        assert resp.status_code == 200
        data: dict[str, Any] = resp.json()
        return data

    def reset(self) -> None:
        assert self.control("DELETE", "/_emulator/faults").status_code == 200
        assert self.control("DELETE", "/_emulator/events").status_code == 200


def started(*args: str) -> Iterator[HubProcess]:
    """Fixture body: one emulator for the duration, stopped (SIGTERM) afterwards."""
    hub = HubProcess(*args)
    try:
        yield hub
    finally:
        hub.stop()


def item(body: str, key: str | None = None, **props: Any) -> dict[str, Any]:
    """One batch entry the way a sender writes it."""
    entry: dict[str, Any] = {"Body": body, "UserProperties": props}
    if key is not None:
        entry["BrokerProperties"] = {"PartitionKey": key}
    return entry


def consume(
    conn: str, count: int, group: str = "$Default", timeout: float = 30, **receive: Any
) -> list[EventData]:
    """Run the SDK's sync ``receive`` until ``count`` events came in (or ``timeout``), then
    close the client; an error reported to ``on_error`` fails the caller's test."""
    client = EventHubConsumerClient.from_connection_string(conn, consumer_group=group)
    got: list[EventData] = []
    errors: list[Exception] = []
    enough = threading.Event()

    def on_event(_: Any, event: EventData | None) -> None:
        if event is not None:
            got.append(event)
        if len(got) >= count:
            enough.set()

    def on_error(_: Any, error: Exception) -> None:
        errors.append(error)
        enough.set()

    worker = threading.Thread(
        target=client.receive, kwargs={"on_event": on_event, "on_error": on_error, **receive}
    )
    worker.start()
    enough.wait(timeout)
    client.close()
    worker.join(timeout)
    assert not errors, errors
    return got
