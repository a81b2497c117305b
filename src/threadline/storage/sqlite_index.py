"""The index seam on SQLite: transactions inside the group commit, committed reads.

A :class:`SQLiteTxn` runs as one operation of a group-commit batch, on the
event loop thread, with the batch's transaction open on the write connection:
its reads see everything earlier in the batch. It buffers what the callback
appends and puts, and writes it into the batch only once the callback
returned, so a callback that raises leaves no trace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..exceptions import LogClosed, StorageError
from ..protocol.offsets import Offset, offset_at
from .base import LogInfo, LogKey
from .index import MAX_SCAN, BufferedTxn, IndexStore, check_table
from .sqlite_rows import Row, Snapshot

if TYPE_CHECKING:
    from .sqlite import SQLiteLogStore

__all__ = ["SQLiteIndexStore", "SQLiteTxn"]

_GET = "SELECT value FROM kv WHERE tenant=? AND tbl=? AND key=?"
_SCAN = (
    "SELECT key, value FROM kv WHERE tenant=? AND tbl=? AND key>=? AND key<? "
    "AND key>? ORDER BY key LIMIT ?"
)


def _scan(
    conn: sqlite3.Connection,
    tenant: str,
    table: str,
    prefix: str,
    after: str | None,
    limit: int,
) -> list[tuple[str, bytes]]:
    # Keys starting with ``prefix`` sort in [prefix, prefix + U+10FFFF).
    upper = prefix + "\U0010ffff"
    rows = conn.execute(_SCAN, (tenant, table, prefix, upper, after or "", limit))
    return [(key, bytes(value)) for key, value in rows]


class SQLiteTxn(BufferedTxn):
    """One :meth:`SQLiteLogStore.transact` callback's view and buffer."""

    def __init__(
        self,
        store: SQLiteLogStore,
        conn: sqlite3.Connection,
        snapshots: list[Snapshot],
        tenant: str,
    ) -> None:
        super().__init__(tenant)
        self._store = store
        self._conn = conn
        self._snapshots = snapshots
        self._appends: dict[str, tuple[Row, list[bytes]]] = {}

    def _log(self, name: str) -> tuple[Row, list[bytes]]:
        found = self._appends.get(name)
        if found is None:
            key = LogKey(self.tenant, name)
            row = self._store._wlive(self._conn, key, self._snapshots)
            found = self._appends[name] = (row, [])
        return found

    def info(self, name: str) -> LogInfo:
        row, pending = self._log(name)
        info = row.info()
        if not pending:
            return info
        tail = Offset(row.generation, row.tail + len(pending))
        return LogInfo(
            info.key,
            info.generation,
            info.config,
            tail,
            info.earliest,
            info.closed,
            info.fork_of,
        )

    def append(self, name: str, records: Sequence[bytes]) -> list[Offset]:
        row, pending = self._log(name)
        if row.closed:
            raise LogClosed(offset_at(row.segments(), row.tail))
        first = row.tail + len(pending) + 1
        pending.extend(records)
        return [Offset(row.generation, p) for p in range(first, first + len(records))]

    def _get_committed(self, table: str, key: str) -> bytes | None:
        # The write connection: it sees earlier operations of this batch.
        found = self._conn.execute(_GET, (self.tenant, table, key)).fetchone()
        return None if found is None else bytes(found[0])

    def _scan_committed(
        self, table: str, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        return _scan(self._conn, self.tenant, table, prefix, after, limit)

    def commit(self, now: float) -> None:
        """Write the buffered appends and puts into the open batch."""
        for row, records in self._appends.values():
            if records:
                self._store._write_records(row, records, now)
        upserts = [
            (self.tenant, t, k, v) for (t, k), v in self._puts.items() if v is not None
        ]
        deletes = [(self.tenant, t, k) for (t, k), v in self._puts.items() if v is None]
        if upserts:
            self._conn.executemany(
                "INSERT INTO kv (tenant, tbl, key, value) VALUES (?,?,?,?) "
                "ON CONFLICT (tenant, tbl, key) DO UPDATE SET value=excluded.value",
                upserts,
            )
        if deletes:
            self._conn.executemany(
                "DELETE FROM kv WHERE tenant=? AND tbl=? AND key=?", deletes
            )


class SQLiteIndexStore(IndexStore):
    """Committed reads of a :class:`SQLiteLogStore`'s index (read connection)."""

    def __init__(self, store: SQLiteLogStore) -> None:
        self._store = store

    async def get(self, tenant: str, table: str, key: str) -> bytes | None:
        check_table(table)
        conn = self._store._require_reader()
        try:
            found = conn.execute(_GET, (tenant, table, key)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"index read failed: {exc}") from exc
        return None if found is None else bytes(found[0])

    async def scan(
        self,
        tenant: str,
        table: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, bytes]]:
        check_table(table)
        conn = self._store._require_reader()
        try:
            return _scan(conn, tenant, table, prefix, after, min(limit, MAX_SCAN))
        except sqlite3.Error as exc:
            raise StorageError(f"index read failed: {exc}") from exc
