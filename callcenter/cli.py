"""``callcenter`` command line: serve, demo, db migrate, config check, and the adapters' commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from api import cli as api_cli
from bridges.legacy_pbx import cli as legacy_cli
from callcenter import __version__, demo, doctor, install, monitor_group_cli
from callcenter.commands import EXIT_CONFIG, load_or_exit
from callcenter.config import SERVICE_ROLES, ConfigError
from callcenter.logs import setup_logging
from callcenter.store.opening import store_dsn
from dialplan import cli as dialplan_cli

if TYPE_CHECKING:
    from callcenter.store.migrate import MigrationState



class CommandModule(Protocol):
    """A package's sub-commands: ``register(subparsers)`` adds them (mypy checks each module below)."""

    def register(self, subparsers: Any) -> None: ...


# Modules that add sub-commands, imported directly: one that fails to import is an error, not a missing command.
ADAPTER_COMMANDS: tuple[CommandModule, ...] = (legacy_cli, dialplan_cli, api_cli, demo, install, doctor,
                                                monitor_group_cli)
EXIT_SCHEMA_TOO_NEW = 3  # the database was migrated by a newer release: restarting would not help


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's ``EnvironmentFile=`` reads them (``#``/``;`` comments, optional quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "a").isalnum():
            raise ConfigError(f"{path}:{number}", "expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _parse_roles(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in roles if r not in SERVICE_ROLES]
    if bad or not roles:
        raise argparse.ArgumentTypeError(f"roles must be a comma-separated subset of {','.join(SERVICE_ROLES)}")
    return roles


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"callcenter {__version__}")
    parser.add_argument("--config", help="path to callcenter.toml (default: $CALLCENTER_CONFIG)")
    parser.add_argument("--env-file", help="read secrets (KEY=VALUE lines, like the unit's EnvironmentFile=) "
                        "before the configuration, e.g. /etc/callcenter/callcenter.env")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--roles", type=_parse_roles, default=SERVICE_ROLES, help="ari,agi,api,legacy (default: all)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations")
    migrate.add_argument("--check", action="store_true",
                         help="only say what would run (exit 1 when something would); change nothing")
    migrate.set_defaults(func=cmd_db_migrate)

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate the configuration and print a summary")
    check.set_defaults(func=cmd_config_check)

    for module in ADAPTER_COMMANDS:
        module.register(sub)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from callcenter.runner import install_signal_handlers, run_service
    from callcenter.store.migrate import SchemaTooNew
    from callcenter.systemd import notify

    config = load_or_exit(args)
    setup_logging(config.log_format, config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)

        def ready(_ctx: object) -> None:
            print(f"serving on http://{config.http.host}:{config.http.port}/", flush=True)
            notify("READY=1")  # Type=notify: systemctl start returns now, dependants may start

        try:
            await run_service(config, args.roles, stop=stop, on_ready=ready)
        finally:
            notify("STOPPING=1")

    try:
        asyncio.run(main())
    except SchemaTooNew as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return EXIT_SCHEMA_TOO_NEW
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from callcenter.store import CallStore
    from callcenter.store.migrate import SchemaTooNew, migrate, migration_state

    config = load_or_exit(args)
    setup_logging(config.log_format, config.log_level)

    async def main() -> int:
        async with AsyncExitStack() as stack:
            dsn, _ = await store_dsn(config, stack)  # a running service's cluster is reused, not restarted
            store = await CallStore.connect(dsn, run_migrations=False)
            stack.push_async_callback(store.close)
            async with store.pool.acquire() as conn:
                if args.check:
                    return report_migration_state(await migration_state(conn))
                applied = await migrate(conn)
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
            return 0

    try:
        return asyncio.run(main())
    except SchemaTooNew as exc:
        print(f"cannot migrate: {exc}", file=sys.stderr)
        return EXIT_SCHEMA_TOO_NEW


def report_migration_state(state: MigrationState) -> int:
    """``db migrate --check``: 0 when up to date, 1 when migrations would run, 3 when the DB is too new."""
    print(f"applied: {len(state.applied)} migration(s)")
    if state.unknown:
        print("newer than this release (refused, no downgrade): " + ", ".join(state.unknown))
        return EXIT_SCHEMA_TOO_NEW
    if state.pending:
        print("would apply: " + ", ".join(state.pending))
        return 1
    print("would apply: nothing (up to date)")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    print(f"configuration OK ({config.source_path or 'defaults'})")
    print(f"  database: {'dsn set' if config.database.dsn else 'embedded PostgreSQL in ' + config.database.data_dir}")
    print(f"  http: {config.http.host}:{config.http.port}")
    for pbx in config.pbx:
        print(f"  pbx {pbx.key}: kind={pbx.kind} prefix={pbx.outside_line_prefix!r} "
              f"country={pbx.country_code!r} city={pbx.city_code!r}")
    for route in config.routes:
        via = f"trunk {route.trunk}" if route.trunk else f"context {route.context}"
        who = ", ".join([*(f"ext {u}" for u in route.users), *(f"org unit {o}" for o in route.org_units)])
        print(f"  route {route.name}: {via} on {route.pbx}, prefix={route.prefix!r}, for {who or 'every phone'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.env_file:
        # Start-up only: every command then loads its configuration with these secrets, as the service does.
        try:
            os.environ.update(read_env_file(args.env_file))
        except (OSError, ConfigError) as exc:
            print(f"--env-file: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
