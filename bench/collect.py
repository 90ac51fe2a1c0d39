"""Events in over HTTP: ``POST /collect`` through the API as shipped, beside two references.

A private redis-server, then ``audiencehub api`` processes (the real app on the real uvicorn,
bearer tokens on, 16 shards, no workers: this measures accepting, not applying) and two
references served by the same uvicorn call (bench/_collect_servers.py):

- ``bare``: a FastAPI endpoint that reads the body and discards it, the ceiling of the HTTP
  layer. Fair for single events (a one-event body costs next to nothing to read), not for
  batches: reading 100 events is most of the work of accepting them, and ``bare`` does none of
  it, so no batch endpoint comes near it.
- ``parse``: the same, plus ``orjson.loads`` of the body (each line for NDJSON): the least any
  endpoint that looks at the events must do, the fairer reference for batches.

For 1 and 2 server processes (2 as behind a load balancer: the generator spreads its
connections over both), and for single-event requests and batches of 100 as a JSON array and as
NDJSON: requests/s and events/s answered 202, p50/p99 of the time from sending a request to its
whole answer, the CPU per request of the servers, and the ratio to each reference in the same
run (of the rate, and of the CPU per request: the machine's 2 cores are shared by the servers,
Redis, the generator and whatever else runs, so the CPU ratio is the steadier one). At the end
the events in Redis are counted against the 202s. ``--compare DIR`` also measures another
checkout's API (say main's) right after this tree's, on the same Redis: old and new in one run.

The load generator is itself cheap: 2 processes, each an event loop (uvloop when installed) with
raw keep-alive connections that send prebuilt requests, one in flight per connection. Its own
ceiling is measured first, against a server that answers every request with canned bytes.
Prints figures; asserts nothing.

    .venv/bin/python bench/collect.py [--seconds 3] [--connections 8] [--log-level info]
                                      [--processes 1,2] [--shapes 0,1,2] [--compare DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import orjson
import redis
import requests
from _collect_servers import new_loop, split_message
from _common import cpu_seconds, percentile

from audiencehub.processes import Managed, RedisServer, celery_env, free_port, wait_for
from workers.keys import Keys

SHARDS = 16
TOKEN = "bench-token-0123456789abcdef"
PREFIX = "ah"
USERS = 50_000
BATCH = 100
GENERATORS = 2
"""Load generator processes; each holds its share of the connections to every server."""
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Shape:
    name: str
    content_type: str
    bodies: list[bytes]
    events: int
    """Events per request."""


def event(i: int) -> dict[str, Any]:
    """A Segment-like track call: user, event name, two traits."""
    return {
        "user_id": f"user{i % USERS:06d}",
        "event": "view",
        "plan": "pro",
        "email": f"u{i % USERS}@example.com",
    }


def shapes() -> list[Shape]:
    batches = [[event(b * BATCH + i) for i in range(BATCH)] for b in range(64)]
    return [
        Shape("1 event", "application/json", [orjson.dumps(event(i)) for i in range(256)], 1),
        Shape(f"{BATCH} JSON", "application/json", [orjson.dumps(b) for b in batches], BATCH),
        Shape(
            f"{BATCH} NDJSON",
            "application/x-ndjson",
            [b"\n".join(orjson.dumps(e) for e in b) + b"\n" for b in batches],
            BATCH,
        ),
    ]


def request(shape: Shape, body: bytes) -> bytes:
    return (
        f"POST /collect/web HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: {shape.content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- the load generator ----------------------------------------------------------------------


@dataclass
class Tally:
    """One generator process's view of a run."""

    t0: float
    t1: float
    latencies: list[float] = field(default_factory=list)
    """Of the answers that arrived within [t0, t1]: seconds from sending to the whole answer."""
    answered: int = 0
    """202s, all of them (warm-up and wind-down too): what Redis must hold in the end."""
    errors: dict[str, int] = field(default_factory=dict)
    first_error: bytes = b""
    stopping: bool = False
    in_flight: int = 0


class Client(asyncio.Protocol):
    """One keep-alive connection: send, read the whole answer, send the next."""

    def __init__(self, tally: Tally, requests: list[bytes], offset: int) -> None:
        self.tally = tally
        self.requests = requests
        self.i = offset
        self.buf = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def itself(self) -> Client:
        """The protocol factory create_connection wants, for a client made beforehand."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self) -> None:
        assert self.transport is not None
        self.tally.in_flight += 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        message = split_message(self.buf)
        if message is None:
            return
        now = time.perf_counter()
        answer, self.buf = message
        t = self.tally
        t.in_flight -= 1
        status = answer[9:12]
        if status == b"202":
            t.answered += 1
        else:
            t.errors[status.decode()] = t.errors.get(status.decode(), 0) + 1
            t.first_error = t.first_error or answer[:2000]
        if t.t0 <= now <= t.t1:
            t.latencies.append(now - self.sent_at)
        if not t.stopping:
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def drive(
    ports: list[int], requests: list[bytes], connections: int, start_at: float, seconds: float
) -> Tally:
    loop = asyncio.get_running_loop()
    # The wall clock to start together with the other generators; perf_counter to measure.
    start = time.perf_counter() + (start_at - time.time())
    tally = Tally(t0=start + WARMUP_S, t1=start + WARMUP_S + seconds)
    clients: list[Client] = []
    for n in range(connections):
        client = Client(tally, requests, n * 7)
        await loop.create_connection(client.itself, "127.0.0.1", ports[n % len(ports)])
        clients.append(client)
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    for client in clients:
        client.send()
    await asyncio.sleep(max(0.0, tally.t1 - time.perf_counter()))
    tally.stopping = True
    deadline = time.perf_counter() + 30
    while tally.in_flight and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    await asyncio.gather(*(c.closed for c in clients))
    return tally


def generator(
    out: Connection,
    ports: list[int],
    requests: list[bytes],
    connections: int,
    start_at: float,
    seconds: float,
) -> None:
    cpu0 = time.process_time()
    with asyncio.Runner(loop_factory=new_loop) as runner:
        tally = runner.run(drive(ports, requests, connections, start_at, seconds))
    out.send((tally, time.process_time() - cpu0))
    out.close()


WARMUP_S = 0.5


@dataclass
class Result:
    requests_s: float
    events_s: float
    p50_ms: float
    p99_ms: float
    answered: int
    cpu: dict[str, float]
    errors: dict[str, int]


def load(
    ports: list[int], shape: Shape, connections: int, seconds: float, pids: dict[str, list[int]]
) -> Result:
    """Drive ``connections`` over ``ports`` from GENERATORS processes for ``seconds``."""
    reqs = [request(shape, b) for b in shape.bodies]
    ctx = mp.get_context("fork")
    start_at = time.time() + 0.3
    pipes, procs = [], []
    for g in range(GENERATORS):
        share = connections // GENERATORS + (g < connections % GENERATORS)
        mine = reqs[g::GENERATORS] or reqs
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=generator, args=(send, ports, mine, share, start_at, seconds), daemon=True
        )
        proc.start()
        send.close()
        pipes.append(recv)
        procs.append(proc)
    time.sleep(max(0.0, start_at + WARMUP_S - time.time()))
    before = {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()}
    time.sleep(max(0.0, start_at + WARMUP_S + seconds - time.time()))
    cpu = {name: sum(cpu_seconds(p) for p in ps) - before[name] for name, ps in pids.items()}
    tallies = []
    gen_cpu = 0.0
    for recv in pipes:
        tally, used = recv.recv()
        tallies.append(tally)
        gen_cpu += used
    for proc in procs:
        proc.join(30)
    # The generators' own CPU over their whole life, scaled to the measured window.
    cpu["generator"] = gen_cpu * seconds / (seconds + WARMUP_S + 0.3)
    latencies = [x for t in tallies for x in t.latencies]
    errors: dict[str, int] = {}
    for t in tallies:
        for status, n in t.errors.items():
            errors[status] = errors.get(status, 0) + n
        if t.first_error:
            print(f"    first error: {t.first_error[:600]!r}")
    rate = len(latencies) / seconds
    return Result(
        requests_s=rate,
        events_s=rate * shape.events,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        answered=sum(t.answered for t in tallies),
        cpu=cpu,
        errors=errors,
    )


# -- the servers -----------------------------------------------------------------------------


class Server(Managed):
    """One HTTP server process on a free port, ready once it answers ``ready_path``."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, env: dict[str, str], ready_path: str
    ) -> None:
        self.port = free_port()
        super().__init__(name, [*argv, "--port", str(self.port)], workdir, env)
        self.ready_path = ready_path

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            try:
                return requests.get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=60, what=f"{self.name} to answer")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def line(label: str, r: Result, server: str, refs: dict[str, Result], seconds: float) -> str:
    """One figure; the rate as a ratio of each reference's, and the CPU per request of the
    process(es) named ``server``, and of each reference's, as a ratio (steadier than the rate
    when other work shares the machine)."""
    cpu = r.cpu.get(server, 0.0) / max(1.0, r.requests_s * seconds) * 1e6
    ratios = []
    for name, ref in refs.items():
        ref_cpu = ref.cpu.get(name, 0.0) / max(1.0, ref.requests_s * seconds) * 1e6
        ratios.append(
            f"{r.events_s / max(ref.events_s, 1e-9):4.2f}x {name} (CPU {cpu / max(ref_cpu, 1e-9):.1f}x)"
        )
    ratio = ", ".join(ratios)
    errors = f"; NOT 202: {r.errors}" if r.errors else ""
    return (
        f"  {label:<24} {r.requests_s:>7,.0f} req/s {r.events_s:>8,.0f} events/s  "
        f"p50 {r.p50_ms:5.1f} ms p99 {r.p99_ms:6.1f} ms  {cpu:5.0f} us CPU/req  "
        f"{ratio}{errors}"
    )


def cpu_line(r: Result, seconds: float) -> str:
    """Where the 2 cores went, and what a whole core of API process would accept at this cost:
    the sizing figure, steadier than the rate when other work shares the machine."""
    parts = ", ".join(f"{name} {used:.1f}s" for name, used in r.cpu.items() if used >= 0.05)
    per_core = r.events_s * seconds / max(r.cpu.get("api", 0.0), 1e-9)
    return (
        f"{'':<26}CPU of {2 * seconds:.0f}s (2 cores): {parts}; one API core at this cost: "
        f"{per_core:,.0f} events/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8, help="per server process")
    parser.add_argument("--processes", default="1,2", help="server process counts to run")
    parser.add_argument("--shapes", default="0,1,2", help="0: 1 event, 1: JSON batch, 2: NDJSON")
    parser.add_argument(
        "--log-level", default="info", help="the servers' (audiencehub api's default: info)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout (say /work/main): its API measured right after this tree's, on "
        "the same Redis, so two trees compare in one sitting on a shared machine",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="audiencehub-bench-collect-"))
    server = RedisServer(workdir, appendonly=False)
    server.start()
    env = celery_env(
        server.url,
        AUDIENCEHUB_MODE="demo",
        AUDIENCEHUB_API_TOKENS=TOKEN,
        AUDIENCEHUB_SHARDS=str(SHARDS),
        AUDIENCEHUB_PREFIX=PREFIX,
        AUDIENCEHUB_MAX_BACKLOG="1000000000",
    )
    level = ["--log-level", args.log_level]
    api = [sys.executable, "-m", "audiencehub.cli.api", *level]
    bare = [sys.executable, str(HERE / "_collect_servers.py"), "bare", *level]
    parse = [sys.executable, str(HERE / "_collect_servers.py"), "parse", *level]
    apis = [Server(f"api{i}", api, workdir, env, "/healthz") for i in (1, 2)]
    bares = [Server(f"bare{i}", bare, workdir, env, "/healthz") for i in (1, 2)]
    parses = [Server(f"parse{i}", parse, workdir, env, "/healthz") for i in (1, 2)]
    others: list[Server] = []
    if args.compare is not None:
        other_env = {**env, "PYTHONPATH": str(args.compare.resolve())}
        others = [Server(f"other{i}", api, workdir, other_env, "/healthz") for i in (1, 2)]
    servers = [*apis, *bares, *parses, *others]
    canned = Managed(
        "canned", [sys.executable, str(HERE / "_collect_servers.py"), "canned"], workdir, env
    )
    canned_port = free_port()
    canned.argv += ["--port", str(canned_port)]
    everything: list[Managed] = [server, *servers, canned]
    try:
        for s in servers:
            s.start()
        canned.start()
        canned.wait_log("ready")
        for s in servers:
            s.wait_ready()
        import uvicorn

        loop = "uvloop" if _has("uvloop") else "asyncio"
        http = "httptools" if _has("httptools") else "h11"
        print(
            f"uvicorn {uvicorn.__version__} ({loop}, {http}), log level {args.log_level}; "
            f"{SHARDS} shards, {args.connections} connections per server process, "
            f"{GENERATORS} generator processes, {args.seconds:.0f} s per figure; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        rpid = server.proc.pid if server.proc else 0
        kinds = shapes()
        assert canned.proc is not None
        ceiling = load(
            [canned_port],
            kinds[0],
            args.connections,
            args.seconds,
            {"canned server": [canned.proc.pid]},
        )
        per_req = ceiling.cpu["generator"] / max(1, ceiling.requests_s * args.seconds) * 1e6
        print(
            f"generator ceiling (a server answering canned bytes): {ceiling.requests_s:,.0f} "
            f"req/s; the generator spends {per_req:.0f} us CPU per request"
        )
        accepted = 0
        for n in (int(x) for x in args.processes.split(",")):
            for shape in (kinds[int(x)] for x in args.shapes.split(",")):
                print(f"{n} server process{'es' if n > 1 else ''}, {shape.name} per request:")
                refs: dict[str, Result] = {}
                for name, label, refs_of in (
                    ("bare", "bare endpoint (ceiling)", bares),
                    ("parse", "bare + JSON parse", parses),
                ):
                    ports = [s.port for s in refs_of[:n]]
                    pids = {name: [s.pid for s in refs_of[:n]]}
                    refs[name] = load(ports, shape, args.connections * n, args.seconds, pids)
                    print(line(label, refs[name], name, {}, args.seconds))
                trees = [("POST /collect", apis)]
                if others:
                    trees.append((f"  ({args.compare.name})", others))
                for label, ours in trees:
                    r = load(
                        [s.port for s in ours[:n]],
                        shape,
                        args.connections * n,
                        args.seconds,
                        {"api": [s.pid for s in ours[:n]], "redis": [rpid]},
                    )
                    accepted += r.answered * shape.events
                    print(line(label, r, "api", refs, args.seconds))
                    print(cpu_line(r, args.seconds))
        keys = Keys(PREFIX)
        client = redis.Redis.from_url(server.url)
        stored = sum(int(client.xlen(keys.events(s))) for s in range(SHARDS))
        verdict = "all there" if stored == accepted else "MISMATCH"
        print(
            f"events in Redis: {stored:,}; answered 202: {accepted:,} ({verdict}); load "
            f"average {os.getloadavg()[0]:.1f}"
        )
    finally:
        for proc in reversed(everything):
            proc.stop()


def _has(module: str) -> bool:
    probe = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True).returncode == 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
