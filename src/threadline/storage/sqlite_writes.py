"""The SQLite store's write side: the operations a group-commit batch runs.

Each runs on the event loop thread inside the batch's open transaction
(``sqlite_commit.py``), sees everything earlier in the batch, and raises to
refuse without writing: creating a log (and forking one), appending to it,
and removing it (a delete, or the collection of an expired log). Records and
changed rows are buffered and written once per batch; the public API calling
these is in ``sqlite.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ..exceptions import ConfigConflict, InvalidOffset, LogGone, LogNotFound
from ..protocol.offsets import Segment, offset_at
from ..protocol.streams import LogState, ProducerState, check_append
from .base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    fork_config,
    fork_position,
    slice_record,
)
from .sqlite_commit import Op, SQLiteGroupCommit
from .sqlite_rows import (
    COLUMNS,
    Expired,
    Row,
    Snapshot,
    clone,
    load_generation,
    producer_state,
    record_at,
)

__all__ = ["SQLiteWrites"]


class SQLiteWrites(SQLiteGroupCommit):
    """Create, fork, append, remove: a batch's operations on the writer's rows."""

    # Owned by SQLiteLogStore (sqlite.py).
    _clock: Callable[[], float]

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

    def _collect(self, key: LogKey) -> None:
        """Remove an expired log in the background (reads never wait for writes)."""

        def run(conn: sqlite3.Connection, snapshots: list[Snapshot]) -> None:
            with contextlib.suppress(LogNotFound, LogGone, Expired):
                self._remove(conn, self._wlive(conn, key, snapshots), snapshots)

        if self._running:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.exception())
            self._pending.append(Op(run, future))
            self._schedule()

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

    def _record_at(
        self, conn: sqlite3.Connection, segments: list[Segment], position: int
    ) -> bytes:
        self._flush_records(conn)  # the record may have come in this batch
        return record_at(conn, segments, position)

    def _replace_record(
        self,
        conn: sqlite3.Connection,
        row: Row,
        position: int,
        data: bytes,
        generation: int | None = None,
    ) -> None:
        """Rewrite one record in this batch (``Txn.replace``: a redaction), of
        the log's own generation or of an earlier one a restore continued.

        The reader cache gets the new bytes once the batch is committed.
        """
        self._flush_records(conn)  # the record may have come in this batch
        generation = row.generation if generation is None else generation
        conn.execute(
            "UPDATE records SET data=? WHERE generation=? AND position=?",
            (data, generation, position),
        )
        appended = self._appended.get(generation)
        if appended is not None:  # the snapshot for the cache must not hold it
            records = appended[1]
            for index, (at, _) in enumerate(records):
                if at == position:
                    records[index] = (at, data)
        self._rewrites.append((row.key, generation, position, data))
