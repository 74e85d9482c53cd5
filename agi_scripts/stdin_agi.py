"""The tagging handlers as plain ``AGI(script)`` processes, speaking AGI on stdin/stdout.

    python -m agi_scripts.stdin_agi [--config FILE] [--pbx KEY] [--dry-run] tag-inbound [ARG ...]

The handlers are the FastAGI ones, unchanged: stdin and stdout are wrapped in asyncio streams and
handed to the same :class:`~agi_scripts.session.AgiSession` (see README for why not pyst2). Writes go
through a :class:`~callcenter.store.SpooledWriter` with its own spool file (``<spool>.agi``): when
Postgres is down the tags are spooled and the next AGI process (or this one, before it exits) replays
them. ``--dry-run`` writes nothing and prints the would-be writes on stderr. Logs go to stderr;
stdout belongs to the AGI protocol. The exit status is 0 unless the arguments are wrong, so a
failing hook never changes the call's dialplan flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg

from agi_scripts.context import CallWriter, HandlerContext, UnknownPbx
from agi_scripts.handlers import HANDLERS
from agi_scripts.protocol import AgiProtocolError, AgiRequest
from agi_scripts.session import AgiCommandError, AgiHangup, AgiSession, read_environment
from callcenter.config import Config, ConfigError, load_config
from callcenter.domain import CallEvent, CallRecord
from callcenter.store import CallStore, SpooledWriter

log = logging.getLogger("agi_scripts.stdin")

REPLAY_TIMEOUT = 2.0


class DryRunWriter:
    """Prints what would be written (one JSON line each on stderr)."""

    async def upsert_call(self, record: CallRecord) -> uuid.UUID:
        print(json.dumps({"upsert_call": record.given(), "id": str(record.id)}, default=str), file=sys.stderr)
        return record.id

    async def add_event(self, event: CallEvent) -> None:
        print(json.dumps({"add_event": event.kind, "data": event.data, "dedupe_key": event.dedupe_key},
                         default=str), file=sys.stderr)


def embedded_dsn(config: Config) -> str:
    """The DSN of the service's embedded PostgreSQL, read from its ``postmaster.pid`` (line 4: the port)."""
    pid_file = Path(config.database.data_dir) / "pg" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return ""
    return f"postgresql://callcenter@127.0.0.1:{port}/callcenter"


@asynccontextmanager
async def open_writer(config: Config, dry_run: bool) -> AsyncIterator[tuple[CallWriter, asyncpg.Pool | None]]:
    if dry_run:
        yield DryRunWriter(), None
        return
    dsn = config.database.dsn or embedded_dsn(config)
    if not dsn:
        log.warning("event=agi_no_database detail=no database.dsn and no embedded cluster found; dry run")
        yield DryRunWriter(), None
        return
    # min_size=0: no connection is opened up front, so a dead Postgres means "spool", not "crash".
    store = CallStore(await asyncpg.create_pool(dsn, min_size=0, max_size=2, command_timeout=5,
                                                init=_init_connection))
    writer = SpooledWriter(store, config.spool_path.with_suffix(".agi.jsonl"))
    try:
        yield writer, store.pool
        if writer.pending:
            try:
                async with asyncio.timeout(REPLAY_TIMEOUT):
                    await writer.replay()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                log.info("event=agi_spool_kept pending=%d", writer.pending)
    finally:
        await writer.close()
        await store.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def run_script(args: argparse.Namespace, config: Config) -> int:
    handler = HANDLERS[args.handler]
    reader, stream_writer = await stdio_streams()
    try:
        env = await read_environment(reader)
        query = {"pbx": args.pbx} if args.pbx else {}
        if args.linkedid:
            query["linkedid"] = args.linkedid
        request = AgiRequest(env=env, script=args.handler, query=query, args=tuple(args.args))
        async with AsyncExitStack() as stack:
            writer, pool = await stack.enter_async_context(open_writer(config, args.dry_run))
            hctx = HandlerContext.from_config(config, writer, pool=pool)
            stack.push_async_callback(hctx.close)
            session = AgiSession(request, reader, stream_writer)
            store_write = await handler(session, hctx, hctx.pbx_for(request))
            if session.hung_up:
                log.info("event=agi_hangup script=%s detail=channel hung up, record kept", args.handler)
            stream_writer.close()  # Asterisk carries on now; the store write follows
            if store_write is not None:
                await store_write()
    except AgiHangup as exc:
        log.info("event=agi_hangup script=%s detail=%s", args.handler, exc)
    except (AgiProtocolError, AgiCommandError, UnknownPbx, TimeoutError) as exc:
        log.warning("event=agi_failed script=%s error=%s", args.handler, exc or "timeout")
    except Exception:
        log.exception("event=agi_failed script=%s", args.handler)
    finally:
        stream_writer.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agi_scripts.stdin_agi", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="callcenter.toml (default: $CALLCENTER_CONFIG)")
    parser.add_argument("--pbx", default="", help="PBX key (default: the first asterisk PBX)")
    parser.add_argument("--linkedid", default="", help="the call's linkedid (default: asked from the channel)")
    parser.add_argument("--dry-run", action="store_true", help="write nothing; print the writes on stderr")
    parser.add_argument("handler", choices=sorted(HANDLERS))
    parser.add_argument("args", nargs="*", help="the hook's arguments (DID, dialled number …)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        log.error("event=agi_config_error error=%s", exc)
        return 0  # never change the call's flow over a config problem; the log says why
    return asyncio.run(run_script(args, config))


if __name__ == "__main__":
    raise SystemExit(main())
