"""The SQLite store's group commit: the batch queue, its working state, the COMMIT.

Operations (appends, creates, deletes, access-time refreshes) queue up while a
commit is in flight. When it completes, everything queued is checked and
written in *one* transaction on the event loop thread (an operation the rules
refuse is refused before it writes anything), and that transaction's COMMIT,
the one fsync, runs on a commit thread so the loop keeps serving requests
meanwhile. Every operation of the batch is acknowledged after the COMMIT
returns, and the committed state is published to the read cache first.

Within a batch, records, changed log rows and producer states are buffered and
written once (:meth:`SQLiteGroupCommit._flush_dirty`); the writer's working
rows are cached (``_wrows``) and forgotten when a batch fails. The operations a
batch runs are in ``sqlite_writes.py``; opening and closing the connections and
the commit thread in ``sqlite.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ..exceptions import LogNotFound, StorageError, ThreadlineError
from ..protocol.streams import ProducerState
from .base import LogKey, LogStore, Waiters
from .sqlite_reads import CACHED_LOGS, SQLiteReadCache
from .sqlite_rows import Expired, Row, Snapshot, clone, load

__all__ = ["FAULT_ENV", "IDLE_FLUSH_SECONDS", "MAX_BATCH", "Op", "SQLiteGroupCommit"]

logger = logging.getLogger("threadline.storage.sqlite")  # the store's logger

T = TypeVar("T")

MAX_BATCH: Final = 4096
IDLE_FLUSH_SECONDS: Final = 1.0
FAULT_ENV: Final = "THREADLINE_FAULT_KILL_IN_COMMIT"

Run = Callable[[sqlite3.Connection, list[Snapshot]], Any]


@dataclass(slots=True)
class Op:
    """One queued operation of a batch: what it writes, and who waits for it."""

    run: Run
    future: asyncio.Future[Any]


class SQLiteGroupCommit(LogStore):
    """Group commit for :class:`~threadline.storage.sqlite.SQLiteLogStore`.

    Holds the batch queue and the batch's working state; ``start``/``stop``
    in ``sqlite.py`` open the write connection, the commit thread and
    ``_idle``, and close them once the queue is drained.
    """

    # Owned by SQLiteLogStore (sqlite.py).
    _running: bool
    _reads: SQLiteReadCache
    _waiters: Waiters

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[Op] = []
        self._committing = False
        self._scheduled = False
        self._idle: asyncio.Event | None = None
        self._touches: dict[LogKey, float] = {}
        self._dirty: dict[int, Row] = {}
        self._dirty_producers: dict[tuple[int, str], ProducerState] = {}
        self._new_records: list[tuple[int, int, bytes]] = []
        self._appended: dict[int, tuple[Row, list[tuple[int, bytes]]]] = {}
        self._rewrites: list[tuple[LogKey, int, int, bytes]] = []
        self._wrows: OrderedDict[LogKey, Row] = OrderedDict()
        self._wconn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ticker: asyncio.TimerHandle | None = None
        fault = os.environ.get(FAULT_ENV)
        self._fault = float(fault) if fault else 0.0

    async def _submit(
        self, run: Callable[[sqlite3.Connection, list[Snapshot]], T]
    ) -> T:
        if not self._running:
            raise StorageError("store is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(Op(run, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if not self._committing and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run_batch)

    def _tick(self) -> None:
        """Persist access-time refreshes within a second even when idle."""
        if self._touches:
            self._schedule()
        if self._running:
            loop = asyncio.get_running_loop()
            self._ticker = loop.call_later(IDLE_FLUSH_SECONDS, self._tick)

    def _run_batch(self) -> None:
        """Write everything queued in one transaction, then COMMIT on the thread."""
        self._scheduled = False
        assert self._idle is not None
        if self._committing or not (self._pending or self._touches):
            if not self._pending and not self._committing:
                self._idle.set()
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        conn = self._wconn
        assert conn is not None and self._executor is not None
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        snapshots: list[Snapshot] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._flush_touches(conn)
            for op in batch:
                if op.future.done():  # cancelled while queued: never written
                    continue
                try:
                    result = op.run(conn, snapshots)
                except Expired as exc:
                    # The collection of the expired log stays; the caller sees 404.
                    outcomes.append((op.future, None, LogNotFound(str(exc))))
                except ThreadlineError as exc:
                    outcomes.append((op.future, None, exc))
                else:
                    outcomes.append((op.future, result, None))
            self._flush_dirty(conn)
            for row, records in self._appended.values():
                snapshots.append(Snapshot(row.key, row.generation, clone(row), records))
            self._appended.clear()
            rewrites, self._rewrites = self._rewrites, []
        except BaseException as exc:
            self._abort(conn, batch, exc)
            return
        self._committing = True
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._commit, conn)
        done.add_done_callback(
            lambda f: self._committed(f, conn, batch, outcomes, snapshots, rewrites)
        )

    def _commit(self, conn: sqlite3.Connection) -> None:
        """On the commit thread: the one fsync of a batch."""
        self._maybe_fault("before")
        conn.execute("COMMIT")
        self._maybe_fault("after")

    def _committed(
        self,
        done: asyncio.Future[None],
        conn: sqlite3.Connection,
        batch: list[Op],
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        snapshots: list[Snapshot],
        rewrites: list[tuple[LogKey, int, int, bytes]],
    ) -> None:
        """On the loop: publish committed state to readers, then acknowledge."""
        self._committing = False
        exc = done.exception()
        if exc is not None:
            self._abort(conn, batch, exc)
            return
        self.stats.commits += 1
        self.stats.fsyncs += 1
        for snapshot in snapshots:
            self._reads.apply(snapshot)
            self._waiters.notify(snapshot.key)
        for key, generation, position, data in rewrites:
            self._reads.replace(key, generation, position, data)
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._schedule_next()

    def _abort(
        self, conn: sqlite3.Connection, batch: list[Op], exc: BaseException
    ) -> None:
        """A batch failed as a whole: roll back, forget working state, fail its ops."""
        self._committing = False
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        self._wrows.clear()
        self._dirty.clear()
        self._dirty_producers.clear()
        self._new_records = []
        self._appended.clear()
        self._rewrites = []
        logger.error("! commit failed: %r", exc)
        for op in batch:
            if not op.future.done():
                failure = StorageError(f"commit failed: {exc}")
                failure.__cause__ = exc
                op.future.set_exception(failure)
        self._schedule_next()

    def _schedule_next(self) -> None:
        assert self._idle is not None
        if self._pending:
            self._schedule()
        else:
            self._idle.set()

    def _maybe_fault(self, where: str) -> None:
        """Fault injection for the crash test: SIGKILL ourselves inside a commit."""
        if self._fault and random.random() < self._fault / 2:
            logger.warning("! fault injection: SIGKILL %s COMMIT", where)
            os.kill(os.getpid(), signal.SIGKILL)

    def _flush_touches(self, conn: sqlite3.Connection) -> None:
        if not self._touches:
            return
        touches, self._touches = self._touches, {}
        for key, moment in touches.items():
            row = self._wrow(conn, key)
            if row is not None and moment > row.last_access and not row.expired(moment):
                row.last_access = moment
                if row.config.ttl is not None:  # only a sliding TTL reads it
                    self._dirty[row.generation] = row

    def _flush_records(self, conn: sqlite3.Connection) -> None:
        if self._new_records:
            conn.executemany(
                "INSERT INTO records (generation, position, data) VALUES (?,?,?)",
                self._new_records,
            )
            self._new_records = []

    def _flush_dirty(self, conn: sqlite3.Connection) -> None:
        """Write the batch's records, each changed log row once, producer states."""
        self._flush_records(conn)
        if self._dirty:
            conn.executemany(
                "UPDATE logs SET tail=?, closed=?, closed_by_id=?, closed_by_epoch=?, "
                "closed_by_seq=?, stream_seq=?, last_access=? WHERE generation=?",
                [
                    (
                        row.tail,
                        int(row.closed),
                        row.closed_by.producer_id if row.closed_by else None,
                        row.closed_by.epoch if row.closed_by else None,
                        row.closed_by.seq if row.closed_by else None,
                        row.stream_seq,
                        row.last_access,
                        generation,
                    )
                    for generation, row in self._dirty.items()
                ],
            )
            self._dirty.clear()
        if self._dirty_producers:
            conn.executemany(
                "INSERT INTO producers (generation, producer_id, epoch, seq) "
                "VALUES (?,?,?,?) ON CONFLICT (generation, producer_id) "
                "DO UPDATE SET epoch=excluded.epoch, seq=excluded.seq",
                [
                    (generation, producer_id, state.epoch, state.seq)
                    for (
                        generation,
                        producer_id,
                    ), state in self._dirty_producers.items()
                ],
            )
            self._dirty_producers.clear()

    # The writer's working rows (event loop thread, inside a batch)

    def _wrow(self, conn: sqlite3.Connection, key: LogKey) -> Row | None:
        row = self._wrows.get(key)
        if row is not None:
            self._wrows.move_to_end(key)
            return row
        row = load(conn, key)
        if row is not None:
            self._wrows[key] = row
            if len(self._wrows) > CACHED_LOGS:
                self._wrows.popitem(last=False)
        return row
