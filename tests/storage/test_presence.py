"""The presence store contract (threadline.testing) against memory and SQLite,
and what the SQLite presence store promises on its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from threadline.exceptions import StorageError
from threadline.protocol.actors import Actor
from threadline.storage.memory import MemoryLogStore
from threadline.storage.presence import (
    MemoryPresenceStore,
    PresenceStore,
    SQLitePresenceStore,
    presence_store_for,
)
from threadline.storage.sqlite import SQLiteLogStore
from threadline.testing import (
    PRESENCE_CHECKS,
    MemoryPresenceHarness,
    PresenceCheck,
    PresenceHarness,
    run_presence_check,
)

DANA = Actor("cust_42", "customer", "Dana")
T0 = 1_700_000_000.0


class SQLitePresenceHarness(PresenceHarness):
    """One presence file; a restart is a new store object on the same file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    async def open(self) -> PresenceStore:
        store = SQLitePresenceStore(self.path)
        await store.start()
        return store

    async def restart(self, store: PresenceStore) -> PresenceStore:
        await store.stop()
        store = SQLitePresenceStore(self.path)
        await store.start()
        return store


@pytest.fixture(params=["memory", "sqlite"])
def presence_harness(request: pytest.FixtureRequest, tmp_path: Path) -> PresenceHarness:
    if request.param == "memory":
        return MemoryPresenceHarness()
    return SQLitePresenceHarness(tmp_path / "store.db-presence")


@pytest.mark.parametrize("check", PRESENCE_CHECKS, ids=lambda check: check.__name__)
async def test_presence_store_keeps_contract(
    presence_harness: PresenceHarness, check: PresenceCheck
) -> None:
    """The store passes the check; the check's docstring states the behaviour."""
    await run_presence_check(check, presence_harness)


async def test_sqlite_presence_lives_in_its_own_file(tmp_path: Path) -> None:
    """A SQLite log store gets a presence store on PATH-presence, with no fsync."""
    log_store = SQLiteLogStore(str(tmp_path / "s.db"))
    store = presence_store_for(log_store)
    assert isinstance(store, SQLitePresenceStore)
    assert store.path == str(tmp_path / "s.db-presence")
    await store.start()
    try:
        await store.set("t", "s", DANA, "tab-1", "active", 15.0, T0)
        conn = sqlite3.connect(store.path)
        try:
            assert conn.execute("SELECT count(*) FROM presence").fetchone() == (1,)
        finally:
            conn.close()
    finally:
        await store.stop()
    assert isinstance(presence_store_for(MemoryLogStore()), MemoryPresenceStore)


async def test_sqlite_presence_empties_a_file_of_another_schema(
    tmp_path: Path,
) -> None:
    """A presence file of an unknown schema version is emptied, not refused."""
    path = tmp_path / "p.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE presence (x)")
    conn.execute("INSERT INTO presence VALUES (1)")
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    store = SQLitePresenceStore(str(path))
    await store.start()
    try:
        assert await store.list("t", "s", T0) == []
        assert await store.set("t", "s", DANA, "tab-1", "idle", 15.0, T0) is None
    finally:
        await store.stop()


async def test_sqlite_presence_before_start_is_a_storage_error(
    tmp_path: Path,
) -> None:
    """Using the store before start() raises StorageError, not a driver error."""
    store = SQLitePresenceStore(str(tmp_path / "p.db"))
    with pytest.raises(StorageError):
        await store.list("t", "s", T0)
