"""``callcenter legacy parse | listen | import | recordings`` — what an installer uses instead of Hyper Terminal.

``parse`` and ``listen`` print one JSON object per call (and per quarantined line) and never touch the
database; ``import`` writes a captured file into the store with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bridges.legacy_pbx.bulk_decoder import import_decoder
from bridges.legacy_pbx.decoder import KINDS, LegacyDecoder
from bridges.legacy_pbx.history import CHUNK, Progress, file_key, import_history
from bridges.legacy_pbx.link import LEGACY_KINDS, decoder_for, pbx_timezone, pump, transport_for
from bridges.legacy_pbx.normalize import call_json, call_record, quarantine_json
from bridges.legacy_pbx.records import Alarm, Duplicate, Item, LegacyCall, Notice, Quarantined
from bridges.legacy_pbx.transports import FileTransport
from callcenter.config import Config, ConfigError, LegacySettings, PbxConfig, load_config
from callcenter.logs import setup_logging

log = logging.getLogger("bridges.legacy_pbx")


def register(subparsers: Any) -> None:
    legacy = subparsers.add_parser("legacy", help="legacy PBX bridge: Panasonic SMDR, Segal / Danjeh boxes")
    sub = legacy.add_subparsers(dest="legacy_command", required=True)

    parse = sub.add_parser("parse", help="print a capture's calls as JSON lines (no database)")
    _pbx_options(parse)
    parse.add_argument("file", nargs="?", default="-", help="captured output, or - for stdin (default)")
    parse.set_defaults(func=cmd_parse)

    listen = sub.add_parser("listen", help="print calls live from the configured transport (no database)")
    listen.add_argument("--pbx", required=True, help="key of a [[pbx]] entry")
    listen.set_defaults(func=cmd_listen)

    imp = sub.add_parser("import", help="import a captured SMDR / caller-ID file into the call store")
    imp.add_argument("--pbx", required=True, help="key of a [[pbx]] entry")
    imp.add_argument("--follow", action="store_true", help="keep following the file as it grows (tail)")
    imp.add_argument("--batch-mb", type=float, default=4.0,
                     help="file megabytes stored per transaction (and per resume point); default 4")
    imp.add_argument("--jobs", type=int, default=None,
                     help="decoding processes (Panasonic SMDR); default one per core")
    imp.add_argument("file", help="the captured file")
    imp.set_defaults(func=cmd_import)

    rec = sub.add_parser("recordings", help="match Telsa recordings to stored calls once")
    rec.add_argument("--pbx", required=True, help="key of a [[pbx]] entry")
    rec.set_defaults(func=cmd_recordings)


def _pbx_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pbx", help="key of a [[pbx]] entry (its kind, date order and number plan)")
    parser.add_argument("--kind", choices=KINDS, help="stand-in for --pbx: the device kind")
    parser.add_argument("--date-order", choices=("mdy", "dmy", "ymd", "ydm"), help="SMDR date order")
    parser.add_argument("--country-code", default=None, help="country code for E.164 (e.g. 98)")
    parser.add_argument("--city-code", default=None, help="city code added to local numbers")
    parser.add_argument("--prefix", default=None, help="outside-line prefix to strip from dialled numbers")
    parser.add_argument("--timezone", default=None, help="IANA zone of the PBX clock (default: local)")


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(getattr(args, "config", None))
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from exc


def _pbx(config: Config, key: str) -> PbxConfig:
    try:
        pbx = config.pbx_by_key(key)
    except KeyError as exc:
        raise SystemExit(f"no [[pbx]] entry with key {key!r}") from exc
    if pbx.kind not in LEGACY_KINDS:
        raise SystemExit(f"pbx {key!r} is a {pbx.kind}, not a legacy PBX")
    return pbx


def pbx_from_args(args: argparse.Namespace) -> tuple[PbxConfig, str]:
    """The PBX entry named by --pbx, or one built from --kind / --date-order for a quick check."""
    if args.pbx:
        pbx = _pbx(_config(args), args.pbx)
        kind = "panasonic-tes" if pbx.legacy and pbx.legacy.smdr_format == "tes" else pbx.kind
    elif args.kind:
        kind = args.kind
        pbx = PbxConfig(key="cli", kind="panasonic" if kind.startswith("panasonic") else kind,
                        legacy=LegacySettings(transport="none"))
    else:
        raise SystemExit("give --pbx KEY, or --kind panasonic|panasonic-tes|segal|danjeh")
    legacy = pbx.legacy or LegacySettings()
    if args.date_order:
        legacy = replace(legacy, date_order=args.date_order)
    if args.timezone:
        legacy = replace(legacy, timezone=args.timezone)
    changes = {name: value for name, value in (("country_code", args.country_code), ("city_code", args.city_code),
                                               ("outside_line_prefix", args.prefix)) if value is not None}
    return replace(pbx, legacy=legacy, **changes), kind


class JsonPrinter:
    """Calls and quarantined lines to stdout as JSON lines; alarms and notices to stderr."""

    def __init__(self, pbx: PbxConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.pbx, self.plan, self.out, self.err = pbx, pbx.number_plan, out, err

    def write(self, items: list[Item]) -> None:
        for item in items:
            if isinstance(item, LegacyCall):
                self.out.write(json.dumps(call_json(item, self.pbx.key, self.plan), ensure_ascii=False) + "\n")
            elif isinstance(item, Quarantined):
                self.out.write(json.dumps(quarantine_json(item), ensure_ascii=False) + "\n")
            elif isinstance(item, Alarm | Notice):
                self.err.write(f"{type(item).__name__.lower()}: {item.text}\n")
        self.out.flush()

    async def __call__(self, items: list[Item]) -> None:
        self.write(items)


def cmd_parse(args: argparse.Namespace) -> int:
    pbx, kind = pbx_from_args(args)
    settings = pbx.legacy or LegacySettings()
    decoder = LegacyDecoder(kind, date_order=settings.date_order, tz=pbx_timezone(settings),
                            smdr_format=settings.smdr_format, name=pbx.key)
    printer = JsonPrinter(pbx)
    stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")
    try:
        while chunk := stream.read(1 << 16):
            printer.write(decoder.feed_bytes(chunk))
        printer.write(decoder.flush())
    except BrokenPipeError:  # `| head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    config = _config(args)
    setup_logging(config.log_format, config.log_level)
    pbx = _pbx(config, args.pbx)
    transport = transport_for(pbx, tail=True)
    if transport is None:
        raise SystemExit(f"pbx {pbx.key!r} has no transport (set legacy.transport)")
    try:
        asyncio.run(pump(transport, decoder_for(pbx), JsonPrinter(pbx)))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    config = _config(args)
    setup_logging(config.log_format, "WARNING" if config.log_level == "INFO" else config.log_level)
    pbx = _pbx(config, args.pbx)
    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"{path} is not a file")
    try:
        if not 0.01 <= args.batch_mb <= 1024:
            raise SystemExit("--batch-mb must be between 0.01 and 1024")
        if args.jobs is not None and not 1 <= args.jobs <= 64:
            raise SystemExit("--jobs must be between 1 and 64")
        counts = asyncio.run(import_file(config, pbx, path, follow=args.follow,
                                         batch_bytes=int(args.batch_mb * (1 << 20)), jobs=args.jobs))
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: every batch stored so far is kept; run the same command to resume\n")
        return 130
    print(json.dumps(counts))
    return 0


async def import_file(config: Config, pbx: PbxConfig, path: Path, *, follow: bool = False, batch_bytes: int = CHUNK,
                      progress: Callable[[int, int, int, bool], None] | None = None,
                      jobs: int | None = None) -> dict[str, int]:
    """Read ``path`` into the store: COPY batches from the checkpoint (:mod:`.history`), or tail it (--follow)."""
    from callcenter.store import CallStore
    from callcenter.store.legacy import import_checkpoint, upsert_calls_bulk
    from callcenter.store.opening import store_dsn

    source = "cid" if pbx.kind in ("segal", "danjeh") else "smdr"
    counts = {"calls": 0, "quarantined": 0, "alarms": 0, "duplicates": 0}
    bar = Progress((await asyncio.to_thread(path.stat)).st_size)
    draw = progress or bar.draw
    transport = FileTransport(path, tail=follow)
    async with AsyncExitStack() as stack:
        dsn, _ = await store_dsn(config, stack)
        store = await CallStore.connect(dsn)
        stack.push_async_callback(store.close)
        if not follow:
            bar.start = await import_checkpoint(store.pool, pbx.key, await asyncio.to_thread(file_key, path))
            history = await import_history(store, pbx, path, draw=draw, chunk=batch_bytes, jobs=jobs)
            draw(bar.total, history["calls"], history["quarantined"], True)
            return history

        async def sink(items: list[Item]) -> None:
            bad = [(pbx.key, source, i.raw, i.reason) for i in items if isinstance(i, Quarantined)]
            records = [call_record(i, pbx.key, pbx.number_plan) for i in items if isinstance(i, LegacyCall)]
            await upsert_calls_bulk(store, records)
            counts["calls"] += len(records)
            for item in items:
                if isinstance(item, Alarm):
                    counts["alarms"] += 1
                elif isinstance(item, Duplicate):
                    counts["duplicates"] += 1
            await store.quarantine_many(bad)
            counts["quarantined"] += len(bad)
            draw(transport.bytes_read, counts["calls"], counts["quarantined"], False)

        await pump(transport, import_decoder(pbx), sink)  # the regex-per-chunk decoder where the layout allows
    draw(transport.bytes_read, counts["calls"], counts["quarantined"], True)
    return counts


def cmd_recordings(args: argparse.Namespace) -> int:
    config = _config(args)
    setup_logging(config.log_format, config.log_level)
    pbx = _pbx(config, args.pbx)
    if pbx.legacy is None or not pbx.legacy.recordings_dir:
        raise SystemExit(f"pbx {pbx.key!r} has no legacy.recordings_dir")

    async def main() -> dict[str, int]:
        from bridges.legacy_pbx.telsa import RecordingWatcher
        from callcenter.store import CallStore, SpooledWriter
        from callcenter.store.opening import store_dsn

        async with AsyncExitStack() as stack:
            dsn, _ = await store_dsn(config, stack)
            store = await CallStore.connect(dsn)
            stack.push_async_callback(store.close)
            spool = config.spool_path.with_name("spool-legacy-recordings.jsonl")  # not the running service's spool
            watcher = RecordingWatcher(store, SpooledWriter(store, spool), pbx, settle_seconds=0)
            matches = await watcher.scan_once()
            return {kind: sum(m.kind == kind for m in matches) for kind in ("matched", "line_mismatch", "unmatched")}

    print(json.dumps(asyncio.run(main())))
    return 0
