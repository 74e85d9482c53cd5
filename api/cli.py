"""``callcenter token create|list|revoke``: API tokens from the command line (the first admin token too)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.commands import run_with_pool
from callcenter.domain import TOKEN_ROLES
from callcenter.store import tokens as token_store


def _expires_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of days") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("must be between 1 and 3650")
    return days


def register(subparsers: Any) -> None:
    token = subparsers.add_parser("token", help="API tokens")
    sub = token.add_subparsers(dest="token_command", required=True)
    create = sub.add_parser("create", help="create a token and print its secret (shown once)")
    create.add_argument("--role", required=True, choices=TOKEN_ROLES)
    create.add_argument("--extension", default="", help="the agent's / supervisor's extension")
    create.add_argument("--org-unit", default="", help="org unit a supervisor token covers")
    create.add_argument("--pbx", default="", help="limit a crm token to one PBX")
    create.add_argument("--name", default="", help="a label for the token list")
    create.add_argument("--expires-days", type=_expires_days, default=None, help="days until the token expires")
    create.set_defaults(func=cmd_create)
    listing = sub.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(func=cmd_list)
    revoke = sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", help="token id (uuid)")
    revoke.set_defaults(func=cmd_revoke)


def _with_pool(args: argparse.Namespace, action: Callable[[Any], Awaitable[int]]) -> int:
    return run_with_pool(args, action, "token")


def cmd_create(args: argparse.Namespace) -> int:
    if args.role == "agent" and not args.extension:
        print("an agent token needs --extension", file=sys.stderr)
        return 2

    async def create(pool: Any) -> int:
        expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
        row, secret = await token_store.create_token(pool, role=args.role, extension=args.extension,
                                                     org_unit=args.org_unit, pbx=args.pbx, name=args.name,
                                                     expires_at=expires)
        print(f"id: {row['id']}")
        print(f"role: {row['role']}  extension: {row['extension'] or '-'}  org_unit: {row['org_unit'] or '-'}"
              f"  pbx: {row['pbx'] or '-'}  expires: {row['expires_at'].isoformat() if expires else 'never'}")
        print("secret (shown once, store it now):")
        print(secret)
        return 0

    return _with_pool(args, create)


def cmd_list(args: argparse.Namespace) -> int:
    async def listing(pool: Any) -> int:
        for row in await token_store.list_tokens(pool):
            state = "revoked" if row["revoked_at"] else (
                "expired" if row["expires_at"] and row["expires_at"] <= datetime.now(UTC) else "active")
            print(f"{row['id']}  {row['role']:<10} {state:<8} ext={row['extension'] or '-'} "
                  f"org_unit={row['org_unit'] or '-'} pbx={row['pbx'] or '-'} name={row['name'] or '-'}"
                  f" created={row['created_at']:%Y-%m-%d}")
        return 0

    return _with_pool(args, listing)


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        token_id = uuid.UUID(args.id)
    except ValueError:
        print(f"{args.id!r} is not a token id", file=sys.stderr)
        return 2

    async def revoke(pool: Any) -> int:
        if not await token_store.revoke_token(pool, token_id):
            print(f"no token {token_id}", file=sys.stderr)
            return 1
        print(f"revoked {token_id}")
        return 0

    return _with_pool(args, revoke)
