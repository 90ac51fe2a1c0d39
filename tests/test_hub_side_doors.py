"""``auth test`` and the senders are no way into internal web services (issue 13, side doors):
the emulator flag (plain http to any host) only where allowed, redirects never followed, and of
any answer only the status and the Azure error code kept in health, last error and dead letters.
Each test reproduced the hole before it was closed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from audiencehub.processes import HubEmulator
from tests.helpers import RecordingSender
from workers.audiences.store import AudienceStore
from workers.config import Settings
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.deliver import Deliverer, SenderPool
from workers.delivery.eventhub.connstr import ConnectionStringError, parse_connection_string
from workers.delivery.eventhub.rest import RestSender
from workers.delivery.eventhub.sender import HubError, OutMessage
from workers.delivery.outbox import Outbox, OutboxRecord
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.secrets import new_key
from workers.jobs.setup import check_authorization, create_job
from workers.jobs.status import job_status
from workers.jobs.store import Job, JobStore
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items

SECRET_PAGE = b"<html>INTERNAL-ADMIN-PAGE token=hunter2</html>"
KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3OA=="


class InternalService:
    """A web service on loopback that must stay unreadable: every answer is ``status`` with a
    secret body (and a ``Location`` to ``target`` for redirects); it counts what it is asked."""

    def __init__(self, status: int, target: str = "") -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 0.5  # hang up on a client that sends no request line (the AMQP probe)

            def _answer(self) -> None:
                service.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(service.status)
                if service.target:
                    self.send_header("Location", service.target)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(SECRET_PAGE)))
                self.end_headers()
                self.wfile.write(SECRET_PAGE)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.status = status
        self.target = target
        self.hits: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def connection_string(self, hub: str = "audiences") -> str:
        return (
            f"Endpoint=sb://127.0.0.1:{self.port}/;SharedAccessKeyName=send;"
            f"SharedAccessKey={KEY};EntityPath={hub};UseDevelopmentEmulator=true"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[InternalService]:
    service = InternalService(200)
    yield service
    service.close()


def job_on(engine: Engine, text: str, users: int = 3) -> Job:
    AudienceStore(engine.r, engine.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("svc", text, partitions=1)
    job = create_job(engine, "j", auth.id, ["all"])
    Ingestor(engine).ingest(list_items([{"user_id": f"u{i}", "email": "e"} for i in range(users)]))
    for shard in range(engine.cfg.shards):
        ShardDrainer(engine).drain(shard)
    return job


def deliver(engine: Engine, job: Job) -> str:
    pool = SenderPool(engine)
    deliverer = Deliverer(engine, pool.get)
    try:
        return deliverer.deliver(job.id, budget_s=5).error
    finally:
        deliverer.close()
        pool.close()


def everything_shown(engine: Engine, job: Job) -> str:
    """All a person (or the API) can read about the job and its authorization."""
    fresh = JobStore(engine.r, engine.keys).get(job.id)
    auth = AuthStore(engine.r, engine.keys, engine.cfg).get(job.auth_id)
    letters = [d.reason for d in DeadLetters(engine).entries(job.id)]
    return orjson.dumps(
        [job_status(engine, fresh, {}), fresh.reason, auth.public(), letters]
    ).decode()


# ---- UseDevelopmentEmulator=true outside demo and test mode --------------------------------------


def production(cfg: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(cfg, mode="production", secret_key=new_key(), **changes)


def test_the_emulator_flag_is_refused_in_production_unless_the_operator_allows_it(
    cfg: Settings, hub: HubEmulator
) -> None:
    r = redis.Redis.from_url(cfg.redis_url)
    prod = Engine.create(RecordingSender(), cfg=production(cfg), r=r)
    with pytest.raises(ConnectionStringError, match="AUDIENCEHUB_ALLOW_EMULATOR") as info:
        AuthStore(prod.r, prod.keys, prod.cfg).create("local", hub.connection_string)
    assert parse_connection_string(hub.connection_string).key not in str(info.value)
    allowed = dataclasses.replace(prod.cfg, allow_emulator=True)
    auth = AuthStore(prod.r, prod.keys, allowed).create("local", hub.connection_string)

    # Stored while it was allowed, used by a worker where it is not: refused at send time.
    AudienceStore(prod.r, prod.keys).create("all", "FILTER EXISTS email")
    job = create_job(Engine.create(RecordingSender(), cfg=allowed, r=r), "j", auth.id, ["all"])
    Outbox(prod.keys, 0, job.id).append(prod.r, [OutboxRecord("u1", "k" * 32, b"{}")])
    error = deliver(prod, job)
    failed = JobStore(prod.r, prod.keys).get(job.id)
    assert failed.state == "failed" and "UseDevelopmentEmulator" in failed.reason and error
    assert int(Outbox(prod.keys, 0, job.id).length(prod.r)) == 1  # nothing lost
    assert hub.events() == []
    r.close()


def test_the_emulator_flag_is_accepted_in_demo_and_test_mode(
    cfg: Settings, hub: HubEmulator
) -> None:
    for mode in ("demo", "test"):
        demo = dataclasses.replace(cfg, mode=mode)
        r = redis.Redis.from_url(cfg.redis_url)
        assert (
            AuthStore(r, Engine.create(RecordingSender(), cfg=demo, r=r).keys, demo)
            .create(f"local-{mode}", hub.connection_string)
            .emulator
        )
        r.close()


# ---- no redirects -------------------------------------------------------------------------------


def test_a_redirect_is_never_followed_and_fails_the_job(engine: Engine) -> None:
    target = InternalService(200)
    redirector = InternalService(307, target=f"http://127.0.0.1:{target.port}/admin")
    try:
        conn = parse_connection_string(redirector.connection_string())
        sender = RestSender(conn)
        with pytest.raises(HubError) as err:
            sender.send([OutMessage(b"{}", "u1", "k" * 32)], "0")
        sender.close()
        assert err.value.kind == "redirect" and err.value.status == 307
        job = job_on(engine, redirector.connection_string())
        deliver(engine, job)
        failed = JobStore(engine.r, engine.keys).get(job.id)
        assert (
            failed.state == "failed"
            and "307" in failed.reason
            and "never redirects" in failed.reason
        )
        assert target.hits == []  # nobody went where the redirect pointed
        assert "INTERNAL" not in everything_shown(engine, job)
    finally:
        target.close()
        redirector.close()


# ---- only the status and the Azure error code ----------------------------------------------------


@pytest.mark.parametrize("status", [400, 500, 503, 401, 404])
def test_an_answer_body_never_reaches_health_last_error_or_dead_letters(
    engine: Engine, status: int
) -> None:
    service = InternalService(status)
    try:
        job = job_on(engine, service.connection_string())
        deliver(engine, job)
        shown = everything_shown(engine, job)
        assert service.hits and str(status) in shown
        assert "INTERNAL" not in shown and "hunter2" not in shown
        ok, detail = check_authorization(engine, job.auth_id)
        assert (
            not ok and "INTERNAL" not in detail and "INTERNAL" not in everything_shown(engine, job)
        )
    finally:
        service.close()


def test_auth_test_cannot_read_an_internal_web_service(
    engine: Engine, internal: InternalService
) -> None:
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("svc", internal.connection_string())
    ok, detail = check_authorization(engine, auth.id)
    assert not ok and "management call" in detail
    health = AuthStore(engine.r, engine.keys, engine.cfg).get(auth.id).health
    for text in (detail, health):
        assert "INTERNAL" not in text and "hunter2" not in text and "200" not in text
    assert not any(hit.startswith("POST") for hit in internal.hits)  # nothing was sent to it


def test_a_hub_name_cannot_carry_a_path_or_a_query(
    engine: Engine, internal: InternalService
) -> None:
    for hub in ("audiences/../admin", "audiences?x=1", "a%2Fb"):
        with pytest.raises(ConnectionStringError, match="EntityPath"):
            AuthStore(engine.r, engine.keys, engine.cfg).create(
                "svc", internal.connection_string(hub)
            )
    assert internal.hits == []


def test_the_answer_body_read_is_bounded(tmp_path: Path) -> None:
    """A huge error answer is not read beyond a few KB (the connection is dropped instead)."""

    class Huge(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(400)
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            try:
                for _ in range(50_000):
                    self.wfile.write(b"x" * 1000)
            except OSError:
                pass  # the client hung up: what we want

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Huge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = parse_connection_string(
            f"Endpoint=sb://127.0.0.1:{server.server_address[1]}/;SharedAccessKeyName=s;"
            f"SharedAccessKey={KEY};EntityPath=h;UseDevelopmentEmulator=true"
        )
        sender = RestSender(conn)
        with pytest.raises(HubError) as err:
            sender.send([OutMessage(b"{}", "u", "k" * 32)], "0")
        sender.close()
        assert err.value.kind == "bad_request" and "xxxx" not in err.value.reason
    finally:
        server.shutdown()
        server.server_close()
