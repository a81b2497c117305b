"""SQLiteLogStore: the embedded default. One file, one server process.

Durability: WAL journal with ``synchronous=FULL``; an append is acknowledged
only after the transaction holding it is committed and the WAL fsync'd.

Group commit: one writer thread owns the write connection. Appends, creates,
deletes and access-time refreshes queue up while a commit is in flight; the
writer takes everything queued and runs it in *one* transaction, with a
savepoint per operation so a refused operation changes nothing, then one
COMMIT (one fsync) acknowledges them all.

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
import queue
import random
import signal
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ..exceptions import (
    ConfigConflict,
    InvalidOffset,
    LogGone,
    LogNotFound,
    StorageError,
    StoreLocked,
    ThreadlineError,
)
from ..protocol.offsets import Offset, Segment, earliest, offset_at, resolve
from ..protocol.streams import (
    LogState,
    ProducerClaim,
    ProducerState,
    check_append,
)
from .base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    LogStore,
    ReadResult,
    Record,
    Waiters,
    fork_config,
    fork_position,
    slice_record,
)

__all__ = ["SQLiteLogStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION: Final = 1
MAX_BATCH: Final = 2048
RECENT_RECORDS: Final = 512
RECENT_BYTES: Final = 1 << 20
CACHED_LOGS: Final = 4096
FAULT_ENV: Final = "THREADLINE_FAULT_KILL_IN_COMMIT"

_MIGRATIONS: Final[list[str]] = [
    # v1: the first release.
    """
    CREATE TABLE logs (
        generation INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        ttl INTEGER,
        expires_at REAL,
        base INTEGER NOT NULL DEFAULT 0,
        parent INTEGER,
        fork_name TEXT,
        fork_position INTEGER,
        fork_sub INTEGER,
        tail INTEGER NOT NULL,
        closed INTEGER NOT NULL DEFAULT 0,
        closed_by_id TEXT,
        closed_by_epoch INTEGER,
        closed_by_seq INTEGER,
        stream_seq TEXT,
        last_access REAL NOT NULL,
        soft_deleted INTEGER NOT NULL DEFAULT 0,
        children INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX logs_by_key ON logs (tenant, name);
    CREATE TABLE records (
        generation INTEGER NOT NULL,
        position INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (generation, position)
    ) WITHOUT ROWID;
    CREATE TABLE producers (
        generation INTEGER NOT NULL,
        producer_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (generation, producer_id)
    ) WITHOUT ROWID;
    """,
]

_COLUMNS: Final = (
    "generation, tenant, name, content_type, ttl, expires_at, base, parent, "
    "fork_name, fork_position, fork_sub, tail, closed, closed_by_id, "
    "closed_by_epoch, closed_by_seq, stream_seq, last_access, soft_deleted, children"
)


@dataclass(eq=False, slots=True)
class _Row:
    """One ``logs`` row: the writer's working copy, and the reader's cached view."""

    generation: int
    key: LogKey
    config: LogConfig
    base: int
    parent: int | None
    fork_of: tuple[str, int, int] | None
    tail: int
    closed: bool
    closed_by: ProducerClaim | None
    stream_seq: str | None
    last_access: float
    soft_deleted: bool
    children: int
    chain: list[Segment] = field(default_factory=list)
    producers: dict[str, ProducerState] = field(default_factory=dict)
    recent: deque[tuple[int, bytes]] = field(default_factory=deque)
    recent_bytes: int = 0

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> _Row:
        closed_by = (
            ProducerClaim(row[13], row[14], row[15]) if row[13] is not None else None
        )
        fork_of = (row[8], row[9], row[10]) if row[8] is not None else None
        return cls(
            generation=row[0],
            key=LogKey(row[1], row[2]),
            config=LogConfig(row[3], row[4], row[5]),
            base=row[6],
            parent=row[7],
            fork_of=fork_of,
            tail=row[11],
            closed=bool(row[12]),
            closed_by=closed_by,
            stream_seq=row[16],
            last_access=row[17],
            soft_deleted=bool(row[18]),
            children=row[19],
        )

    def segments(self) -> list[Segment]:
        return [*self.chain, Segment(self.generation, self.base, self.tail)]

    def expired(self, now: float) -> bool:
        config = self.config
        if config.expires_at is not None and now >= config.expires_at:
            return True
        return config.ttl is not None and now >= self.last_access + config.ttl

    def info(self) -> LogInfo:
        segments = self.segments()
        return LogInfo(
            key=self.key,
            generation=self.generation,
            config=self.config,
            tail=offset_at(segments, self.tail),
            earliest=earliest(segments),
            closed=self.closed,
            fork_of=self.fork_of,
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What one committed operation changed, for the reader cache."""

    key: LogKey
    generation: int
    row: _Row | None
    """The committed row (``None``: the log was removed)."""
    records: Sequence[tuple[int, bytes]] = ()


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection, list[_Snapshot]], Any]
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
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._touches: dict[LogKey, float] = {}
        self._rtouch: dict[LogKey, float] = {}
        self._writer: threading.Thread | None = None
        self._wrows: OrderedDict[LogKey, _Row] = OrderedDict()
        self._rows: OrderedDict[LogKey, _Row] = OrderedDict()
        self._rconn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters = Waiters()
        self._running = False
        fault = os.environ.get(FAULT_ENV)
        self._fault = float(fault) if fault else 0.0

    # Lifecycle

    async def start(self) -> None:
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._take_lock()
        try:
            wconn = self._connect()
            self._migrate(wconn)
            self._rconn = self._connect()
        except sqlite3.Error as exc:
            self._release_lock()
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        self._wrows.clear()
        self._rows.clear()
        self._running = True
        self._writer = threading.Thread(
            target=self._write_loop,
            args=(wconn,),
            name="threadline-sqlite-writer",
            daemon=True,
        )
        self._writer.start()

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._ops.put(None)
        writer = self._writer
        if writer is not None:
            await asyncio.to_thread(writer.join)
        if self._rconn is not None:
            self._rconn.close()
            self._rconn = None
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
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"{self.path} has schema v{version}; this Threadline knows up to "
                f"v{len(_MIGRATIONS)}"
            )
        for number in range(version, len(_MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
            conn.execute("COMMIT")

    def _require_reader(self) -> sqlite3.Connection:
        if self._rconn is None or not self._running:
            raise StorageError("store is not running")
        return self._rconn

    # The writer thread

    async def _submit(
        self, run: Callable[[sqlite3.Connection, list[_Snapshot]], T]
    ) -> T:
        if not self._running:
            raise StorageError("store is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._ops.put(_Op(run, future))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                try:
                    first = self._ops.get(timeout=1.0)
                except queue.Empty:
                    if self._touches:
                        self._commit(conn, [])
                    continue
                if first is None:
                    self._commit(conn, [])
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        op = self._ops.get_nowait()
                    except queue.Empty:
                        break
                    if op is None:
                        stop = True
                        break
                    batch.append(op)
                self._commit(conn, batch)
                if stop:
                    self._commit(conn, [])
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        """Run ``batch`` in one transaction, then acknowledge it on the loop."""
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        snapshots: list[_Snapshot] = []
        flushed = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            flushed = self._flush_touches(conn)
            for op in batch:
                conn.execute("SAVEPOINT op")
                op_snapshots: list[_Snapshot] = []
                try:
                    result = op.run(conn, op_snapshots)
                except _Expired as exc:
                    # Keep the collection of the expired log; the caller sees 404.
                    conn.execute("RELEASE op")
                    snapshots.extend(op_snapshots)
                    outcomes.append((op.future, None, LogNotFound(str(exc))))
                    continue
                except ThreadlineError as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((op.future, None, exc))
                    continue
                conn.execute("RELEASE op")
                snapshots.extend(op_snapshots)
                outcomes.append((op.future, result, None))
            self._maybe_fault(before_commit=True)
            conn.execute("COMMIT")
            self._maybe_fault(before_commit=False)
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._wrows.clear()  # the working copies may hold rolled-back changes
            failure = StorageError(f"commit failed: {exc}")
            failure.__cause__ = exc
            outcomes = [(op.future, None, failure) for op in batch]
            snapshots = []
            logger.exception("! commit failed")
        if batch or snapshots or flushed:
            self.stats.commits += 1
            self.stats.fsyncs += 1
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            self._loop.call_soon_threadsafe(self._complete, outcomes, snapshots)

    def _maybe_fault(self, *, before_commit: bool) -> None:
        """Fault injection for the crash test: SIGKILL ourselves inside a commit."""
        if self._fault and random.random() < self._fault / 2:
            where = "before" if before_commit else "after"
            logger.warning("! fault injection: SIGKILL %s COMMIT", where)
            os.kill(os.getpid(), signal.SIGKILL)

    def _flush_touches(self, conn: sqlite3.Connection) -> bool:
        if not self._touches:
            return False
        touches, self._touches = self._touches, {}
        for key, moment in touches.items():
            row = self._wrow(conn, key)
            if row is not None and moment > row.last_access and not row.expired(moment):
                row.last_access = moment
                conn.execute(
                    "UPDATE logs SET last_access=? WHERE generation=?",
                    (moment, row.generation),
                )
        return True

    def _complete(
        self,
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        snapshots: list[_Snapshot],
    ) -> None:
        """On the loop: publish committed state to readers, then acknowledge."""
        for snapshot in snapshots:
            self._apply(snapshot)
            self._waiters.notify(snapshot.key)
        for future, result, exc in outcomes:
            if future.done():
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _apply(self, snapshot: _Snapshot) -> None:
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
            self._rows[snapshot.key] = _clone(row)

    # Writer-side rows (writer thread only)

    def _wrow(self, conn: sqlite3.Connection, key: LogKey) -> _Row | None:
        row = self._wrows.get(key)
        if row is not None:
            self._wrows.move_to_end(key)
            return row
        row = _load(conn, key)
        if row is not None:
            self._wrows[key] = row
            if len(self._wrows) > CACHED_LOGS:
                self._wrows.popitem(last=False)
        return row

    def _wlive(
        self, conn: sqlite3.Connection, key: LogKey, snapshots: list[_Snapshot]
    ) -> _Row:
        row = self._wrow(conn, key)
        if row is None:
            raise LogNotFound(f"no log {key}")
        if not row.soft_deleted and row.expired(self._clock()):
            self._remove(conn, row, snapshots)
            raise _Expired(f"log {key} expired")
        if row.soft_deleted:
            raise LogGone(f"log {key} is deleted")
        return row

    def _remove(
        self, conn: sqlite3.Connection, row: _Row, snapshots: list[_Snapshot]
    ) -> None:
        if row.children:
            row.soft_deleted = True
            conn.execute(
                "UPDATE logs SET soft_deleted=1 WHERE generation=?", (row.generation,)
            )
            snapshots.append(_Snapshot(row.key, row.generation, _clone(row)))
            return
        conn.execute("DELETE FROM records WHERE generation=?", (row.generation,))
        conn.execute("DELETE FROM producers WHERE generation=?", (row.generation,))
        conn.execute("DELETE FROM logs WHERE generation=?", (row.generation,))
        self._wrows.pop(row.key, None)
        snapshots.append(_Snapshot(row.key, row.generation, None))
        if row.parent is not None:
            conn.execute(
                "UPDATE logs SET children=children-1 WHERE generation=?", (row.parent,)
            )
            parent = _load_generation(conn, row.parent)
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
            conn: sqlite3.Connection, snapshots: list[_Snapshot]
        ) -> tuple[LogInfo, bool]:
            return self._create(conn, snapshots, key, config, records, closed, fork)

        return await self._submit(run)

    def _create(
        self,
        conn: sqlite3.Connection,
        snapshots: list[_Snapshot],
        key: LogKey,
        config: LogConfig | None,
        records: list[bytes],
        closed: bool,
        fork: ForkSpec | None,
    ) -> tuple[LogInfo, bool]:
        now = self._clock()
        parent: _Row | None = None
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
                    _record_at(conn, segments, base + 1),
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
            f"INSERT INTO logs ({_COLUMNS}) VALUES "
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
        row = _Row(
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
        snapshots.append(_Snapshot(key, generation, _clone(row)))
        self.stats.records += len(all_records)
        return row.info(), True

    async def append(self, key: LogKey, request: AppendRequest) -> AppendResult:
        def run(conn: sqlite3.Connection, snapshots: list[_Snapshot]) -> AppendResult:
            return self._append(conn, snapshots, key, request)

        return await self._submit(run)

    def _append(
        self,
        conn: sqlite3.Connection,
        snapshots: list[_Snapshot],
        key: LogKey,
        request: AppendRequest,
    ) -> AppendResult:
        row = self._wlive(conn, key, snapshots)
        segments = row.segments()
        tail = offset_at(segments, row.tail)
        claim = request.producer
        producer = (
            _producer(conn, row, claim.producer_id) if claim is not None else None
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
        first = row.tail + 1
        written = [
            (row.generation, first + i, d) for i, d in enumerate(request.records)
        ]
        if written:
            conn.executemany(
                "INSERT INTO records (generation, position, data) VALUES (?,?,?)",
                written,
            )
        if claim is not None:
            conn.execute(
                "INSERT INTO producers (generation, producer_id, epoch, seq) "
                "VALUES (?,?,?,?) ON CONFLICT (generation, producer_id) "
                "DO UPDATE SET epoch=excluded.epoch, seq=excluded.seq",
                (row.generation, claim.producer_id, claim.epoch, claim.seq),
            )
        new_tail = row.tail + len(written)
        closed = row.closed or request.close
        closed_by = claim if request.close else row.closed_by
        stream_seq = (
            request.stream_seq if request.stream_seq is not None else row.stream_seq
        )
        conn.execute(
            "UPDATE logs SET tail=?, closed=?, closed_by_id=?, closed_by_epoch=?, "
            "closed_by_seq=?, stream_seq=?, last_access=? WHERE generation=?",
            (
                new_tail,
                int(closed),
                closed_by.producer_id if closed_by else None,
                closed_by.epoch if closed_by else None,
                closed_by.seq if closed_by else None,
                stream_seq,
                now,
                row.generation,
            ),
        )
        # The working copy changes only after every statement succeeded.
        row.tail, row.closed, row.closed_by = new_tail, closed, closed_by
        row.stream_seq, row.last_access = stream_seq, now
        if claim is not None:
            row.producers[claim.producer_id] = ProducerState(claim.epoch, claim.seq)
        snapshots.append(
            _Snapshot(key, row.generation, _clone(row), [(p, d) for _, p, d in written])
        )
        self.stats.appends += 1
        self.stats.records += len(written)
        return AppendResult(
            offset_at(row.segments(), new_tail),
            closed=closed,
            producer_seq=outcome.producer_seq,
            count=len(written),
        )

    async def delete(self, key: LogKey) -> None:
        def run(conn: sqlite3.Connection, snapshots: list[_Snapshot]) -> None:
            self._remove(conn, self._wlive(conn, key, snapshots), snapshots)

        await self._submit(run)

    def touch(self, key: LogKey) -> None:
        now = self._clock()
        self._touches[key] = now
        row = self._rows.get(key)
        if row is not None:
            if not row.expired(now):  # an access never revives an expired log
                row.last_access = now
        else:
            if len(self._rtouch) > CACHED_LOGS:
                self._rtouch.clear()
            self._rtouch[key] = now

    # Reads (event loop thread)

    def _rrow(self, key: LogKey) -> _Row:
        row = self._rows.get(key)
        if row is None:
            conn = self._require_reader()
            try:
                loaded = _load(conn, key)
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
            self._collect(key)
            if row.children:
                raise LogGone(f"log {key} expired; its forks still read it")
            raise LogNotFound(f"log {key} expired")
        return row

    def _collect(self, key: LogKey) -> None:
        """Remove an expired log in the background (reads never wait for writes)."""

        def run(conn: sqlite3.Connection, snapshots: list[_Snapshot]) -> None:
            with contextlib.suppress(LogNotFound, LogGone, _Expired):
                self._remove(conn, self._wlive(conn, key, snapshots), snapshots)

        if self._running:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.exception())
            self._ops.put(_Op(run, future))

    async def head(self, key: LogKey) -> LogInfo:
        return self._rrow(key).info()

    async def read(
        self, key: LogKey, after: Offset | None, *, max_bytes: int
    ) -> ReadResult:
        row = self._rrow(key)
        segments = row.segments()
        start = 0 if after is None else resolve(segments, after)
        records: list[Record] = []
        size = 0
        position = start
        recent = row.recent
        if recent and recent[0][0] <= start + 1 and start < row.tail:
            generation = row.generation
            for p, data in recent:
                if p <= start:
                    continue
                if records and size + len(data) > max_bytes:
                    break
                records.append(Record(Offset(generation, p), data))
                size += len(data)
                position = p
        elif start < row.tail:
            conn = self._require_reader()
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
        row = self._rrow(key)
        position = resolve(row.segments(), after)
        if position < row.tail or row.closed:
            return True
        return await self._waiters.wait(key, timeout)


class _Expired(LogNotFound):
    """Internal: the log expired and was collected in this transaction."""


def _clone(row: _Row) -> _Row:
    """A copy for the reader cache (the writer keeps mutating its own)."""
    return _Row(
        generation=row.generation,
        key=row.key,
        config=row.config,
        base=row.base,
        parent=row.parent,
        fork_of=row.fork_of,
        tail=row.tail,
        closed=row.closed,
        closed_by=row.closed_by,
        stream_seq=row.stream_seq,
        last_access=row.last_access,
        soft_deleted=row.soft_deleted,
        children=row.children,
        chain=list(row.chain),
    )


def _load(conn: sqlite3.Connection, key: LogKey) -> _Row | None:
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM logs WHERE tenant=? AND name=?", (key.tenant, key.name)
    ).fetchone()
    if found is None:
        return None
    row = _Row.from_db(found)
    row.chain = _chain(conn, row)
    return row


def _load_generation(conn: sqlite3.Connection, generation: int) -> _Row | None:
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM logs WHERE generation=?", (generation,)
    ).fetchone()
    return None if found is None else _Row.from_db(found)


def _chain(conn: sqlite3.Connection, row: _Row) -> list[Segment]:
    """The ancestors' segments of a fork, each cut at the point its child forked."""
    segments: list[Segment] = []
    upto = row.base
    parent_id = row.parent
    while parent_id is not None:
        parent = _load_generation(conn, parent_id)
        if parent is None:
            raise StorageError(f"fork chain broken at generation {parent_id}")
        if parent.base < upto or parent.parent is None:
            segments.append(Segment(parent.generation, parent.base, upto))
        upto = min(upto, parent.base)
        parent_id = parent.parent
    segments.reverse()
    return segments


def _producer(
    conn: sqlite3.Connection, row: _Row, producer_id: str
) -> ProducerState | None:
    state = row.producers.get(producer_id)
    if state is None:
        found = conn.execute(
            "SELECT epoch, seq FROM producers WHERE generation=? AND producer_id=?",
            (row.generation, producer_id),
        ).fetchone()
        if found is not None:
            state = ProducerState(found[0], found[1])
            row.producers[producer_id] = state
    return state


def _record_at(
    conn: sqlite3.Connection, segments: list[Segment], position: int
) -> bytes:
    for segment in segments:
        if segment.low < position <= segment.high:
            found = conn.execute(
                "SELECT data FROM records WHERE generation=? AND position=?",
                (segment.generation, position),
            ).fetchone()
            if found is not None:
                return bytes(found[0])
    raise InvalidOffset(f"no record at position {position}")
