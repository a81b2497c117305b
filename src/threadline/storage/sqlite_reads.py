"""The SQLite store's read side: a cache of committed rows and recent records.

Reads run on the event loop thread over the store's read connection. The
cache holds, per log, its committed metadata and its most recent records, fed
by the writer after every commit (:meth:`SQLiteReadCache.apply`), so live
readers at the tail are served without touching the database. It never holds
anything uncommitted.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from ..exceptions import LogGone, LogNotFound, StorageError
from ..protocol.offsets import Offset, offset_at, resolve
from .base import LogInfo, LogKey, ReadResult, Record, Waiters
from .sqlite_rows import Row, Snapshot, clone, load

__all__ = ["CACHED_LOGS", "SQLiteReadCache"]

RECENT_RECORDS: Final = 512
RECENT_BYTES: Final = 1 << 20
CACHED_LOGS: Final = 4096
READ_MEMO: Final = 1024
MEMO_RECORD_BYTES: Final = 16 * 1024


class SQLiteReadCache:
    """Committed rows and recent records of the logs being read (bounded LRU)."""

    def __init__(
        self,
        conn: Callable[[], sqlite3.Connection],
        waiters: Waiters,
        *,
        clock: Callable[[], float],
        on_expired: Callable[[LogKey], None],
    ) -> None:
        self._conn = conn
        self._waiters = waiters
        self._clock = clock
        self._on_expired = on_expired
        self._rows: OrderedDict[LogKey, Row] = OrderedDict()
        self._rtouch: dict[LogKey, float] = {}
        self._read_memo: dict[
            tuple[LogKey, Offset | None, int], tuple[Row, int, bool, ReadResult]
        ] = {}

    def clear(self) -> None:
        """Forget everything (a store restart)."""
        self._rows.clear()
        self._rtouch.clear()
        self._read_memo.clear()

    def touch(self, key: LogKey, now: float) -> None:
        """Refresh a cached row's access time; remember it for a row not cached."""
        row = self._rows.get(key)
        if row is not None:
            if not row.expired(now):  # an access never revives an expired log
                row.last_access = now
        else:
            if len(self._rtouch) > CACHED_LOGS:
                self._rtouch.clear()
            self._rtouch[key] = now

    def apply(self, snapshot: Snapshot) -> None:
        """Publish one committed change to the cache (in commit order)."""
        cached = self._rows.get(snapshot.key)
        if snapshot.row is None:
            if cached is not None and cached.generation == snapshot.generation:
                del self._rows[snapshot.key]
            return
        row = snapshot.row
        if cached is None:
            return  # loaded from the database on the next read
        if cached.generation > row.generation:
            return
        if cached.generation == row.generation:
            if row.tail < cached.tail:
                return  # the cache was loaded after this commit
            records = snapshot.records
            recent = cached.recent
            if (
                records
                and records[0][0] == cached.tail + 1
                and (not recent or recent[-1][0] == cached.tail)
            ):
                recent.extend(records)
                cached.recent_bytes += sum(len(data) for _, data in records)
            elif row.tail != cached.tail:
                recent.clear()
                cached.recent_bytes = 0
            while recent and (
                len(recent) > RECENT_RECORDS or cached.recent_bytes > RECENT_BYTES
            ):
                cached.recent_bytes -= len(recent.popleft()[1])
            cached.tail = row.tail
            cached.closed = cached.closed or row.closed
            cached.closed_by = row.closed_by
            cached.soft_deleted = row.soft_deleted
            cached.children = row.children
            cached.last_access = max(cached.last_access, row.last_access)
        else:
            self._rows[snapshot.key] = clone(row)

    def replace(self, key: LogKey, generation: int, position: int, data: bytes) -> None:
        """Publish a committed rewrite of one record (a redaction) to the cache."""
        self._read_memo.clear()  # memoized pages may hold the old bytes
        row = self._rows.get(key)
        if row is None or row.generation != generation or not row.recent:
            return
        index = position - row.recent[0][0]  # recent positions are contiguous
        if 0 <= index < len(row.recent):
            row.recent_bytes += len(data) - len(row.recent[index][1])
            row.recent[index] = (position, data)

    def row(self, key: LogKey) -> Row:
        """The committed row of a live log (loaded on a miss)."""
        row = self._rows.get(key)
        if row is None:
            conn = self._conn()
            try:
                loaded = load(conn, key)
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from exc
            if loaded is None:
                raise LogNotFound(f"no log {key}")
            row = loaded
            # An access refreshed before this load may not be committed yet.
            touched = self._rtouch.pop(key, 0.0)
            if touched > row.last_access and not row.expired(touched):
                row.last_access = touched
            self._rows[key] = row
            if len(self._rows) > CACHED_LOGS:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        if row.soft_deleted:
            raise LogGone(f"log {key} is deleted")
        if row.expired(self._clock()):
            self._on_expired(key)
            if row.children:
                raise LogGone(f"log {key} expired; its forks still read it")
            raise LogNotFound(f"log {key} expired")
        return row

    def head(self, key: LogKey) -> LogInfo:
        """The committed metadata of a live log."""
        return self.row(key).info()

    def _catch_up(self, key: LogKey, row: Row, after: Offset | None) -> Row:
        """Bring the cached row up to a committed offset a reader already knows.

        Between a COMMIT and the loop's publishing of it, the index (read
        straight from the file) can name an offset the cache does not have
        yet; reload the row rather than call that offset invalid.
        """
        if (
            after is None
            or after.generation != row.generation
            or after.position <= row.tail
        ):
            return row
        try:
            loaded = load(self._conn(), key)
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc
        if (
            loaded is not None
            and loaded.generation == row.generation
            and loaded.tail > row.tail
        ):
            row.tail, row.closed, row.closed_by = (
                loaded.tail,
                loaded.closed,
                loaded.closed_by,
            )
            row.recent.clear()  # it must end at the tail
            row.recent_bytes = 0
        return row

    def read(self, key: LogKey, after: Offset | None, *, max_bytes: int) -> ReadResult:
        row = self._catch_up(key, self.row(key), after)
        # Live readers at the same position ask the same question after every
        # append: answer it once per (position, tail, closed).
        memo_key = (key, after, max_bytes)
        memo = self._read_memo.get(memo_key)
        if memo is not None and memo[0] is row and memo[1] == row.tail:
            if memo[2] == row.closed:
                return memo[3]
        result = self._read(row, after, max_bytes)
        size = sum(len(record.data) for record in result.records)
        if size <= MEMO_RECORD_BYTES:
            if len(self._read_memo) >= READ_MEMO:
                del self._read_memo[next(iter(self._read_memo))]
            self._read_memo[memo_key] = (row, row.tail, row.closed, result)
        return result

    def _read(self, row: Row, after: Offset | None, max_bytes: int) -> ReadResult:
        segments = row.segments()
        start = 0 if after is None else resolve(segments, after)
        records: list[Record] = []
        size = 0
        position = start
        recent = row.recent
        if recent and recent[0][0] <= start + 1 and start < row.tail:
            generation = row.generation
            # Positions in ``recent`` are contiguous: skip straight to start + 1
            # (live readers sit at the tail, so this is near the end).
            skip = start + 1 - recent[0][0]
            for p, data in itertools.islice(recent, skip, None):
                if records and size + len(data) > max_bytes:
                    break
                records.append(Record(Offset(generation, p), data))
                size += len(data)
                position = p
        elif start < row.tail:
            conn = self._conn()
            try:
                for segment in segments:
                    if position >= segment.high:
                        continue
                    rows = conn.execute(
                        "SELECT position, data FROM records WHERE generation=? AND "
                        "position>? AND position<=? ORDER BY position",
                        (segment.generation, max(position, segment.low), segment.high),
                    )
                    full = False
                    for p, data in rows:
                        if records and size + len(data) > max_bytes:
                            full = True
                            break
                        records.append(Record(Offset(segment.generation, p), data))
                        size += len(data)
                        position = p
                    rows.close()
                    if full:
                        break
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from exc
        next_offset = records[-1].offset if records else offset_at(segments, start)
        if after is not None and not records and not after.is_zero:
            next_offset = after
        return ReadResult(records, next_offset, position >= row.tail, row.info())

    async def wait(self, key: LogKey, after: Offset, timeout: float) -> bool:
        """Wait for a record after ``after`` (at once if there is one)."""
        row = self._catch_up(key, self.row(key), after)
        position = resolve(row.segments(), after)
        if position < row.tail or row.closed:
            return True
        return await self._waiters.wait(key, timeout)
