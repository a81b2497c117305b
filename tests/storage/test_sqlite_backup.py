"""Online backup and restore of the SQLite store: consistent snapshots, and
restored logs that keep every old offset and never reuse a lost one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.utils import wait_for
from threadline.exceptions import InvalidOffset, OffsetGone, StorageError, StoreLocked
from threadline.protocol.offsets import Offset
from threadline.protocol.streams import ProducerClaim
from threadline.storage.base import AppendRequest, ForkSpec, LogConfig, LogKey
from threadline.storage.sqlite import SQLiteLogStore
from threadline.storage.sqlite_backup import backup, restore

KEY = LogKey("default", "stream:s")
FORK = LogKey("default", "stream:f")
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


async def lost_writes_scenario(
    tmp_path: Path,
) -> tuple[Path, Path, list[Offset], list[Offset]]:
    """A log with 5 records backed up, then 3 more appended (lost by a restore)."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    store = await started(db)
    await store.create(KEY, TEXT)
    kept = await append(store, KEY, b"a", b"b", b"c", b"d", b"e")
    await asyncio.to_thread(backup, str(db), str(copy))
    lost = await append(store, KEY, b"x", b"y", b"z")
    await store.stop()
    return db, copy, kept, lost


async def test_restore_keeps_old_offsets_and_continues_in_a_new_generation(
    tmp_path: Path,
) -> None:
    """After a restore the backup's offsets read the same records and the tail
    is the backup's; new appends get a newer generation and sort after it."""
    db, copy, kept, lost = await lost_writes_scenario(tmp_path)
    info = restore(str(copy), str(db), replace=True)
    assert (info.logs, info.records) == (1, 5)
    store = await started(db)
    try:
        head = await store.head(KEY)
        assert head.tail == kept[-1]
        assert [d for _, d in await records(store, KEY)] == [
            b"a",
            b"b",
            b"c",
            b"d",
            b"e",
        ]
        assert [d for _, d in await records(store, KEY, kept[1])] == [b"c", b"d", b"e"]
        [new] = await append(store, KEY, b"n")
        assert new.generation > kept[-1].generation
        assert new > kept[-1] and str(new) > str(kept[-1])
        assert new.position == kept[-1].position + 1
        assert await records(store, KEY, kept[-1]) == [(new, b"n")]
    finally:
        await store.stop()


async def test_restore_answers_offsets_of_lost_writes_gone(tmp_path: Path) -> None:
    """Offsets handed out after the backup (writes the restore lost) are gone,
    with the earliest and tail offsets, also once the log has grown past
    their positions: never read as someone else's records."""
    db, copy, kept, lost = await lost_writes_scenario(tmp_path)
    restore(str(copy), str(db), replace=True)
    store = await started(db)
    try:
        for offset in lost:
            with pytest.raises(OffsetGone) as caught:
                await store.read(KEY, offset, max_bytes=1 << 20)
            assert caught.value.earliest == Offset(kept[0].generation, 0)
            assert caught.value.tail == kept[-1]
        await append(store, KEY, b"1", b"2", b"3", b"4")
        for offset in lost:
            with pytest.raises(OffsetGone):
                await store.wait(KEY, offset, 0.01)
    finally:
        await store.stop()


async def test_restore_is_refused_while_a_server_holds_the_store(
    tmp_path: Path,
) -> None:
    """A running store keeps its file: restore fails clearly and changes nothing;
    without replace it never overwrites an existing store."""
    db, copy, kept, lost = await lost_writes_scenario(tmp_path)
    store = await started(db)
    try:
        with pytest.raises(StoreLocked):
            restore(str(copy), str(db), replace=True)
        assert len(await records(store, KEY)) == 8
    finally:
        await store.stop()
    with pytest.raises(StorageError, match="exists"):
        restore(str(copy), str(db))
    restore(str(copy), str(tmp_path / "fresh.db"))
    fresh = await started(tmp_path / "fresh.db")
    try:
        assert len(await records(fresh, KEY)) == 5
    finally:
        await fresh.stop()


async def test_restore_twice_keeps_every_generation_readable(tmp_path: Path) -> None:
    """A restored store backed up and restored again reads its whole history;
    the lost writes of each restore stay gone."""
    db, copy, kept, lost = await lost_writes_scenario(tmp_path)
    restore(str(copy), str(db), replace=True)
    store = await started(db)
    second = await append(store, KEY, b"f")
    await store.stop()
    copy2 = tmp_path / "copy2.db"
    backup(str(db), str(copy2))
    store = await started(db)
    lost2 = await append(store, KEY, b"lost")
    await store.stop()
    restore(str(copy2), str(db), replace=True)
    store = await started(db)
    try:
        assert [d for _, d in await records(store, KEY)] == [
            b"a",
            b"b",
            b"c",
            b"d",
            b"e",
            b"f",
        ]
        assert [d for _, d in await records(store, KEY, kept[2])] == [b"d", b"e", b"f"]
        for offset in [*lost, *lost2]:
            with pytest.raises(OffsetGone):
                await store.read(KEY, offset, max_bytes=1 << 20)
        [third] = await append(store, KEY, b"g")
        assert third.generation > second[0].generation > kept[0].generation
    finally:
        await store.stop()


async def test_deleting_a_restored_log_removes_every_generation(tmp_path: Path) -> None:
    """The generation a restore continued goes when the log is deleted."""
    db, copy, kept, lost = await lost_writes_scenario(tmp_path)
    restore(str(copy), str(db), replace=True)
    store = await started(db)
    await append(store, KEY, b"n")
    await store.delete(KEY)
    await store.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM logs").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0


async def test_restore_keeps_forks_and_producers(tmp_path: Path) -> None:
    """A fork reads its source's part after a restore (an offset of its source
    past the fork point stays invalid, not gone), and an idempotent producer
    goes on from the state the backup had."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    store = await started(db)
    await store.create(KEY, TEXT)
    offsets = await append(store, KEY, b"a", b"b", b"c")
    await store.create(FORK, None, fork=ForkSpec(KEY, offsets[1]))
    await append(store, FORK, b"f1")
    claim = ProducerClaim("p", 0, 0)
    await store.append(
        KEY, AppendRequest(records=[b"p0"], content_type="text/plain", producer=claim)
    )
    await store.stop()
    backup(str(db), str(copy))
    restore(str(copy), str(db), replace=True)
    store = await started(db)
    try:
        assert [d for _, d in await records(store, FORK)] == [b"a", b"b", b"f1"]
        with pytest.raises(InvalidOffset):
            await store.read(FORK, offsets[2], max_bytes=1 << 20)
        again = await store.append(
            KEY,
            AppendRequest(records=[b"p0"], content_type="text/plain", producer=claim),
        )
        assert again.duplicate
        nxt = await store.append(
            KEY,
            AppendRequest(
                records=[b"p1"],
                content_type="text/plain",
                producer=ProducerClaim("p", 0, 1),
            ),
        )
        assert not nxt.duplicate
        assert (await store.head(FORK)).fork_of is not None
    finally:
        await store.stop()
