"""``threadline backup`` and ``threadline restore``: the SQLite store's file,
copied online and put back (see :mod:`threadline.storage.sqlite_backup`)."""

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
    """Add ``backup`` and ``restore`` to the ``threadline`` subcommands."""
    backup = commands.add_parser(
        "backup",
        help="copy the SQLite store consistently, while the server runs",
        description="Copy a consistent snapshot of the SQLite store to DEST while"
        " the server keeps running, with its audit key (DEST-audit-key.pem) if"
        " it has one. DEST must not exist.",
    )
    backup.add_argument("dest", help="the backup file to write")
    backup.add_argument("--store", default="sqlite:///threadline.db", help=_STORE_HELP)
    restore = commands.add_parser(
        "restore",
        help="put a backup in place of the SQLite store (server stopped)",
        description="Put the backup BACKUP in place of the store's file, with its"
        " audit key if the backup has one. Every log continues in a new"
        " generation: offsets of the backup keep reading the same records, and"
        " offsets handed out after the backup was taken (writes the restore"
        " loses) are answered 410 offset_gone. Fails while a server runs on the"
        " store.",
    )
    restore.add_argument("backup", help="a file written by threadline backup")
    restore.add_argument("--store", default="sqlite:///threadline.db", help=_STORE_HELP)
    restore.add_argument(
        "--replace",
        action="store_true",
        help="overwrite an existing store file (take a backup of it first)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``backup`` or ``restore``; 0 on success, 1 with a message if not."""
    from .exceptions import StorageError
    from .storage import sqlite_path
    from .storage.sqlite_backup import backup, restore

    try:
        path = sqlite_path(args.store)
        if args.command == "backup":
            info = backup(path, args.dest)
            key = _copy_key(path, args.dest, replace=False)
            print(
                f"threadline: backed up {path} to {info.path}: {info.logs} logs,"
                f" {info.records} records, {info.bytes:,} bytes in"
                f" {info.seconds:.2f} s{key}"
            )
            return 0
        restored = restore(args.backup, path, replace=args.replace)
        key = _copy_key(args.backup, path, replace=args.replace)
        print(
            f"threadline: restored {args.backup} to {restored.path}:"
            f" {restored.logs} logs continue in new generations,"
            f" {restored.records} records{key}"
        )
        return 0
    except (StorageError, ValueError) as exc:
        print(f"threadline {args.command}: {exc}", file=sys.stderr)
        return 1


def _copy_key(source_db: str, dest_db: str, *, replace: bool) -> str:
    """Copy ``SOURCE-audit-key.pem`` beside ``dest_db`` (mode 0600), if any."""
    source, dest = source_db + _KEY_SUFFIX, dest_db + _KEY_SUFFIX
    if not os.path.isfile(source) or (os.path.exists(dest) and not replace):
        return ""
    fd = os.open(dest + ".partial", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as key:
        shutil.copyfileobj(key, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(dest + ".partial", dest)
    return f"; audit key copied to {dest}"
