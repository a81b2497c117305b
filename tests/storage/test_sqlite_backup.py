"""Online backup of the SQLite store: a consistent snapshot while appends go
on, and clear refusals."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.utils import wait_for
from threadline.exceptions import StorageError
from threadline.protocol.offsets import Offset
from threadline.storage.base import AppendRequest, LogConfig, LogKey
from threadline.storage.sqlite import SQLiteLogStore
from threadline.storage.sqlite_backup import backup

KEY = LogKey("default", "stream:s")
TEXT = LogConfig("text/plain")


async def started(path: Path) -> SQLiteLogStore:
    store = SQLiteLogStore(str(path))
    await store.start()
    return store


async def records(store: SQLiteLogStore, key: LogKey, after: Offset | None = None):
    """Every record after ``after``, as (offset, data) pairs."""
    out: list[tuple[Offset, bytes]] = []
    while True:
        result = await store.read(key, after, max_bytes=1 << 20)
        out += [(r.offset, r.data) for r in result.records]
        after = result.next_offset
        if result.up_to_date:
            return out


async def append(store: SQLiteLogStore, key: LogKey, *data: bytes) -> list[Offset]:
    request = AppendRequest(records=list(data), content_type="text/plain")
    result = await store.append(key, request)
    return result.offsets


async def test_backup_is_a_consistent_snapshot_while_appends_go_on(
    tmp_path: Path,
) -> None:
    """A backup taken while a writer appends holds a prefix of the log: every
    append acknowledged before it began, none half, nothing out of order."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    store = await started(db)
    await store.create(KEY, TEXT)
    acked = 0
    running = True

    async def writer() -> None:
        nonlocal acked
        while running:
            await append(store, KEY, f"r{acked}".encode())
            acked += 1

    task = asyncio.create_task(writer())
    await wait_for(lambda: acked >= 50 or task.done(), 10.0)
    assert not task.done()
    before = acked
    info = await asyncio.to_thread(backup, str(db), str(copy))
    after = acked
    running = False
    await task
    await store.stop()
    assert (info.logs, info.path) == (1, str(copy))
    copied = await started(copy)
    try:
        data = [d for _, d in await records(copied, KEY)]
    finally:
        await copied.stop()
    assert before <= len(data) <= after + 1
    assert data == [f"r{i}".encode() for i in range(len(data))]
    assert info.records == len(data)


async def test_backup_never_overwrites_and_needs_a_store(tmp_path: Path) -> None:
    """An existing destination, a missing source and a file that is not a
    Threadline store are refused, and leave no partial file behind."""
    db = tmp_path / "s.db"
    store = await started(db)
    await store.stop()
    (tmp_path / "taken.db").write_bytes(b"x")
    with pytest.raises(StorageError, match="exists"):
        backup(str(db), str(tmp_path / "taken.db"))
    with pytest.raises(StorageError, match="no SQLite store"):
        backup(str(tmp_path / "missing.db"), str(tmp_path / "b1.db"))
    sqlite3.connect(tmp_path / "other.db").execute(
        "CREATE TABLE t (x)"
    ).connection.commit()
    with pytest.raises(StorageError, match="not a Threadline store"):
        backup(str(tmp_path / "other.db"), str(tmp_path / "b2.db"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b")) == []


async def test_backup_refuses_a_store_of_another_schema_version(tmp_path: Path) -> None:
    """A file of another schema version (a newer release's) is not copied
    as if it were this release's."""
    db = tmp_path / "s.db"
    store = await started(db)
    await store.stop()
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version={version + 1}")
    with pytest.raises(StorageError, match="schema version"):
        backup(str(db), str(tmp_path / "b.db"))
    assert not (tmp_path / "b.db").exists()
