"""``threadline backup``: the SQLite store's file, copied consistently while
the server runs (see :mod:`threadline.storage.sqlite_backup`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_STORE_HELP = "the server's store: sqlite:///PATH (default ./threadline.db) or sqlite:////ABS/PATH"
# Beside a SQLite database PATH: its audit signing key (server/audit.py KEY_SUFFIX).
_KEY_SUFFIX = "-audit-key.pem"


def add_parser(commands: Any) -> None:
    """Add ``backup`` to the ``threadline`` subcommands."""
    backup = commands.add_parser(
        "backup",
        help="copy the SQLite store consistently, while the server runs",
        description="Copy a consistent snapshot of the SQLite store to DEST while"
        " the server keeps running, with its audit key (DEST-audit-key.pem) if"
        " it has one. DEST must not exist.",
    )
    backup.add_argument("dest", help="the backup file to write")
    backup.add_argument("--store", default="sqlite:///threadline.db", help=_STORE_HELP)


def run(args: argparse.Namespace) -> int:
    """Run ``backup``; 0 on success, 1 with a message if not."""
    from .exceptions import StorageError
    from .storage import sqlite_path
    from .storage.sqlite_backup import backup

    try:
        path = sqlite_path(args.store)
        info = backup(path, args.dest)
        key = _copy_key(path, args.dest)
        print(
            f"threadline: backed up {path} to {info.path}: {info.logs} logs,"
            f" {info.records} records, {info.bytes:,} bytes in"
            f" {info.seconds:.2f} s{key}"
        )
        return 0
    except (StorageError, ValueError) as exc:
        print(f"threadline {args.command}: {exc}", file=sys.stderr)
        return 1


def _copy_key(source_db: str, dest_db: str) -> str:
    """Copy ``SOURCE-audit-key.pem`` beside ``dest_db`` (mode 0600), if any."""
    source, dest = source_db + _KEY_SUFFIX, dest_db + _KEY_SUFFIX
    if not os.path.isfile(source) or os.path.exists(dest):
        return ""
    fd = os.open(dest + ".partial", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as key:
        shutil.copyfileobj(key, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(dest + ".partial", dest)
    return f"; audit key copied to {dest}"
