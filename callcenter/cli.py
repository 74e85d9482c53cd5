"""``callcenter`` command line: serve, demo, db migrate, config check, and the adapters' commands."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from callcenter.config import ROLES, Config, ConfigError, load_config
from callcenter.logs import setup_logging

# Adapters that add sub-commands: each module has ``register(subparsers)``.
ADAPTER_COMMANDS = ("bridges.legacy_pbx.cli", "dialplan.cli", "api.cli", "callcenter.demo")


def _parse_roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise argparse.ArgumentTypeError(f"roles must be a comma-separated subset of {','.join(ROLES)}")
    return roles


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    parser.add_argument("--config", help="path to callcenter.toml (default: $CALLCENTER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--roles", type=_parse_roles, default=ROLES, help="ari,agi,api,legacy (default: all)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(func=cmd_db_migrate)

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate the configuration and print a summary")
    check.set_defaults(func=cmd_config_check)

    for module_name in ADAPTER_COMMANDS:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(sub)
    return parser


def load_or_exit(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from callcenter.runner import install_signal_handlers, run_service

    config = load_or_exit(args)
    setup_logging(config.log_format, config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)

        def ready(_ctx: object) -> None:
            print(f"serving on http://{config.http.host}:{config.http.port}/", flush=True)

        await run_service(config, args.roles, stop=stop, on_ready=ready)

    asyncio.run(main())
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from callcenter.runner import open_store
    from callcenter.store import CallStore

    config = load_or_exit(args)
    setup_logging(config.log_format, config.log_level)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            dsn, _ = await open_store(config, stack)
            store = await CallStore.connect(dsn, run_migrations=False)
            stack.push_async_callback(store.close)
            from callcenter.store import migrate

            async with store.pool.acquire() as conn:
                applied = await migrate(conn)
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))

    asyncio.run(main())
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    print(f"configuration OK ({config.source_path or 'defaults'})")
    print(f"  database: {'dsn set' if config.database.dsn else 'embedded PostgreSQL in ' + config.database.data_dir}")
    print(f"  http: {config.http.host}:{config.http.port}")
    for pbx in config.pbx:
        print(f"  pbx {pbx.key}: kind={pbx.kind} prefix={pbx.outside_line_prefix!r} "
              f"country={pbx.country_code!r} city={pbx.city_code!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
