"""``callcenter dialplan render``: write the snippets a PBX admin ``#include``s."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from callcenter.config import ConfigError, load_config
from dialplan.render import RenderError, RenderOptions, render_all, write_rendered


def register(subparsers: Any) -> None:
    dialplan = subparsers.add_parser("dialplan", help="Asterisk dialplan snippets and settings")
    sub = dialplan.add_subparsers(dest="dialplan_command", required=True)
    render = sub.add_parser("render", help="render extensions/ari/http/manager snippets into a folder")
    # Also accepted after the sub-command; SUPPRESS keeps a global --config given before it.
    render.add_argument("--config", default=argparse.SUPPRESS, help="path to callcenter.toml")
    render.add_argument("--out", required=True, help="output folder (created if missing)")
    render.add_argument("--pbx", default="", help="which [[pbx]] (default: the first asterisk)")
    render.add_argument("--agi-address", default="",
                        help="host:port Asterisk connects to for FastAGI (default: agi.host:agi.port)")
    render.add_argument("--bind-address", default="127.0.0.1", help="bindaddr for http.conf and manager.conf")
    render.add_argument("--permit", action="append", default=None,
                        help="address/netmask allowed to log in to AMI (repeatable; default 127.0.0.1)")
    render.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    try:
        config = load_config(getattr(args, "config", None))
        options = RenderOptions(pbx=args.pbx, agi_address=args.agi_address, bind_address=args.bind_address,
                                permit=tuple(args.permit) if args.permit else RenderOptions().permit)
        files = render_all(config, options)
    except (ConfigError, RenderError) as exc:
        print(f"cannot render: {exc}", file=sys.stderr)
        return 2
    for path in write_rendered(files, Path(args.out)):
        print(path)
    return 0
