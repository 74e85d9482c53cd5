"""What the sub-commands of every package share: the configuration with a clear exit, the store for one action.

Adapters register their own sub-commands (``api.cli``, ``bridges.legacy_pbx.cli``); they read these helpers
from the core rather than from the composition root, so no adapter imports ``callcenter.cli`` or
``callcenter.runner``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.config import Config, ConfigError, load_config
from callcenter.domain import DomainError
from callcenter.store.opening import open_call_store

EXIT_CONFIG = 2  # a bad configuration: systemd does not restart on it (RestartPreventExitStatus)


def load_or_exit(args: argparse.Namespace) -> Config:
    """The configuration ``--config`` names; a bad one is exit 2 with the reason on stderr."""
    try:
        return load_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def run_with_pool(args: argparse.Namespace, action: Callable[[Any], Awaitable[int]], command: str) -> int:
    """An admin command's database work: the configured (or the running private) cluster, a two-connection pool,
    ``action(pool)``'s exit code; a value the store refuses is exit 1 with the reason on stderr."""
    config = load_or_exit(args)

    async def main() -> int:
        async with open_call_store(config) as store:
            try:
                return await action(store.pool)
            except DomainError as exc:
                print(f"{command}: {exc}", file=sys.stderr)
                return 1

    return asyncio.run(main())
