"""SQLiteLogStore: the embedded default. One file, one server process.

Durability: WAL journal with ``synchronous=FULL``; an append is acknowledged
only after the transaction holding it is committed and the WAL fsync'd.

Group commit: operations (appends, creates, deletes, access-time refreshes)
queue up while a commit is in flight. When it completes, everything queued is
checked and written in *one* transaction on the event loop thread (an
operation the rules refuse is refused before it writes anything), and that
transaction's COMMIT, the one fsync, runs on a commit thread so the loop keeps
serving requests meanwhile. Every operation of the batch is acknowledged after
the COMMIT returns.

Reads run on the event loop thread over a second connection (WAL readers never
block the writer) and a cache of committed metadata plus the most recent
records of each log, fed by the writer after every commit, so live readers at
the tail are served without touching the database.

Where it stops working: a single server process only. The store takes an
exclusive lock (``PATH-lock``, ``flock``) so a second process on the same file
fails at start with :class:`~threadline.exceptions.StoreLocked`. For several
gateway processes use a distributed store.

This module holds the public API and the store's lifecycle (the file lock,
the connections, migrations). The rest is cut by responsibility:
``sqlite_commit.py`` (group commit), ``sqlite_writes.py`` (the operations a
batch runs: create, fork, append, remove), ``sqlite_reads.py`` (the read
cache), ``sqlite_index.py`` (the index seam) and ``sqlite_rows.py`` (schema,
migrations, row codec).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from ..exceptions import StorageError, StoreLocked
from ..protocol.offsets import Offset
from .base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    ReadResult,
    Waiters,
)
from .index import IndexStore, Txn
from .sqlite_index import SQLiteIndexStore, SQLiteTxn
from .sqlite_reads import SQLiteReadCache
from .sqlite_rows import MIGRATIONS, Snapshot
from .sqlite_writes import SQLiteWrites

__all__ = ["SQLiteLogStore"]

T = TypeVar("T")


class SQLiteLogStore(SQLiteWrites):
    """Log store on one SQLite file (WAL, ``synchronous=FULL``, group commit).

    A single server process only: see the module docstring.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__()  # the batch queue and its working state
        if synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        self.path = path
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._rconn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._waiters = Waiters()
        self._reads = SQLiteReadCache(
            self._require_reader, self._waiters, clock=clock, on_expired=self._collect
        )
        self._index = SQLiteIndexStore(self)
        self._running = False

    # Lifecycle

    async def start(self) -> None:
        if self._running:
            return
        self._take_lock()
        try:
            self._wconn = self._connect()
            self._migrate(self._wconn)
            self._raise_generation_floor(self._wconn)
            self._rconn = self._connect()
        except sqlite3.Error as exc:
            self._close_connections()
            self._release_lock()
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="threadline-commit")
        self._wrows.clear()
        self._reads.clear()
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = True
        self._tick()

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._ticker is not None:
            self._ticker.cancel()
        assert self._idle is not None
        if self._touches:
            self._schedule()
        while self._pending or self._committing or self._scheduled:
            self._idle.clear()
            await self._idle.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._close_connections()
        self._release_lock()
        self._waiters.notify_all()

    def settings(self) -> dict[str, Any]:
        """The durability-relevant pragmas of the read connection (for checks)."""
        conn = self._require_reader()
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
        }

    def _close_connections(self) -> None:
        for conn in (self._wconn, self._rconn):
            if conn is not None:
                conn.close()
        self._wconn = self._rconn = None

    def _take_lock(self) -> None:
        if self.path == ":memory:":
            return
        lock_path = self.path + "-lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"{self.path} is locked by another Threadline process (pid {holder}); "
                "the SQLite store serves one process only"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StorageError(
                f"{self.path} has schema v{version}; this Threadline knows up to "
                f"v{len(MIGRATIONS)}"
            )
        for number in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
            conn.execute("COMMIT")

    def _raise_generation_floor(self, conn: sqlite3.Connection) -> None:
        """Start generations at the wall clock (µs) so none is ever issued twice.

        ``AUTOINCREMENT`` alone never reuses a number within one file, but a
        file restored from an older copy would issue again the generations
        handed out after that copy was taken; offsets minted by those lost
        logs would then silently name new ones. Each start moves the counter
        past "now", above anything issued before (given a clock that does not
        go back across restarts).
        """
        floor = int(self._clock() * 1_000_000)
        conn.execute("BEGIN IMMEDIATE")
        found = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name='logs'"
        ).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('logs', ?)", (floor,)
            )
        elif found[0] < floor:
            conn.execute("UPDATE sqlite_sequence SET seq=? WHERE name='logs'", (floor,))
        conn.execute("COMMIT")

    def _require_reader(self) -> sqlite3.Connection:
        if self._rconn is None or not self._running:
            raise StorageError("store is not running")
        return self._rconn

    # Writes: each runs inside a group-commit batch, see sqlite_writes.py

    async def create(
        self,
        key: LogKey,
        config: LogConfig | None,
        *,
        records: Sequence[bytes] = (),
        closed: bool = False,
        fork: ForkSpec | None = None,
    ) -> tuple[LogInfo, bool]:
        records = list(records)

        def run(
            conn: sqlite3.Connection, snapshots: list[Snapshot]
        ) -> tuple[LogInfo, bool]:
            return self._create(conn, snapshots, key, config, records, closed, fork)

        return await self._submit(run)

    async def append(self, key: LogKey, request: AppendRequest) -> AppendResult:
        def run(conn: sqlite3.Connection, snapshots: list[Snapshot]) -> AppendResult:
            return self._append(conn, snapshots, key, request)

        return await self._submit(run)

    async def transact(self, tenant: str, fn: Callable[[Txn], T]) -> T:
        def run(
            conn: sqlite3.Connection, snapshots: list[Snapshot]
        ) -> tuple[T | None, Exception | None]:
            txn = SQLiteTxn(self, conn, snapshots, tenant)
            try:
                result = fn(txn)
            except Exception as exc:
                # Nothing buffered was written: only this operation fails,
                # not the batch it is part of.
                return None, exc
            txn.commit(self._clock())
            return result, None

        result, error = await self._submit(run)
        if error is not None:
            raise error
        return cast(T, result)

    @property
    def index(self) -> IndexStore:
        return self._index

    async def delete(self, key: LogKey) -> None:
        def run(conn: sqlite3.Connection, snapshots: list[Snapshot]) -> None:
            self._remove(conn, self._wlive(conn, key, snapshots), snapshots)

        await self._submit(run)

    def touch(self, key: LogKey) -> None:
        now = self._clock()
        self._touches[key] = now
        self._reads.touch(key, now)

    # Reads (event loop thread): see sqlite_reads.py

    async def head(self, key: LogKey) -> LogInfo:
        return self._reads.head(key)

    async def read(
        self, key: LogKey, after: Offset | None, *, max_bytes: int
    ) -> ReadResult:
        return self._reads.read(key, after, max_bytes=max_bytes)

    async def wait(self, key: LogKey, after: Offset, timeout: float) -> bool:
        return await self._reads.wait(key, after, timeout)
