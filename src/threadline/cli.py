"""The ``threadline`` command line: ``serve``, ``demo``, ``token``, ``tail``,
``publish``, ``audit verify``, ``backup``, ``restore``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import audit_verify, cli_backup, cli_client, cli_serve, cli_token
from .cli_args import DEFAULT_PORT as DEFAULT_PORT
from .cli_client import DEFAULT_URL as DEFAULT_URL, _event_line as _event_line
from .cli_serve import (
    DEV_SESSION as DEV_SESSION,
    DEV_TOKENS as DEV_TOKENS,
    DEV_TTL as DEV_TTL,
)
from .cli_token import ROLE_NAMES as ROLE_NAMES
from .demo import command as demo_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cli_serve.add_parser(commands)
    cli_token.add_parser(commands)
    cli_client.add_parser(commands)
    audit_verify.add_parser(commands)
    cli_backup.add_parser(commands)
    demo_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return cli_serve.run(args)
    if args.command in ("tail", "publish"):
        return cli_client.run(args)
    if args.command == "audit":
        return audit_verify.run(args)
    if args.command == "demo":
        return demo_command.run(args)
    if args.command in ("backup", "restore"):
        return cli_backup.run(args)
    return cli_token.run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
