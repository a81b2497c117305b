"""SQLite-specific promises: durability settings, lock, schema, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.utils import MS, wait_for
from threadline.exceptions import (
    ContentTypeMismatch,
    OffsetGone,
    StorageError,
    StoreLocked,
)
from threadline.protocol.offsets import Offset
from threadline.storage.base import AppendRequest, LogConfig, LogKey
from threadline.storage.sqlite import SQLiteLogStore
from threadline.storage.sqlite_rows import MIGRATIONS

KEY = LogKey("default", "stream:s")
TEXT = LogConfig("text/plain")


async def started(
    path: Path, cls: type[SQLiteLogStore] = SQLiteLogStore
) -> SQLiteLogStore:
    store = cls(str(path))
    await store.start()
    return store


async def test_sqlite_uses_wal_with_full_sync(tmp_path: Path) -> None:
    """The store runs SQLite in WAL mode with synchronous=FULL (2)."""
    store = await started(tmp_path / "s.db")
    try:
        settings = store.settings()
    finally:
        await store.stop()
    assert settings["journal_mode"] == "wal"
    assert settings["synchronous"] == 2


async def test_sqlite_records_schema_version(tmp_path: Path) -> None:
    """A new file is migrated to the newest schema and says so in user_version."""
    store = await started(tmp_path / "s.db")
    await store.stop()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)


async def test_sqlite_refuses_newer_schema(tmp_path: Path) -> None:
    """A file written by a newer Threadline is refused, not silently misread."""
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    store = SQLiteLogStore(str(tmp_path / "s.db"))
    with pytest.raises(StorageError, match="schema"):
        await store.start()


async def test_sqlite_second_store_on_same_file_is_locked(tmp_path: Path) -> None:
    """While one store holds a file, another one fails to start with StoreLocked."""
    first = await started(tmp_path / "s.db")
    try:
        with pytest.raises(StoreLocked, match="one process"):
            await started(tmp_path / "s.db")
    finally:
        await first.stop()
    second = await started(tmp_path / "s.db")  # free again once released
    await second.stop()


async def test_sqlite_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """Appends queued while a commit runs are written together in few commits."""
    store = await started(tmp_path / "s.db")
    try:
        await store.create(KEY, TEXT)
        before = store.stats.commits
        results = await asyncio.gather(
            *(
                store.append(KEY, AppendRequest([b"x%d" % i], "text/plain"))
                for i in range(64)
            )
        )
        commits = store.stats.commits - before
    finally:
        await store.stop()
    assert sorted(r.tail.position for r in results) == list(range(1, 65))
    assert commits <= 8, f"64 appends took {commits} commits"


class _GatedStore(SQLiteLogStore):
    """Holds every COMMIT until the test opens the gate."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.in_commit = threading.Event()

    def _commit(self, conn: sqlite3.Connection) -> None:
        self.in_commit.set()
        self.gate.wait(timeout=10)
        super()._commit(conn)


async def test_sqlite_append_is_acknowledged_only_after_commit(tmp_path: Path) -> None:
    """An append neither returns nor becomes readable before its COMMIT returns."""
    store = await started(tmp_path / "s.db", _GatedStore)
    assert isinstance(store, _GatedStore)
    try:
        store.gate.set()
        await store.create(KEY, TEXT)
        store.gate.clear()
        store.in_commit.clear()
        append = asyncio.ensure_future(
            store.append(KEY, AppendRequest([b"a"], "text/plain"))
        )
        await wait_for(store.in_commit.is_set, 2000 * MS)
        read = await store.read(KEY, None, max_bytes=1024)
        assert not append.done()
        assert read.records == []
        store.gate.set()
        result = await asyncio.wait_for(append, 2000 * MS)
        read = await store.read(KEY, None, max_bytes=1024)
    finally:
        store.gate.set()
        await store.stop()
    assert [r.data for r in read.records] == [b"a"]
    assert read.next_offset == result.tail


async def test_sqlite_refused_append_leaves_its_batch_alone(tmp_path: Path) -> None:
    """An append the rules refuse fails alone; the rest of its batch commits."""
    store = await started(tmp_path / "s.db")
    try:
        await store.create(KEY, TEXT)
        outcomes = await asyncio.gather(
            store.append(KEY, AppendRequest([b"a"], "text/plain")),
            store.append(KEY, AppendRequest([b"{}"], "application/json")),
            store.append(KEY, AppendRequest([b"b"], "text/plain")),
            return_exceptions=True,
        )
        read = await store.read(KEY, None, max_bytes=1024)
    finally:
        await store.stop()
    assert isinstance(outcomes[1], ContentTypeMismatch)
    assert [r.data for r in read.records] == [b"a", b"b"]


class _FailingStore(SQLiteLogStore):
    """Fails the next COMMIT once."""

    fail_next = False

    def _commit(self, conn: sqlite3.Connection) -> None:
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("disk I/O error (injected)")
        super()._commit(conn)


async def test_sqlite_failed_commit_fails_batch_and_recovers(tmp_path: Path) -> None:
    """A failed COMMIT fails every append in it, writes none, and the store goes on."""
    store = await started(tmp_path / "s.db", _FailingStore)
    assert isinstance(store, _FailingStore)
    try:
        await store.create(KEY, TEXT)
        store.fail_next = True
        with pytest.raises(StorageError, match="commit failed"):
            await store.append(KEY, AppendRequest([b"lost"], "text/plain"))
        after = await store.append(KEY, AppendRequest([b"kept"], "text/plain"))
    finally:
        await store.stop()
    store = await started(tmp_path / "s.db")
    try:
        read = await store.read(KEY, None, max_bytes=1024)
    finally:
        await store.stop()
    assert [r.data for r in read.records] == [b"kept"]
    assert read.next_offset == after.tail


async def test_sqlite_restored_copy_never_reissues_a_generation(tmp_path: Path) -> None:
    """A file restored from an older copy hands out generations above all before it."""
    now = [1_800_000_000.0]
    path = tmp_path / "s.db"
    store = SQLiteLogStore(str(path), clock=lambda: now[0])
    await store.start()
    await store.create(LogKey("default", "stream:a"), TEXT)
    await store.stop()
    backup = path.read_bytes()
    now[0] += 60
    store = SQLiteLogStore(str(path), clock=lambda: now[0])
    await store.start()
    lost, _ = await store.create(LogKey("default", "stream:b"), TEXT)
    await store.stop()
    path.write_bytes(backup)  # the disk is restored from the older copy
    now[0] += 60
    store = SQLiteLogStore(str(path), clock=lambda: now[0])
    await store.start()
    try:
        again, _ = await store.create(LogKey("default", "stream:b"), TEXT)
        with pytest.raises(OffsetGone):
            await store.read(LogKey("default", "stream:b"), lost.tail, max_bytes=1024)
    finally:
        await store.stop()
    assert again.generation > lost.generation


class _SlowPublish(SQLiteLogStore):
    """COMMITs, then holds the commit thread before the loop publishes it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.hold = threading.Event()
        self.committed = threading.Event()

    def _commit(self, conn: sqlite3.Connection) -> None:
        super()._commit(conn)
        self.committed.set()
        self.hold.wait(timeout=10)


async def test_sqlite_offset_committed_but_not_yet_published_is_readable(
    tmp_path: Path,
) -> None:
    """An offset already in the file is read as valid before the cache catches up."""
    store = await started(tmp_path / "s.db", _SlowPublish)
    assert isinstance(store, _SlowPublish)
    try:
        store.hold.set()
        info, _ = await store.create(KEY, TEXT)
        await store.read(KEY, None, max_bytes=1024)  # the row is now cached
        store.hold.clear()
        store.committed.clear()
        append = asyncio.ensure_future(
            store.append(KEY, AppendRequest([b"a"], "text/plain"))
        )
        await wait_for(store.committed.is_set, 2000 * MS)
        tail = Offset(info.generation, 1)  # what the index would already say
        read = await store.read(KEY, tail, max_bytes=1024)
        assert read.records == [] and read.up_to_date and read.next_offset == tail
        store.hold.set()
        await asyncio.wait_for(append, 2000 * MS)
        assert [
            r.data for r in (await store.read(KEY, None, max_bytes=1024)).records
        ] == [b"a"]
    finally:
        store.hold.set()
        await store.stop()
