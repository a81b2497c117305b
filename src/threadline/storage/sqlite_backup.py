"""Online backup of the SQLite store.

A backup copies a consistent snapshot of the database while the server runs:
SQLite's online backup API reads every page inside one read transaction, and
in WAL mode a reader never blocks the writer. The snapshot holds exactly the
commits made before it began, so every append it holds was acknowledged, and
an acknowledged append is either in it or after it, never half in it. The copy
is written beside the destination, checked (``PRAGMA integrity_check``),
fsync'd and then renamed into place; a backup that fails leaves no file that
looks like one.

Restoring is not offered yet: a file put back in place would rewind every log,
and offsets handed out after the backup was taken could then name other
records. A restore has to continue each log in a new generation (so that
those offsets are answered ``410 offset_gone``), and the session layer has to
read sessions whose logs span two generations; ``docs/howto/deploy.md``
says what to do meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import StorageError
from .sqlite_rows import MIGRATIONS

__all__ = ["BackupInfo", "backup"]

_SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup copied."""

    path: str
    bytes: int
    logs: int
    records: int
    seconds: float


def backup(path: str, dest: str) -> BackupInfo:
    """Copy the store at ``path`` to ``dest``, consistently, while it may run.

    Raises:
        StorageError: ``path`` is not a Threadline SQLite store, ``dest``
            exists, or the copy failed (nothing is left at ``dest``).
    """
    started = time.monotonic()
    if os.path.exists(dest):
        raise StorageError(f"{dest} exists: a backup never overwrites a file")
    source = _open_existing(path)
    partial = f"{dest}.partial-{os.getpid()}"
    try:
        _check_schema(source, path)
        target = sqlite3.connect(partial, isolation_level=None)
        try:
            source.backup(target)  # every page in one step: one read snapshot
            logs, records = _counts(target)
            _check_integrity(target, partial)
        finally:
            target.close()
        _fsync(partial)
        os.replace(partial, dest)
        _fsync_dir(dest)
    except sqlite3.Error as exc:
        raise StorageError(f"backup of {path} failed: {exc}") from exc
    finally:
        source.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return BackupInfo(
        dest, os.path.getsize(dest), logs, records, time.monotonic() - started
    )


def _open_existing(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        raise StorageError(f"no SQLite store at {path}")
    try:
        uri = Path(path).absolute().as_uri() + "?mode=rw"
        return sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}") from exc


def _check_schema(conn: sqlite3.Connection, path: str) -> None:
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            )
        }
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a SQLite database: {exc}") from exc
    if not {"logs", "records", "kv", "producers"} <= tables or version < 1:
        raise StorageError(f"{path} is not a Threadline store")
    if version != _SCHEMA_VERSION:
        raise StorageError(
            f"{path} has schema version {version}; this release reads"
            f" {_SCHEMA_VERSION}: start a server of this release on it first"
        )


def _check_integrity(conn: sqlite3.Connection, path: str) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise StorageError(f"{path} failed its integrity check: {result}")


def _counts(conn: sqlite3.Connection) -> tuple[int, int]:
    logs = conn.execute("SELECT COUNT(*) FROM logs WHERE soft_deleted=0").fetchone()[0]
    records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    return logs, records


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
