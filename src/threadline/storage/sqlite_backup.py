"""Online backup and restore of the SQLite store.

**Backup** copies a consistent snapshot of the database while the server runs:
SQLite's online backup API reads every page inside one read transaction, and
in WAL mode a reader never blocks the writer. The snapshot holds exactly the
commits made before it began, so every append it holds was acknowledged, and
an acknowledged append is either in it or after it, never half in it. The copy
is written beside the destination, fsync'd, checked and then renamed into
place; a backup that fails leaves no file that looks like one.

**Restore** puts a backup in place of a store's file, offline (it takes the
store's lock, so it fails clearly while a server runs on that file), and
continues every log in a **new generation** after the backup's tail. The
generation it had is kept under a reserved name, as the source of the
continuation (the way a fork keeps its source), so:

- every offset the backup holds still reads the same records, and the
  derived state in the index (session state, idempotency entries, cursors),
  which names those offsets, stays true;
- offsets minted after the backup was taken, by appends the restore lost,
  are answered ``410 offset_gone`` with the earliest and tail offsets instead
  of naming new records: a reader that saw them re-syncs, never silently
  skips or reads something else at a position it already had;
- new generations are past the wall clock, above anything issued before.

Idempotent producers keep the state the backup had: a producer whose later
appends were lost is told so by the protocol's sequence checks. Writes
acknowledged after the backup are lost, as with any restore
(``docs/howto/deploy.md`` says what clients see). The session layer reads
logs that span generations through :attr:`LogInfo.chain
<threadline.storage.base.LogInfo.chain>`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import StorageError
from .sqlite import SQLiteLogStore
from .sqlite_rows import COLUMNS, MIGRATIONS, restored_name

__all__ = ["BackupInfo", "RestoreInfo", "backup", "restore"]

_SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup copied."""

    path: str
    bytes: int
    logs: int
    records: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreInfo:
    """What a restore put in place."""

    path: str
    logs: int
    """Logs continued in a new generation."""
    records: int


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
        _put_in_place(partial, dest)
    except sqlite3.Error as exc:
        raise StorageError(f"backup of {path} failed: {exc}") from exc
    finally:
        source.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return BackupInfo(
        dest, os.path.getsize(dest), logs, records, time.monotonic() - started
    )


def restore(backup_path: str, path: str, *, replace: bool = False) -> RestoreInfo:
    """Put the backup at ``backup_path`` in place of the store at ``path``.

    Raises:
        StoreLocked: a server runs on ``path``.
        StorageError: ``path`` exists and ``replace`` is false, or the backup
            is not a sound Threadline store (nothing at ``path`` changed).
    """
    store = SQLiteLogStore(path)
    store._take_lock()  # noqa: SLF001 - the store's own lock, from its package
    try:
        if os.path.exists(path) and not replace:
            raise StorageError(
                f"{path} exists: restore with replace=True (--replace) to"
                " overwrite it, after taking a backup of it"
            )
        source = _open_existing(backup_path)
        partial = f"{path}.restoring-{os.getpid()}"
        try:
            _check_schema(source, backup_path)
            _check_integrity(source, backup_path)
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=WAL")
                store._raise_generation_floor(target)  # noqa: SLF001
                logs = _continue_logs(target)
                records = _counts(target)[1]
                target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                target.close()
            for suffix in ("-wal", "-shm"):  # the replaced file's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
            _put_in_place(partial, path)
        except sqlite3.Error as exc:
            raise StorageError(f"restore of {backup_path} failed: {exc}") from exc
        finally:
            source.close()
            for leftover in (partial, partial + "-wal", partial + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
    finally:
        store._release_lock()  # noqa: SLF001
    return RestoreInfo(path, logs, records)


def _continue_logs(conn: sqlite3.Connection) -> int:
    """Continue every live log in a new generation after its tail (one commit)."""
    conn.execute("BEGIN IMMEDIATE")
    live = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE soft_deleted=0 ORDER BY generation"
    ).fetchall()
    for row in live:
        generation, tenant, name = row[0], row[1], row[2]
        top = conn.execute(
            "SELECT MAX(position) FROM records WHERE generation=?", (generation,)
        ).fetchone()[0]
        tail = max(row[11], top or 0)
        conn.execute(
            "UPDATE logs SET name=?, tail=?, soft_deleted=1, children=children+1"
            " WHERE generation=?",
            (restored_name(generation, name), tail, generation),
        )
        cursor = conn.execute(
            "INSERT INTO logs (tenant, name, content_type, ttl, expires_at, base,"
            " parent, fork_name, fork_position, fork_sub, tail, closed,"
            " closed_by_id, closed_by_epoch, closed_by_seq, stream_seq,"
            " last_access, soft_deleted, children)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
            (tenant, name, *row[3:6], tail, generation, *row[8:11], tail, *row[12:18]),
        )
        conn.execute(
            "INSERT INTO producers (generation, producer_id, epoch, seq)"
            " SELECT ?, producer_id, epoch, seq FROM producers WHERE generation=?",
            (cursor.lastrowid, generation),
        )
    conn.execute("COMMIT")
    return len(live)


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


def _put_in_place(partial: str, path: str) -> None:
    """Make the finished copy ``partial`` the file ``path``, durably: its
    bytes, then the rename (the directory entry)."""
    _fsync(partial)
    os.replace(partial, path)
    _fsync(os.path.dirname(os.path.abspath(path)))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
