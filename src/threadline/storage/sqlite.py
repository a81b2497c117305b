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
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import signal
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from ..exceptions import (
    ConfigConflict,
    InvalidOffset,
    LogGone,
    LogNotFound,
    StorageError,
    StoreLocked,
    ThreadlineError,
)
from ..protocol.offsets import Offset, Segment, offset_at
from ..protocol.streams import LogState, ProducerState, check_append
from .base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    LogStore,
    ReadResult,
    Waiters,
    fork_config,
    fork_position,
    slice_record,
)
from .index import IndexStore, Txn
from .sqlite_index import SQLiteIndexStore, SQLiteTxn
from .sqlite_reads import CACHED_LOGS, SQLiteReadCache
from .sqlite_rows import (
    COLUMNS,
    MIGRATIONS,
    Expired,
    Row,
    Snapshot,
    clone,
    load,
    load_generation,
    producer_state,
    record_at,
)

__all__ = ["SQLiteLogStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH: Final = 4096
IDLE_FLUSH_SECONDS: Final = 1.0
FAULT_ENV: Final = "THREADLINE_FAULT_KILL_IN_COMMIT"

Run = Callable[[sqlite3.Connection, list[Snapshot]], Any]


@dataclass(slots=True)
class _Op:
    run: Run
    future: asyncio.Future[Any]


class SQLiteLogStore(LogStore):
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
        super().__init__()
        if synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        self.path = path
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._pending: list[_Op] = []
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
        self._rconn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._lock_fd: int | None = None
        self._waiters = Waiters()
        self._reads = SQLiteReadCache(
            self._require_reader, self._waiters, clock=clock, on_expired=self._collect
        )
        self._index = SQLiteIndexStore(self)
        self._running = False
        fault = os.environ.get(FAULT_ENV)
        self._fault = float(fault) if fault else 0.0

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

    # Group commit

    async def _submit(
        self, run: Callable[[sqlite3.Connection, list[Snapshot]], T]
    ) -> T:
        if not self._running:
            raise StorageError("store is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(run, future))
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
        batch: list[_Op],
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
        self, conn: sqlite3.Connection, batch: list[_Op], exc: BaseException
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

    def _record_at(
        self, conn: sqlite3.Connection, segments: list[Segment], position: int
    ) -> bytes:
        self._flush_records(conn)  # the record may have come in this batch
        return record_at(conn, segments, position)

    def _replace_record(
        self, conn: sqlite3.Connection, row: Row, position: int, data: bytes
    ) -> None:
        """Rewrite one record in this batch (``Txn.replace``: a redaction).

        The reader cache gets the new bytes once the batch is committed.
        """
        self._flush_records(conn)  # the record may have come in this batch
        conn.execute(
            "UPDATE records SET data=? WHERE generation=? AND position=?",
            (data, row.generation, position),
        )
        appended = self._appended.get(row.generation)
        if appended is not None:  # the snapshot for the cache must not hold it
            records = appended[1]
            for index, (at, _) in enumerate(records):
                if at == position:
                    records[index] = (at, data)
        self._rewrites.append((row.key, row.generation, position, data))

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

    # Writer-side rows (writer thread only)

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

    def _wlive(
        self, conn: sqlite3.Connection, key: LogKey, snapshots: list[Snapshot]
    ) -> Row:
        row = self._wrow(conn, key)
        if row is None:
            raise LogNotFound(f"no log {key}")
        if not row.soft_deleted and row.expired(self._clock()):
            self._remove(conn, row, snapshots)
            raise Expired(f"log {key} expired")
        if row.soft_deleted:
            raise LogGone(f"log {key} is deleted")
        return row

    def _remove(
        self, conn: sqlite3.Connection, row: Row, snapshots: list[Snapshot]
    ) -> None:
        if row.children:
            row.soft_deleted = True
            conn.execute(
                "UPDATE logs SET soft_deleted=1 WHERE generation=?", (row.generation,)
            )
            snapshots.append(Snapshot(row.key, row.generation, clone(row)))
            return
        # Drop what this batch still holds for the log, then the log.
        self._flush_records(conn)
        self._dirty.pop(row.generation, None)
        self._appended.pop(row.generation, None)
        for dirty in [k for k in self._dirty_producers if k[0] == row.generation]:
            del self._dirty_producers[dirty]
        conn.execute("DELETE FROM records WHERE generation=?", (row.generation,))
        conn.execute("DELETE FROM producers WHERE generation=?", (row.generation,))
        conn.execute("DELETE FROM logs WHERE generation=?", (row.generation,))
        self._wrows.pop(row.key, None)
        snapshots.append(Snapshot(row.key, row.generation, None))
        if row.parent is not None:
            conn.execute(
                "UPDATE logs SET children=children-1 WHERE generation=?", (row.parent,)
            )
            parent = load_generation(conn, row.parent)
            if parent is not None:
                cached = self._wrows.get(parent.key)
                if cached is not None and cached.generation == parent.generation:
                    cached.children = parent.children
                    parent = cached
                if parent.soft_deleted and parent.children == 0:
                    self._remove(conn, parent, snapshots)

    # Writes

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

    def _create(
        self,
        conn: sqlite3.Connection,
        snapshots: list[Snapshot],
        key: LogKey,
        config: LogConfig | None,
        records: list[bytes],
        closed: bool,
        fork: ForkSpec | None,
    ) -> tuple[LogInfo, bool]:
        now = self._clock()
        parent: Row | None = None
        base = 0
        fork_of: tuple[str, int, int] | None = None
        first: list[bytes] = []
        chain: list[Segment] = []
        if fork is not None:
            try:
                parent = self._wlive(conn, fork.source, snapshots)
            except LogGone as exc:
                raise ConfigConflict("the fork source is deleted") from exc
            config = fork_config(config, parent.config)
            segments = parent.segments()
            base = fork_position(segments, parent.tail, fork.offset)
            chain = [
                Segment(s.generation, s.low, min(s.high, base))
                for i, s in enumerate(segments)
                if s.low < base or i == 0
            ]
            if fork.sub_offset:
                if base >= parent.tail:
                    raise InvalidOffset("sub-offset past the end of the source")
                piece = slice_record(
                    parent.config.content_type,
                    self._record_at(conn, segments, base + 1),
                    fork.sub_offset,
                )
                if piece is None:
                    raise InvalidOffset("sub-offset past the end of the record")
                first.append(piece)
            fork_of = (fork.source.name, base, fork.sub_offset)
        if config is None:
            raise ValueError("config is required unless forking")
        existing = self._wrow(conn, key)
        if existing is not None and not existing.soft_deleted and existing.expired(now):
            self._remove(conn, existing, snapshots)
            existing = self._wrow(conn, key)
        if existing is not None:
            if (
                existing.soft_deleted
                or not existing.config.same_as(config)
                or existing.closed != closed
                or existing.fork_of != fork_of
            ):
                raise ConfigConflict(f"log {key} exists with another configuration")
            self._touches.setdefault(key, now)
            return existing.info(), False
        all_records = [*first, *records]
        cursor = conn.execute(
            f"INSERT INTO logs ({COLUMNS}) VALUES "
            "(NULL,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,NULL,?,0,0)",
            (
                key.tenant,
                key.name,
                config.content_type,
                config.ttl,
                config.expires_at,
                base,
                parent.generation if parent else None,
                fork_of[0] if fork_of else None,
                fork_of[1] if fork_of else None,
                fork_of[2] if fork_of else None,
                base + len(all_records),
                int(closed),
                now,
            ),
        )
        generation = cursor.lastrowid
        assert generation is not None
        positions = range(base + 1, base + 1 + len(all_records))
        conn.executemany(
            "INSERT INTO records (generation, position, data) VALUES (?,?,?)",
            [(generation, p, d) for p, d in zip(positions, all_records, strict=True)],
        )
        if parent is not None:
            conn.execute(
                "UPDATE logs SET children=children+1 WHERE generation=?",
                (parent.generation,),
            )
            parent.children += 1
        row = Row(
            generation=generation,
            key=key,
            config=config,
            base=base,
            parent=parent.generation if parent else None,
            fork_of=fork_of,
            tail=base + len(all_records),
            closed=closed,
            closed_by=None,
            stream_seq=None,
            last_access=now,
            soft_deleted=False,
            children=0,
            chain=chain,
        )
        self._wrows[key] = row
        snapshots.append(Snapshot(key, generation, clone(row)))
        self.stats.records += len(all_records)
        return row.info(), True

    async def append(self, key: LogKey, request: AppendRequest) -> AppendResult:
        def run(conn: sqlite3.Connection, snapshots: list[Snapshot]) -> AppendResult:
            return self._append(conn, snapshots, key, request)

        return await self._submit(run)

    def _append(
        self,
        conn: sqlite3.Connection,
        snapshots: list[Snapshot],
        key: LogKey,
        request: AppendRequest,
    ) -> AppendResult:
        row = self._wlive(conn, key, snapshots)
        segments = row.segments()
        tail = offset_at(segments, row.tail)
        claim = request.producer
        producer = (
            producer_state(conn, row, claim.producer_id) if claim is not None else None
        )
        outcome = check_append(
            LogState(
                generation=row.generation,
                content_type=row.config.content_type,
                tail=tail,
                closed=row.closed,
                stream_seq=row.stream_seq,
                closed_by=row.closed_by,
            ),
            producer,
            content_type=request.content_type,
            has_data=bool(request.records),
            close=request.close,
            claim=claim,
            stream_seq=request.stream_seq,
            expected_tail=request.expected_tail,
        )
        now = self._clock()
        if outcome.duplicate:
            self._touches[key] = now
            return AppendResult(
                tail,
                duplicate=True,
                closed=row.closed,
                producer_seq=outcome.producer_seq,
            )
        count = self._write_records(row, request.records, now)
        # The log row is rewritten only when metadata changed; the tail is
        # recovered from the records themselves (``sqlite_rows.load``).
        if request.close or request.stream_seq is not None:
            row.closed = row.closed or request.close
            if request.close:
                row.closed_by = claim
            if request.stream_seq is not None:
                row.stream_seq = request.stream_seq
            self._dirty[row.generation] = row
        if claim is not None:
            state = ProducerState(claim.epoch, claim.seq)
            row.producers[claim.producer_id] = state
            self._dirty_producers[(row.generation, claim.producer_id)] = state
        return AppendResult(
            offset_at(row.segments(), row.tail),
            closed=row.closed,
            producer_seq=outcome.producer_seq,
            count=count,
        )

    def _write_records(self, row: Row, records: Sequence[bytes], now: float) -> int:
        """Queue an append's records for this batch and advance the working row.

        Records, log rows and producer states are written once per batch
        (``_flush_dirty``), in the same transaction.
        """
        first = row.tail + 1
        written = [(row.generation, first + i, d) for i, d in enumerate(records)]
        self._new_records.extend(written)
        row.tail += len(written)
        row.last_access = now
        if row.config.ttl is not None:  # only a sliding TTL reads last_access
            self._dirty[row.generation] = row
        appended = self._appended.get(row.generation)
        if appended is None:
            self._appended[row.generation] = (row, [(p, d) for _, p, d in written])
        else:
            appended[1].extend((p, d) for _, p, d in written)
        self.stats.appends += 1
        self.stats.records += len(written)
        return len(written)

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

    # Reads (event loop thread)

    def _collect(self, key: LogKey) -> None:
        """Remove an expired log in the background (reads never wait for writes)."""

        def run(conn: sqlite3.Connection, snapshots: list[Snapshot]) -> None:
            with contextlib.suppress(LogNotFound, LogGone, Expired):
                self._remove(conn, self._wlive(conn, key, snapshots), snapshots)

        if self._running:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.exception())
            self._pending.append(_Op(run, future))
            self._schedule()

    # Reads (event loop thread): see sqlite_reads.py

    async def head(self, key: LogKey) -> LogInfo:
        return self._reads.head(key)

    async def read(
        self, key: LogKey, after: Offset | None, *, max_bytes: int
    ) -> ReadResult:
        return self._reads.read(key, after, max_bytes=max_bytes)

    async def wait(self, key: LogKey, after: Offset, timeout: float) -> bool:
        return await self._reads.wait(key, after, timeout)
