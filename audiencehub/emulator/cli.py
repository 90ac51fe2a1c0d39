"""``audiencehub hub-emulator``: run the local Event Hubs stand-in, read back what it received.

Running it prints exactly one line on stdout, flushed, before anything else: the connection string
a sender (REST or, with ``UseDevelopmentEmulator=true``, the azure-eventhub SDK) can use as is.
Scripts and tests read that first line to learn the port; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from audiencehub.emulator.journal import JournalError
from audiencehub.emulator.server import (
    DEFAULT_HUB,
    DEFAULT_KEY_NAME,
    Emulator,
    EmulatorConfig,
    new_key,
)
from audiencehub.emulator.store import WHEN_FULL

__all__ = ["hub_emulator"]

log = logging.getLogger("audiencehub.emulator")


def _keys(names: tuple[str, ...], keys: tuple[str, ...]) -> dict[str, str]:
    if keys and len(names) > 1 and len(names) != len(keys):
        raise click.UsageError("give one --key per --key-name (or one --key-name and no --key)")
    names = names or (DEFAULT_KEY_NAME,)
    if not keys:
        return {name: new_key() for name in names}
    if len(names) == 1 and len(keys) > 1:
        raise click.UsageError("give one --key-name per --key")
    return dict(zip(names, keys, strict=True))


def _load_faults(text: str | None) -> Any:
    if text is None:
        return None
    raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--faults") from None


@click.group("hub-emulator", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 = a free port."
)
@click.option(
    "--hub", "hubs", multiple=True, help=f"Event hub to serve (repeat; default {DEFAULT_HUB})."
)
@click.option("--partitions", type=click.IntRange(1, 1024), default=4, show_default=True)
@click.option(
    "--key-name",
    "key_names",
    multiple=True,
    help=f"Accepted key name (repeat; default {DEFAULT_KEY_NAME}).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    envvar="AUDIENCEHUB_HUB_EMULATOR_KEY",
    help="Key for the matching --key-name (random if none; env AUDIENCEHUB_HUB_EMULATOR_KEY).",
)
@click.option(
    "--max-batch-bytes",
    type=click.IntRange(1),
    default=1_048_576,
    show_default=True,
    help="Largest accepted request body (262144 for Basic tier).",
)
@click.option(
    "--max-events",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Events held per hub (see --when-full).",
)
@click.option(
    "--when-full",
    type=click.Choice(WHEN_FULL),
    default="refuse",
    show_default=True,
    help="A full hub refuses sends (403 QuotaExceeded / amqp:resource-limit-exceeded), or "
    "forgets its oldest events, as retention does.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep events on disk in this directory, so a restarted stand-in still has them "
    "(default: in memory only).",
)
@click.option(
    "--consumer-group",
    "consumer_groups",
    multiple=True,
    help="A consumer group every hub has besides $Default (repeat).",
)
@click.option(
    "--advertise-host",
    default=None,
    help="Host to put in the printed connection string (default: --host, 127.0.0.1 for 0.0.0.0).",
)
@click.option("--faults", "faults_spec", default=None, help="Initial fault plan: JSON or @file.")
@click.option(
    "--amqp/--no-amqp",
    default=True,
    show_default=True,
    help="Also serve AMQP 1.0 (the azure-eventhub SDK) on the same port.",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Accept a /{hub}/messages batch whose events carry different partition keys, and "
    "keys that hash to another partition than the one posted to (strict by default, as the "
    "service is).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.pass_context
def hub_emulator(
    ctx: click.Context,
    host: str,
    port: int,
    hubs: tuple[str, ...],
    partitions: int,
    key_names: tuple[str, ...],
    keys: tuple[str, ...],
    max_batch_bytes: int,
    max_events: int,
    when_full: str,
    data_dir: Path | None,
    consumer_groups: tuple[str, ...],
    advertise_host: str | None,
    faults_spec: str | None,
    amqp: bool,
    lenient: bool,
    log_level: str,
) -> None:
    """Local Event Hubs stand-in (REST send API, SAS checks, readback, fault injection).

    Prints one line, the connection string to use, then logs to stderr until SIGTERM/SIGINT.
    """
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format="%(asctime)s hub-emulator %(levelname)s %(message)s",
    )
    try:
        config = EmulatorConfig(
            host=host,
            port=port,
            hubs=hubs or (DEFAULT_HUB,),
            partitions=partitions,
            keys=_keys(key_names, keys),
            max_batch_bytes=max_batch_bytes,
            max_events_per_hub=max_events,
            advertise_host=advertise_host,
            when_full=when_full,
            consumer_groups=consumer_groups,
            data_dir=data_dir,
            lenient=lenient,
        )
        emulator = Emulator(config)
        if amqp:
            emulator.enable_amqp()
        else:
            emulator.refuse_amqp()
    except (ValueError, JournalError) as exc:
        raise click.UsageError(str(exc)) from None
    plan = _load_faults(faults_spec)
    if plan is not None:
        try:
            emulator.faults.configure(plan)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(emulator))
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it exists (a dependency, except on Windows), else asyncio's.

    The stand-in shares the machine's cores with what it serves; per request, asyncio's own
    loop and transports cost about as much CPU as checking and storing a batch of ten events.
    ``AUDIENCEHUB_HUB_EMULATOR_LOOP=asyncio`` keeps asyncio's loop.
    """
    if os.environ.get("AUDIENCEHUB_HUB_EMULATOR_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(emulator: Emulator) -> None:
    # Each 1 MB batch makes ~7k short-lived containers; at the default threshold (700) the young
    # collections and the full ones they trigger cost a fifth of intake. Stored events are
    # untracked by design, so rarer collections lose nothing (measured: 168k -> 207k events/s).
    gc.set_threshold(50_000, 20, 10)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    sys.stdout.write(emulator.connection_string() + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await emulator.stop()


# ---- readback ------------------------------------------------------------------------------


def _base_url(url: str) -> tuple[str, str | None]:
    """``http://host:port`` from a URL or a connection string (plus its EntityPath)."""
    if url.strip().lower().startswith("endpoint="):
        from workers.delivery.eventhub.connstr import ConnectionStringError, parse_connection_string

        try:
            conn = parse_connection_string(url)
        except ConnectionStringError as exc:
            raise click.BadParameter(str(exc), param_hint="--url") from None
        return f"http://{conn.host}:{conn.port or 80}", conn.hub
    return url.rstrip("/"), None


def _pretty_body(text: str) -> str:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()


def _props(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


@hub_emulator.command("dump")
@click.option(
    "--url",
    required=True,
    envvar="AUDIENCEHUB_HUB_URL",
    help="http://127.0.0.1:PORT of the stand-in, or its connection string.",
)
@click.option("--hub", "hub", default=None, help="Only this hub (default: every hub).")
@click.option("--after", type=click.IntRange(0), default=0, help="Only events after this seq.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (NDJSON).")
def dump(url: str, hub: str | None, after: int, as_json: bool) -> None:
    """Print the events the stand-in received, oldest first, readably (or as NDJSON)."""
    import requests

    base, conn_hub = _base_url(url)
    session = requests.Session()

    def get(path: str, **params: Any) -> Any:
        try:
            resp = session.get(base + path, params=params, timeout=30)
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach the hub stand-in at {base}: {exc}") from None
        if resp.status_code != 200:
            raise click.ClickException(f"{path}: {resp.status_code} {resp.text[:200]}")
        return resp.json()

    names = (
        [hub or conn_hub]
        if (hub or conn_hub)
        else [h["name"] for h in get("/_emulator/hubs")["hubs"]]
    )
    total = 0
    for name in names:
        cursor = after
        while True:
            page = get(f"/_emulator/hubs/{name}/events", after=cursor, limit=5000)
            for event in page["events"]:
                total += 1
                if as_json:
                    click.echo(orjson.dumps({"hub": name, **event}).decode())
                    continue
                key = event["partition_key"]
                click.echo(
                    f"── {name} · partition {event['partition_id']} · seq {event['seq']} · "
                    f"key {key if key is not None else '-'} · {event['received_at']} ({event['face']})"
                )
                click.echo(f"   properties: {_props(event['user_properties'])}")
                broker = {
                    k: v for k, v in event["broker_properties"].items() if k != "PartitionKey"
                }
                if broker:
                    click.echo(f"   broker: {_props(broker)}")
                body = event["body"]
                if event.get("body_encoding") == "utf-8":
                    body = _pretty_body(body)
                else:
                    body = f"(base64) {body}"
                click.echo("\n".join("   " + line for line in body.splitlines() or [""]))
            cursor = page["last_seq"]
            if not page["more"]:
                break
    if not as_json:
        click.echo(f"{total} event(s)", err=True)


@hub_emulator.command("faults")
@click.option(
    "--url", required=True, envvar="AUDIENCEHUB_HUB_URL", help="URL or connection string."
)
@click.option("--clear", is_flag=True, help="Remove every rule.")
@click.argument("plan", required=False)
def faults(url: str, clear: bool, plan: str | None) -> None:
    """Show, set (PLAN: JSON or @file) or --clear the stand-in's fault plan."""
    import requests

    base, _ = _base_url(url)
    try:
        if clear:
            resp = requests.delete(f"{base}/_emulator/faults", timeout=30)
        elif plan is not None:
            body = orjson.dumps(_load_faults(plan))
            resp = requests.put(f"{base}/_emulator/faults", data=body, timeout=30)
        else:
            resp = requests.get(f"{base}/_emulator/faults", timeout=30)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the hub stand-in at {base}: {exc}") from None
    if resp.status_code != 200:
        raise click.ClickException(f"{resp.status_code}: {resp.text[:300]}")
    click.echo(orjson.dumps(resp.json(), option=orjson.OPT_INDENT_2).decode())


# ---- tail --------------------------------------------------------------------------------------

# Control characters would break "one message per line" and could drive the terminal; they are
# shown escaped. Everything else of a body or property is printed as it is (no markup is read).
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def _one_line(text: str) -> str:
    return text.translate(_CONTROL)


def _tail_line(hub: str, event: dict[str, Any]) -> str:
    key = event["partition_key"]
    props = " ".join(_one_line(f"{k}={v}") for k, v in event["user_properties"].items())
    body = event["body"]
    if event.get("body_encoding") != "utf-8":
        body = f"(base64) {body}"
    parts = [
        event["received_at"],
        f"{_one_line(hub)}/{event['partition_id']}",
        f"#{event['sequence_number']}",
        f"key={_one_line(key) if key is not None else '-'}",
    ]
    if props:
        parts.append(props)
    parts.append(_one_line(body))
    return " ".join(parts)


@hub_emulator.command("tail")
@click.option(
    "--url",
    required=True,
    envvar="AUDIENCEHUB_HUB_URL",
    help="http://127.0.0.1:PORT of the stand-in, or its connection string.",
)
@click.option(
    "--hub", "hub", default=None, help="Hub to follow (default: the string's or the first)."
)
@click.option("--partition", default=None, help="Only this partition.")
@click.option("--from-start", is_flag=True, help="Print what the hub holds first, then follow.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (NDJSON).")
@click.option(
    "--count", type=click.IntRange(1), default=None, help="Stop after this many messages."
)
def tail(
    url: str,
    hub: str | None,
    partition: str | None,
    from_start: bool,
    as_json: bool,
    count: int | None,
) -> None:
    """Print messages as they arrive at a hub, one per line (or as NDJSON with --json).

    Each line: enqueued time, hub/partition, #sequence number, partition key, the application
    properties and the body. Control characters are shown escaped (\\n, \\x1b); nothing else is
    changed or interpreted.
    """
    import requests

    base, conn_hub = _base_url(url)
    session = requests.Session()

    def get(path: str, **params: Any) -> Any:
        try:
            resp = session.get(base + path, params=params, timeout=60)
        except requests.RequestException:
            raise click.ClickException(f"cannot reach the hub stand-in at {base}") from None
        if resp.status_code != 200:
            try:
                reason = str(resp.json().get("error", ""))
            except ValueError:
                reason = resp.text[:200]
            raise click.ClickException(f"{path}: {resp.status_code} {reason}")
        return resp.json()

    name = hub or conn_hub or next((h["name"] for h in get("/_emulator/hubs")["hubs"]), None)
    if name is None:
        raise click.ClickException("the stand-in serves no hub")
    cursor = 0 if from_start else int(get("/_emulator/stats")["last_seq"])
    params: dict[str, Any] = {"limit": 1000, "wait": 20}
    if partition is not None:
        params["partition"] = partition
    where = f"partition {partition}" if partition is not None else "every partition"
    start = "from the start" if from_start else "from now on"
    click.echo(f"following {name}, {where}, {start} (Ctrl-C stops)", err=True)
    printed = 0
    try:
        while count is None or printed < count:
            page = get(f"/_emulator/hubs/{name}/events", after=cursor, **params)
            for event in page["events"]:
                if as_json:
                    line = orjson.dumps({"hub": name, **event}).decode()
                else:
                    line = _tail_line(name, event)
                click.echo(line)
                printed += 1
                if count is not None and printed >= count:
                    break
            sys.stdout.flush()
            cursor = page["last_seq"]
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say, and no traceback at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
