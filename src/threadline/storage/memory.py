"""MemoryLogStore: the reference implementation of the log seam, and a test double.

Everything lives in this process's memory: it keeps nothing across a process
restart, so it suits tests and throw-away development servers only. ``stop``
followed by ``start`` on the same object keeps the data (a store restart, as
the contract suite does it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..exceptions import (
    ConfigConflict,
    InvalidOffset,
    LogClosed,
    LogGone,
    LogNotFound,
    StorageError,
    TailMismatch,
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
    with_pending,
)
from .index import MAX_SCAN, BufferedTxn, IndexStore, Txn, check_table

__all__ = ["MemoryIndexStore", "MemoryLogStore"]

T = TypeVar("T")
_Table = dict[str, bytes]


@dataclass(eq=False, slots=True)
class _Log:
    key: LogKey
    generation: int
    config: LogConfig
    base: int = 0
    parent: _Log | None = None
    fork_of: tuple[str, int, int] | None = None
    records: list[bytes] = field(default_factory=list)
    closed: bool = False
    closed_by: ProducerClaim | None = None
    stream_seq: str | None = None
    producers: dict[str, ProducerState] = field(default_factory=dict)
    last_access: float = 0.0
    soft_deleted: bool = False
    children: int = 0

    @property
    def tail_position(self) -> int:
        return self.base + len(self.records)

    def chain(self, upto: int | None = None) -> list[tuple[_Log, Segment]]:
        high = self.tail_position if upto is None else upto
        if self.parent is None:
            return [(self, Segment(self.generation, 0, high))]
        if upto is not None and high <= self.base:
            return self.parent.chain(high)  # this ancestor owns nothing up to there
        return [
            *self.parent.chain(self.base),
            (self, Segment(self.generation, self.base, high)),
        ]

    def segments(self) -> list[Segment]:
        return [segment for _, segment in self.chain()]


class MemoryLogStore(LogStore):
    """In-memory log store. A single process only; nothing survives it."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        self._logs: dict[LogKey, _Log] = {}
        self._next_generation = 1
        self._waiters = Waiters()
        self._running = False
        self._tables: dict[tuple[str, str], _Table] = {}
        self._index = MemoryIndexStore(self)

    # Lifecycle

    async def start(self) -> None:
        # Generations start at the clock (µs), as in SQLite: never issued twice.
        self._next_generation = max(
            self._next_generation, int(self._clock() * 1_000_000)
        )
        self._running = True

    async def stop(self) -> None:
        self._running = False
        self._waiters.notify_all()

    # Helpers

    def _check_running(self) -> None:
        if not self._running:
            raise StorageError("store is not running")

    def _expired(self, log: _Log, now: float) -> bool:
        config = log.config
        if config.expires_at is not None and now >= config.expires_at:
            return True
        return config.ttl is not None and now >= log.last_access + config.ttl

    def _live(self, key: LogKey, *, allow_soft: bool = False) -> _Log:
        log = self._logs.get(key)
        if log is None:
            raise LogNotFound(f"no log {key}")
        if not log.soft_deleted and self._expired(log, self._clock()):
            self._remove(log)
            if log.soft_deleted:
                raise LogGone(f"log {key} expired; its forks still read it")
            raise LogNotFound(f"log {key} expired")
        if log.soft_deleted and not allow_soft:
            raise LogGone(f"log {key} is deleted")
        return log

    def _remove(self, log: _Log) -> None:
        """Delete ``log``: soft while forks read it, then collect up the chain."""
        if log.children:
            log.soft_deleted = True
        else:
            if self._logs.get(log.key) is log:
                del self._logs[log.key]
            parent = log.parent
            if parent is not None:
                parent.children -= 1
                if parent.soft_deleted and parent.children == 0:
                    self._remove(parent)
        self._waiters.notify(log.key)

    def _info(self, log: _Log) -> LogInfo:
        chain = log.segments()
        return LogInfo(
            key=log.key,
            generation=log.generation,
            config=log.config,
            tail=offset_at(chain, log.tail_position),
            earliest=earliest(chain),
            closed=log.closed,
            fork_of=log.fork_of,
            chain=tuple(chain) if len(chain) > 1 else (),  # one: all its own
        )

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
        self._check_running()
        now = self._clock()
        parent: _Log | None = None
        base = 0
        fork_of: tuple[str, int, int] | None = None
        first: list[bytes] = []
        if fork is not None:
            try:
                parent = self._live(fork.source)
            except LogGone as exc:
                raise ConfigConflict("the fork source is deleted") from exc
            config = fork_config(config, parent.config)
            base = fork_position(parent.segments(), parent.tail_position, fork.offset)
            if fork.sub_offset:
                if base >= parent.tail_position:
                    raise InvalidOffset("sub-offset past the end of the source")
                piece = slice_record(
                    parent.config.content_type,
                    self._record_at(parent, base + 1),
                    fork.sub_offset,
                )
                if piece is None:
                    raise InvalidOffset("sub-offset past the end of the record")
                first.append(piece)
            fork_of = (fork.source.name, base, fork.sub_offset)
        if config is None:
            raise ValueError("config is required unless forking")
        existing = self._logs.get(key)
        if existing is not None and not existing.soft_deleted:
            if self._expired(existing, now):
                self._remove(existing)
                existing = self._logs.get(key)
        if existing is not None:
            if (
                existing.soft_deleted
                or not existing.config.same_as(config)
                or existing.closed != closed
                or existing.fork_of != fork_of
            ):
                raise ConfigConflict(f"log {key} exists with another configuration")
            existing.last_access = now
            return self._info(existing), False
        log = _Log(
            key=key,
            generation=self._next_generation,
            config=config,
            base=base,
            parent=parent,
            fork_of=fork_of,
            records=[*first, *records],
            closed=closed,
            last_access=now,
        )
        self._next_generation += 1
        if parent is not None:
            parent.children += 1
        self._logs[key] = log
        self.stats.commits += 1
        return self._info(log), True

    def _record_at(self, log: _Log, position: int) -> bytes:
        for owner, segment in log.chain():
            if segment.low < position <= segment.high:
                return owner.records[position - owner.base - 1]
        raise InvalidOffset(f"no record at position {position}")

    async def append(self, key: LogKey, request: AppendRequest) -> AppendResult:
        self._check_running()
        log = self._live(key)
        state = LogState(
            generation=log.generation,
            content_type=log.config.content_type,
            tail=offset_at(log.segments(), log.tail_position),
            closed=log.closed,
            stream_seq=log.stream_seq,
            closed_by=log.closed_by,
        )
        claim = request.producer
        outcome = check_append(
            state,
            log.producers.get(claim.producer_id) if claim else None,
            content_type=request.content_type,
            has_data=bool(request.records),
            close=request.close,
            claim=claim,
            stream_seq=request.stream_seq,
            expected_tail=request.expected_tail,
        )
        log.last_access = self._clock()
        if outcome.duplicate:
            return AppendResult(
                state.tail,
                duplicate=True,
                closed=log.closed,
                producer_seq=outcome.producer_seq,
            )
        log.records.extend(request.records)
        if claim is not None:
            log.producers[claim.producer_id] = ProducerState(claim.epoch, claim.seq)
        if request.stream_seq is not None:
            log.stream_seq = request.stream_seq
        if request.close:
            log.closed = True
            log.closed_by = claim
        self.stats.commits += 1
        self.stats.appends += 1
        self.stats.records += len(request.records)
        self._waiters.notify(key)
        return AppendResult(
            offset_at(log.segments(), log.tail_position),
            closed=log.closed,
            producer_seq=outcome.producer_seq,
            count=len(request.records),
        )

    async def transact(self, tenant: str, fn: Callable[[Txn], T]) -> T:
        self._check_running()
        txn = _MemoryTxn(self, tenant)
        result = fn(txn)  # raises: nothing was applied
        txn.commit()
        return result

    @property
    def index(self) -> IndexStore:
        return self._index

    async def delete(self, key: LogKey) -> None:
        self._check_running()
        self._remove(self._live(key))

    def touch(self, key: LogKey) -> None:
        log = self._logs.get(key)
        now = self._clock()
        # An expired log stays expired: the server touches before it reads.
        if log is not None and not self._expired(log, now):
            log.last_access = now

    # Reads

    async def head(self, key: LogKey) -> LogInfo:
        self._check_running()
        return self._info(self._live(key))

    async def read(
        self, key: LogKey, after: Offset | None, *, max_bytes: int
    ) -> ReadResult:
        self._check_running()
        log = self._live(key)
        chain = log.chain()
        segments = [segment for _, segment in chain]
        start = 0 if after is None else resolve(segments, after)
        records: list[Record] = []
        size = 0
        position = start
        for owner, segment in chain:
            if position >= segment.high:
                continue
            for p in range(max(position, segment.low) + 1, segment.high + 1):
                data = owner.records[p - owner.base - 1]
                if records and size + len(data) > max_bytes:
                    break
                records.append(Record(Offset(segment.generation, p), data))
                size += len(data)
                position = p
            else:
                continue
            break
        tail = log.tail_position
        next_offset = records[-1].offset if records else offset_at(segments, start)
        if after is not None and not records and not after.is_zero:
            next_offset = after
        return ReadResult(records, next_offset, position >= tail, self._info(log))

    async def wait(self, key: LogKey, after: Offset, timeout: float) -> bool:
        self._check_running()
        log = self._live(key)
        position = resolve(log.segments(), after)
        if position < log.tail_position or log.closed:
            return True
        return await self._waiters.wait(key, timeout)


class _MemoryTxn(BufferedTxn):
    """Buffers appends and puts; applies them only when the callback returned."""

    def __init__(self, store: MemoryLogStore, tenant: str) -> None:
        super().__init__(tenant)
        self._store = store
        self._appends: dict[str, tuple[_Log, list[bytes]]] = {}
        self._replaced: dict[tuple[str, int], bytes] = {}

    def info(self, name: str) -> LogInfo:
        log, pending = self._log(name)
        info = self._store._info(log)
        # Pending records are the log's own: their offsets carry its generation.
        return with_pending(info, len(pending)) if pending else info

    def append(
        self,
        name: str,
        records: Sequence[bytes],
        *,
        expected_tail: Offset | None = None,
    ) -> list[Offset]:
        log, pending = self._log(name)
        if log.closed:
            raise LogClosed(self._store._info(log).tail)
        if expected_tail is not None:
            tail = self.info(name).tail
            if tail != expected_tail:
                raise TailMismatch(tail)
        first = log.tail_position + len(pending) + 1
        pending.extend(records)
        return [Offset(log.generation, p) for p in range(first, first + len(records))]

    def read(self, name: str, after: Offset | None, *, limit: int) -> list[Record]:
        log, pending = self._log(name)
        chain = log.chain()
        top = log.tail_position + len(pending)
        if after is None:
            start = 0
        elif after.generation == log.generation and after.position > log.tail_position:
            if after.position > top:
                raise InvalidOffset(f"offset {after} is beyond the tail")
            start = after.position  # among this transaction's appends
        else:
            start = resolve([segment for _, segment in chain], after)
        records = []
        for position in range(start + 1, min(top, start + limit) + 1):
            if position > log.tail_position:
                data = pending[position - log.tail_position - 1]
                records.append(Record(Offset(log.generation, position), data))
                continue
            for owner, segment in chain:
                if segment.low < position <= segment.high:
                    data = owner.records[position - owner.base - 1]
                    if owner is log:
                        data = self._replaced.get((name, position), data)
                    records.append(Record(Offset(segment.generation, position), data))
                    break
        return records

    def replace(self, name: str, offset: Offset, data: bytes) -> None:
        log, pending = self._log(name)
        position = offset.position
        if not (
            offset.generation == log.generation
            and log.base < position <= log.tail_position + len(pending)
        ):
            raise InvalidOffset(f"no record of log {name} at {offset}")
        if position > log.tail_position:
            pending[position - log.tail_position - 1] = data
        else:
            self._replaced[(name, position)] = data

    def _log(self, name: str) -> tuple[_Log, list[bytes]]:
        found = self._appends.get(name)
        if found is None:
            log = self._store._live(LogKey(self.tenant, name))
            found = self._appends[name] = (log, [])
        return found

    def _get_committed(self, table: str, key: str) -> bytes | None:
        return self._store._tables.get((self.tenant, table), {}).get(key)

    def _scan_committed(
        self, table: str, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        entries = self._store._tables.get((self.tenant, table), {})
        return _scan(entries, prefix, after)[:limit]

    def commit(self) -> None:
        store = self._store
        for log, records in self._appends.values():
            if records:
                log.records.extend(records)
                log.last_access = store._clock()
                store.stats.appends += 1
                store.stats.records += len(records)
                store._waiters.notify(log.key)
        for (name, position), data in self._replaced.items():
            log = self._appends[name][0]
            log.records[position - log.base - 1] = data
        for (table, key), value in self._puts.items():
            entries = store._tables.setdefault((self.tenant, table), {})
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
        store.stats.commits += 1


def _scan(entries: _Table, prefix: str, after: str | None) -> list[tuple[str, bytes]]:
    return sorted(
        (k, v)
        for k, v in entries.items()
        if k.startswith(prefix) and (after is None or k > after)
    )


class MemoryIndexStore(IndexStore):
    """Committed reads of a :class:`MemoryLogStore`'s index."""

    def __init__(self, store: MemoryLogStore) -> None:
        self._store = store

    async def get(self, tenant: str, table: str, key: str) -> bytes | None:
        check_table(table)
        return self._store._tables.get((tenant, table), {}).get(key)

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
        entries = self._store._tables.get((tenant, table), {})
        return _scan(entries, prefix, after)[: min(limit, MAX_SCAN)]

    async def tenants(self, table: str) -> list[str]:
        check_table(table)
        return sorted(
            tenant
            for (tenant, name), entries in self._store._tables.items()
            if name == table and entries
        )
