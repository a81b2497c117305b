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

from ..exceptions import InvalidOffset, LogClosed, StorageError, TailMismatch
from ..protocol.offsets import Offset, offset_at, resolve
from .base import LogInfo, LogKey, Record, with_pending
from .index import MAX_SCAN, BufferedTxn, IndexStore, check_table
from .sqlite_rows import Row, Snapshot

if TYPE_CHECKING:
    from .sqlite import SQLiteLogStore

__all__ = ["SQLiteIndexStore", "SQLiteTxn"]

_GET = "SELECT value FROM kv WHERE tenant=? AND tbl=? AND key=?"
_RANGE = (
    "SELECT position, data FROM records WHERE generation=? AND position>? "
    "AND position<=? ORDER BY position"
)
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
        self._replaced: dict[tuple[str, int], bytes] = {}
        self._replaced_earlier: dict[tuple[str, int, int], bytes] = {}
        """Rewrites of records of a generation a restore continued."""

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
        return with_pending(info, len(pending)) if pending else info

    def append(
        self,
        name: str,
        records: Sequence[bytes],
        *,
        expected_tail: Offset | None = None,
    ) -> list[Offset]:
        row, pending = self._log(name)
        if row.closed:
            raise LogClosed(offset_at(row.segments(), row.tail))
        if expected_tail is not None:
            tail = self.info(name).tail
            if tail != expected_tail:
                raise TailMismatch(tail)
        first = row.tail + len(pending) + 1
        pending.extend(records)
        return [Offset(row.generation, p) for p in range(first, first + len(records))]

    def read(self, name: str, after: Offset | None, *, limit: int) -> list[Record]:
        row, pending = self._log(name)
        segments = row.segments()
        top = row.tail + len(pending)
        if after is None:
            start = 0
        elif after.generation == row.generation and after.position > row.tail:
            if after.position > top:
                raise InvalidOffset(f"offset {after} is beyond the tail")
            start = after.position  # among this transaction's appends
        else:
            start = resolve(segments, after)
        end = min(top, start + limit)
        records: list[Record] = []
        if start < row.tail:
            self._store._flush_records(self._conn)  # earlier writes of the batch
            try:
                for segment in segments:
                    low, high = max(start, segment.low), min(end, segment.high)
                    if low >= high:
                        continue
                    found = self._conn.execute(_RANGE, (segment.generation, low, high))
                    for position, data in found:
                        if segment.generation == row.generation:
                            data = self._replaced.get((name, position), data)
                        elif self._replaced_earlier:
                            data = self._replaced_earlier.get(
                                (name, segment.generation, position), data
                            )
                        offset = Offset(segment.generation, position)
                        records.append(Record(offset, bytes(data)))
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from exc
        for position in range(max(start, row.tail) + 1, end + 1):
            data = pending[position - row.tail - 1]
            records.append(Record(Offset(row.generation, position), data))
        return records

    def replace(self, name: str, offset: Offset, data: bytes) -> None:
        row, pending = self._log(name)
        position = offset.position
        if not (
            offset.generation == row.generation
            and row.base < position <= row.tail + len(pending)
        ):
            # A generation a restore continued holds the log's older records,
            # and only this log reads it (a fork's source is another log's).
            for segment in row.chain:
                if (
                    segment.lost_after
                    and segment.generation == offset.generation
                    and segment.low < position <= segment.high
                ):
                    self._replaced_earlier[(name, segment.generation, position)] = data
                    return
            raise InvalidOffset(f"no record of log {name} at {offset}")
        if position > row.tail:
            pending[position - row.tail - 1] = data
        else:
            self._replaced[(name, position)] = data

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
        for (name, position), data in self._replaced.items():
            self._store._replace_record(
                self._conn, self._appends[name][0], position, data
            )
        for (name, generation, position), data in self._replaced_earlier.items():
            self._store._replace_record(
                self._conn, self._appends[name][0], position, data, generation
            )
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

    async def tenants(self, table: str) -> list[str]:
        check_table(table)
        conn = self._store._require_reader()
        # Hop from tenant to tenant along the primary key: O(tenants · log n),
        # where a DISTINCT over tbl would read every entry of every table.
        found: list[str] = []
        tenant = ""
        try:
            while True:
                row = conn.execute(
                    "SELECT tenant FROM kv WHERE tenant > ? ORDER BY tenant LIMIT 1",
                    (tenant,),
                ).fetchone()
                if row is None:
                    return found
                tenant = row[0]
                if conn.execute(
                    "SELECT 1 FROM kv WHERE tenant=? AND tbl=? LIMIT 1", (tenant, table)
                ).fetchone():
                    found.append(tenant)
        except sqlite3.Error as exc:
            raise StorageError(f"index read failed: {exc}") from exc
