"""The two reference servers bench/collect.py measures /collect against (not a benchmark itself).

- ``bare``: a FastAPI app whose ``POST /collect/{stream}`` reads the body and discards it, served
  by ``audiencehub.cli.api.serve`` (the same uvicorn call as ``audiencehub api``): the ceiling of
  the HTTP layer, with nothing of ours in the way.
- ``parse``: the same, but the body is also parsed as JSON (``orjson.loads`` of the body, or of
  each line for NDJSON) and then discarded: the least any endpoint that reads events must do, the
  reference a batch can fairly be held to (a 100-event body costs far more to parse than to
  receive, so ``bare`` is a ceiling no batch endpoint nears).
- ``canned``: a raw asyncio server that answers every request with the same bytes, the cheapest
  server Python can be: what the load generator reaches against it is the generator's ceiling.

    python bench/_collect_servers.py bare|parse|canned --port N
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import cast

import orjson
from fastapi import FastAPI, Request, Response

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from audiencehub.cli.api import serve  # noqa: E402

ANSWER = b'{"accepted":0}'
CANNED = (
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


def split_message(buf: bytes) -> tuple[bytes, bytes] | None:
    """(the first whole HTTP/1.1 message in ``buf``, what follows it), or None while it is not
    all there. Only Content-Length bodies: all that these servers and the generator send."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    at = head.find(b"content-length:")
    length = 0
    if at >= 0:
        stop = head.find(b"\r\n", at)
        length = int(head[at + 15 : stop if stop >= 0 else None])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return buf[:total], buf[total:]


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when it is installed (uvicorn picks it the same way), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def bare_app(parse: bool = False) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/collect/{stream}", status_code=202)
    async def collect(stream: str, request: Request) -> Response:
        body = await request.body()
        if parse:
            if request.headers.get("content-type", "").endswith("ndjson"):
                for line in body.splitlines():
                    if line.strip():
                        orjson.loads(line)
            else:
                orjson.loads(body)
        return Response(ANSWER, status_code=202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b"{}", media_type="application/json")

    return app


class Canned(asyncio.Protocol):
    """Answers each request (headers, then Content-Length bytes of body) with ``CANNED``."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (message := split_message(self.buf)) is not None:
            self.buf = message[1]
            assert self.transport is not None
            self.transport.write(CANNED)


async def canned(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Canned, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("bare", "parse", "canned"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    if args.kind in ("bare", "parse"):
        serve(bare_app(parse=args.kind == "parse"), "127.0.0.1", args.port, args.log_level)
        return
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(canned(args.port))


if __name__ == "__main__":
    main()
