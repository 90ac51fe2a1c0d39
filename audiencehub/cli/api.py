"""``audiencehub api``: serve the HTTP API with uvicorn (mounted by audiencehub/cli.py).

Settings are checked before the server binds, so a missing token or an unreachable Redis is one
clear line and exit code 1, not a traceback from inside uvicorn's startup.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from urllib.parse import urlsplit

import click
import redis
from starlette.types import ASGIApp

from workers import gc_tuning
from workers.config import ConfigError, settings
from workers.jobs.secrets import secret_box


def _where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def api_command(host: str, port: int, log_level: str) -> None:
    """Serve the HTTP API (FastAPI on uvicorn); see docs/api.md.

    Needs AUDIENCEHUB_API_TOKENS (comma-separated bearer tokens) unless AUDIENCEHUB_MODE is demo
    or test. One process; run more behind a load balancer to scale.
    """
    from audiencehub.api import create_app
    from audiencehub.api.settings import load_api_settings
    from audiencehub.context import engine

    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = settings()
        api_cfg = load_api_settings(cfg)
        secret_box(cfg)  # production without a valid AUDIENCEHUB_SECRET_KEY stops here
        e = engine()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except redis.exceptions.ConnectionError:
        raise click.ClickException(
            f"cannot reach Redis at {_where(settings().redis_url)}; check REDIS_URL"
        ) from None
    app = create_app(e, api_cfg)
    # As the workers do: a /collect batch allocates a few containers per event, and the
    # collector's default threshold ran it hundreds of times a second (workers/gc_tuning.py).
    gc_tuning.tune(cfg)
    serve(app, host, port, log_level, api_cfg.forwarded_allow_ips)


M_TRIM_THRESHOLD = -1
"""glibc's mallopt parameter: free memory at the top of the heap kept before it is handed back."""
HEAP_KEPT_BYTES = 64 * 1024 * 1024


def keep_freed_heap() -> None:
    """Let the C allocator keep up to HEAP_KEPT_BYTES of freed heap rather than hand it back to
    the kernel after each burst of requests: each request allocates its events afresh (orjson's
    buffers are past Python's small-object allocator), and memory handed back costs a page fault
    per 4 KB when the next request takes it again, about a fifth of the CPU of a 100-event
    /collect request (bench/collect.py). The price: the process's resident size stays at its
    recent peak, up to that much more. Nothing happens off glibc."""
    path = ctypes.util.find_library("c")
    if path is None:
        return
    try:
        ctypes.CDLL(path).mallopt(M_TRIM_THRESHOLD, HEAP_KEPT_BYTES)
    except (OSError, AttributeError):
        return


def serve(app: ASGIApp, host: str, port: int, log_level: str, forwarded: str = "") -> None:
    """Run ``app`` on uvicorn as ``audiencehub api`` does (bench/collect.py serves its bare
    endpoint through this too, so the ceiling it measures is the same server stack)."""
    import uvicorn

    keep_freed_heap()

    # Behind a TLS proxy, X-Forwarded-Proto makes request.url.scheme https (the dashboard's cookie
    # then gets Secure), but only from the proxies AUDIENCEHUB_API_FORWARDED_ALLOW_IPS names.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or None,
    )


if __name__ == "__main__":
    api_command()
