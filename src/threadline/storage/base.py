"""The log seam: the contract every log store keeps.

A *log* is an append-only sequence of records under a key (tenant, name),
with a content type, optional expiry, and an open/closed flag. The Durable
Streams surface stores one record per append request; session logs store one
record per event.

Every implementation must keep these obligations, which the shared contract
suite (:mod:`threadline.testing`) checks, restarting the store between write
and read:

* **Acknowledged means durable.** ``create`` and ``append`` return only after
  the change is committed as durably as the store promises (SQLite: fsync'd).
  Readers and waiters never observe records that are not committed.
* **Atomic appends.** All records of one ``append`` commit together with the
  producer state, ``Stream-Seq`` and close flag they change, or none do.
* **One order.** Offsets strictly increase within a log; every reader sees the
  same records at the same offsets. Offsets are never reused: a re-created
  log gets a new generation (see :mod:`threadline.protocol.offsets`).
* **Forks** share their source's records up to the fork point and never see
  the source's later appends; a log with live forks is soft-deleted on delete
  (``LogGone``) and collected when its last fork goes.
* **Expiry.** A log whose TTL (sliding, refreshed by :meth:`LogStore.touch`)
  or absolute expiry has passed behaves as if it did not exist.
* **No guarantee rests on one process's memory**: caches are allowed, but the
  store is the truth after a restart.
* **Records are immutable but for one rewrite**: ``Txn.replace`` (a
  redaction) changes one record's bytes in place, at the same offset; every
  read after its commit — cached ones included — returns the new bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..exceptions import ContentTypeMismatch, InvalidOffset, OffsetGone
from ..protocol.offsets import Offset, Segment, offset_at, resolve
from ..protocol.streams import ProducerClaim, is_json, media_type

if TYPE_CHECKING:
    from .index import IndexStore, Txn

T = TypeVar("T")

__all__ = [
    "AppendRequest",
    "AppendResult",
    "ForkSpec",
    "LogConfig",
    "LogInfo",
    "LogKey",
    "LogStore",
    "ReadResult",
    "Record",
    "StoreStats",
    "Waiters",
    "fork_config",
    "fork_position",
    "slice_record",
]


@dataclass(frozen=True, slots=True)
class LogKey:
    """Where a log lives: every key includes its tenant."""

    tenant: str
    name: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True, slots=True)
class LogConfig:
    """A log's creation-time configuration (compared for idempotent creates)."""

    content_type: str
    ttl: int | None = None
    """Sliding expiry in seconds, refreshed on access."""
    expires_at: float | None = None
    """Absolute expiry, epoch seconds; never extended."""

    def same_as(self, other: LogConfig) -> bool:
        """Equal configuration; content types compare by media type, ignoring case."""
        return (
            media_type(self.content_type) == media_type(other.content_type)
            and self.ttl == other.ttl
            and self.expires_at == other.expires_at
        )


@dataclass(frozen=True, slots=True)
class ForkSpec:
    """Create a log as a fork of ``source`` at ``offset`` (its tail when ``None``)."""

    source: LogKey
    offset: Offset | None = None
    sub_offset: int = 0
    """Bytes (or JSON messages) of the record after ``offset`` to include."""


@dataclass(frozen=True, slots=True)
class LogInfo:
    """A committed snapshot of a log's metadata."""

    key: LogKey
    generation: int
    config: LogConfig
    tail: Offset
    earliest: Offset
    closed: bool
    fork_of: tuple[str, int, int] | None = None
    """(source name, fork position, sub offset) of a fork, for idempotent creates."""
    chain: tuple[Segment, ...] = ()
    """The generations the log's positions belong to (a fork's source, a
    restored log's earlier generation), oldest first; empty when all are its
    own (no tuple for the common case: infos are made on every read)."""

    def offset_at(self, position: int) -> Offset:
        """The offset that names ``position``, minted by the generation that
        owns it.

        Raises:
            InvalidOffset: ``position`` is beyond the tail.
        """
        if not self.chain:
            if position > self.tail.position:
                raise InvalidOffset(f"position {position} is beyond the tail")
            return Offset(self.generation, position)
        return offset_at(list(self.chain), position)

    def position_of(self, offset: Offset) -> int:
        """The position ``offset`` names in this log.

        Raises:
            InvalidOffset: a generation of the log, outside its segment.
            OffsetGone: another generation, or one whose later positions a
                restore lost.
        """
        chain = list(self.chain) or [Segment(self.generation, 0, self.tail.position)]
        return resolve(chain, offset)


def with_pending(info: LogInfo, count: int) -> LogInfo:
    """``info`` with ``count`` more records of its own after its tail (a
    transaction's pending appends)."""
    tail = Offset(info.generation, info.tail.position + count)
    chain = info.chain
    if chain:
        last = chain[-1]
        chain = (*chain[:-1], Segment(last.generation, last.low, last.high + count))
    return dataclasses.replace(info, tail=tail, chain=chain)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record and the offset just after it."""

    offset: Offset
    data: bytes


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Records after an offset, up to a size limit."""

    records: Sequence[Record]
    next_offset: Offset
    """Where to read next: the offset of the last record, or the start offset."""
    up_to_date: bool
    """The read reached the tail."""
    info: LogInfo

    @property
    def closed(self) -> bool:
        """The log is closed and this read reached its final offset (EOF)."""
        return self.up_to_date and self.info.closed


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One atomic append: records, and the headers that guard it."""

    records: Sequence[bytes] = ()
    content_type: str | None = None
    close: bool = False
    producer: ProducerClaim | None = None
    stream_seq: str | None = None
    expected_tail: Offset | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of an append."""

    tail: Offset
    """The log's tail after the append (the last record's offset)."""
    duplicate: bool = False
    """Nothing was written: the request repeated an accepted producer request."""
    closed: bool = False
    producer_seq: int | None = None
    count: int = 0
    """Records written by this request (0 for a duplicate)."""

    @property
    def offsets(self) -> list[Offset]:
        """The offset of each record this request wrote, in order."""
        first = self.tail.position - self.count + 1
        return [
            Offset(self.tail.generation, p) for p in range(first, first + self.count)
        ]


@dataclass(slots=True)
class StoreStats:
    """Counters for metrics and benchmarks (monotonic since start)."""

    commits: int = 0
    fsyncs: int = 0
    appends: int = 0
    records: int = 0


def slice_record(content_type: str, data: bytes, count: int) -> bytes | None:
    """The first ``count`` bytes (or JSON messages) of a record (``None``: too few).

    JSON records hold the comma-joined messages of one append, without brackets.
    """
    if not is_json(content_type):
        return data[:count] if count <= len(data) else None
    import json

    messages = json.loads(b"[" + data + b"]")
    if count > len(messages):
        return None
    return b",".join(
        json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode()
        for m in messages[:count]
    )


def fork_position(chain: list[Segment], tail: int, offset: Offset | None) -> int:
    """Where a fork starts in its source (its tail by default).

    Raises:
        InvalidOffset: the offset is not in the source's chain, or beyond its tail.
    """
    if offset is None:
        return tail
    try:
        return resolve(chain, offset)
    except OffsetGone as exc:
        raise InvalidOffset(f"fork offset {offset} is not in the source") from exc


def fork_config(requested: LogConfig | None, source: LogConfig) -> LogConfig:
    """A fork's configuration: the source's content type, and its expiry unless set.

    Raises:
        ContentTypeMismatch: the fork names another content type.
    """
    content_type = source.content_type
    if requested is not None and requested.content_type:
        if media_type(requested.content_type) != media_type(source.content_type):
            raise ContentTypeMismatch("a fork keeps its source's content type")
        content_type = requested.content_type
    if requested is not None and (
        requested.ttl is not None or requested.expires_at is not None
    ):
        return LogConfig(content_type, requested.ttl, requested.expires_at)
    return LogConfig(content_type, source.ttl, source.expires_at)


class Waiters:
    """Wake-ups for readers waiting beyond an offset, on this process's event loop.

    A store calls :meth:`notify` after a commit becomes visible; waiting is a
    hint to re-read, never a source of data, so losing a wake-up across a
    restart loses nothing.
    """

    def __init__(self) -> None:
        self._waiting: dict[LogKey, set[asyncio.Future[bool]]] = {}

    async def wait(self, key: LogKey, timeout: float) -> bool:
        """Wait for the next :meth:`notify` of ``key``; False on timeout.

        Cheaper than ``asyncio.wait_for`` (no extra task or waiter): one future
        and one timer per wait, which matters with many live readers.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = set()
        waiting.add(future)
        timer = loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()
            waiting.discard(future)
            if not waiting and self._waiting.get(key) is waiting:
                del self._waiting[key]

    def notify(self, key: LogKey) -> None:
        """Wake every waiter of ``key``."""
        for future in self._waiting.get(key, ()):
            if not future.done():
                future.set_result(True)

    def notify_all(self) -> None:
        """Wake every waiter (shutdown)."""
        for key in list(self._waiting):
            self.notify(key)


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class LogStore(ABC):
    """Abstract log store. See the module docstring for the contract.

    All methods are coroutines meant for one event loop. Errors are the
    :mod:`threadline.exceptions` tree: ``LogNotFound`` (absent or expired),
    ``LogGone`` (soft-deleted), ``OffsetGone`` (another generation),
    ``InvalidOffset`` (beyond the tail), the append conflicts, and
    ``StorageError`` for backend failures (never a driver's own exception).
    """

    stats: StoreStats

    def __init__(self) -> None:
        self.stats = StoreStats()

    # Lifecycle

    @abstractmethod
    async def start(self) -> None:
        """Open the store (take locks, run migrations)."""

    @abstractmethod
    async def stop(self) -> None:
        """Flush pending work (commits, access-time refreshes) and release the store.

        Appends in flight complete (acknowledged) before this returns; appends
        started afterwards fail with ``StorageError``.
        """

    # Writes

    @abstractmethod
    async def create(
        self,
        key: LogKey,
        config: LogConfig | None,
        *,
        records: Sequence[bytes] = (),
        closed: bool = False,
        fork: ForkSpec | None = None,
    ) -> tuple[LogInfo, bool]:
        """Create a log, or confirm an existing one with the same configuration.

        ``config`` may be ``None`` (or have an empty content type) only for a
        fork, which then inherits the source's content type; a fork without a
        TTL or expiry inherits the source's. Initial ``records`` and ``closed``
        commit together with the creation.

        Returns:
            The log's info and whether it was created (False: it already
            existed with the same configuration, and nothing changed).

        Raises:
            ConfigConflict: the key holds a log with another configuration
                (or the key is soft-deleted), or the fork source is
                soft-deleted (Durable Streams answers 409 there, not 410).
            LogNotFound: the fork source does not exist.
            ContentTypeMismatch: a fork names another content type.
            InvalidOffset: the fork offset is not in the source, or the
                sub-offset passes the next record's end.
        """

    @abstractmethod
    async def append(self, key: LogKey, request: AppendRequest) -> AppendResult:
        """Append records atomically (possibly none, to close).

        The producer state, ``Stream-Seq`` and close flag commit in the same
        transaction as the records. Concurrent appends to one log are
        serialized; the checks of :func:`~threadline.protocol.streams.check_append`
        run inside that serialization.

        Raises:
            LogNotFound, LogGone, LogClosed, ContentTypeMismatch,
            ProducerEpochStale, ProducerEpochSeq, ProducerSeqGap, SeqConflict,
            TailMismatch.
        """

    @abstractmethod
    async def delete(self, key: LogKey) -> None:
        """Delete a log (soft-delete while forks read it; cascade when the last goes).

        Raises:
            LogNotFound, LogGone.
        """

    @abstractmethod
    def touch(self, key: LogKey) -> None:
        """Refresh a log's sliding TTL; persisted by a later commit, never awaited."""

    # Reads

    @abstractmethod
    async def head(self, key: LogKey) -> LogInfo:
        """Committed metadata of a live log.

        Raises:
            LogNotFound, LogGone.
        """

    @abstractmethod
    async def read(
        self, key: LogKey, after: Offset | None, *, max_bytes: int
    ) -> ReadResult:
        """Committed records after ``after`` (``None``: from the start).

        Returns at least one record when any exists after ``after``, and stops
        before the record that would pass ``max_bytes``.

        Raises:
            LogNotFound, LogGone, OffsetGone (another generation),
            InvalidOffset (beyond the tail).
        """

    @abstractmethod
    async def wait(self, key: LogKey, after: Offset, timeout: float) -> bool:
        """Wait until the log has a record after ``after``, is closed, or goes away.

        Returns at once when that already holds. Cancelling is safe.

        Returns:
            True if woken by such a change, False on timeout.
        """

    # The index seam (see ``storage/index.py``)

    @abstractmethod
    async def transact(self, tenant: str, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` serialized with every other write, and commit what it did.

        ``fn`` reads working state and appends records and index entries through
        the :class:`~threadline.storage.index.Txn` it gets. It must not await
        or block. If it raises, nothing it did is written and the exception
        propagates; otherwise its appends and index entries commit together
        (as durably as ``append``) before this returns ``fn``'s result.
        """

    @property
    @abstractmethod
    def index(self) -> IndexStore:
        """Committed reads of the index."""

    def wake_all(self) -> None:
        """Wake every waiter at once (the server is draining); they re-check and go."""
        waiters = getattr(self, "_waiters", None)
        if isinstance(waiters, Waiters):
            waiters.notify_all()
