"""``callcenter monitor-group list|show|create|update|delete|access``: the admin page's monitor groups, scripted.

The same store functions as ``/api/v1/admin/monitor-groups`` (same validation, same rule), so a group made
here takes effect on the next ``*336`` attempt exactly as one made in the browser.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.commands import run_with_pool
from callcenter.domain import MonitorMode
from callcenter.store import admin as admin_store
from callcenter.store import monitor_groups as group_store

LEVELS = [m.value for m in MonitorMode]


def _extensions(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("monitor-group", help="monitor groups: who may listen / whisper / barge / take over")
    sub = group.add_subparsers(dest="monitor_group_command", required=True)
    listing = sub.add_parser("list", help="list the groups")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="one group")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_show)
    for name, helptext in (("create", "create a group"), ("update", "replace a group (by id)")):
        p = sub.add_parser(name, help=helptext)
        if name == "update":
            p.add_argument("id", type=int)
        p.add_argument("--name", required=True)
        p.add_argument("--level", required=True, choices=LEVELS, help="the highest mode the group allows")
        p.add_argument("--observers", type=_extensions, default=[], help="comma-separated extensions that monitor")
        p.add_argument("--observed", type=_extensions, default=[],
                       help="comma-separated extensions that may be monitored; * for everyone")
        p.add_argument("--announce", action="store_true", help="play a notice to the monitored agent")
        p.set_defaults(func=cmd_create if name == "create" else cmd_update)
    delete = sub.add_parser("delete", help="delete a group (by id)")
    delete.add_argument("id", type=int)
    delete.set_defaults(func=cmd_delete)
    access = sub.add_parser("access", help="who may monitor whom, as the groups decide it now")
    access.add_argument("--observer", default="", help="only this observer")
    access.set_defaults(func=cmd_access)


def _run(args: argparse.Namespace, action: Callable[[Any], Awaitable[int]]) -> int:
    return run_with_pool(args, action, "monitor-group")


def _line(row: dict[str, Any]) -> str:
    return (f"{row['id']:>4}  {row['name']:<20} {row['level']:<9} observers: {','.join(row['observers']) or '-'}"
            f"  observed: {','.join(row['observed']) or '-'}{'  announce' if row['announce'] else ''}")


def cmd_list(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        rows = await group_store.list_groups(pool)
        if args.json:
            print(json.dumps(rows))
        else:
            for row in rows:
                print(_line(row))
        return 0

    return _run(args, action)


def cmd_show(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        print(_line(await group_store.get_group(pool, args.id)))
        return 0

    return _run(args, action)


def cmd_create(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        row = await group_store.create_group(pool, name=args.name, level=args.level, observers=args.observers,
                                             observed=args.observed, announce=args.announce)
        print(_line(row))
        return 0

    return _run(args, action)


def cmd_update(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        row = await group_store.update_group(pool, args.id, name=args.name, level=args.level,
                                             observers=args.observers, observed=args.observed, announce=args.announce)
        print(_line(row))
        return 0

    return _run(args, action)


def cmd_delete(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        await group_store.delete_group(pool, args.id)
        print(f"deleted monitor group {args.id}")
        return 0

    return _run(args, action)


def cmd_access(args: argparse.Namespace) -> int:
    async def action(pool: Any) -> int:
        groups = await group_store.list_groups(pool)
        directory = [row["number"] for row in await admin_store.list_extensions(pool)]
        for row in group_store.access_rows(groups, directory):
            if args.observer and row["observer"] != args.observer:
                continue
            target = "everyone else" if row["observed"] == "*" else row["observed"]
            print(f"{row['observer']} may {row['level']} {target}{' (announced)' if row['announce'] else ''}"
                  f"  [{', '.join(row['groups'])}]")
        return 0

    return _run(args, action)
