"""The SQLite store's schema, migrations and row codec (used by ``sqlite.py``)."""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..exceptions import InvalidOffset, LogNotFound, StorageError
from ..protocol.offsets import Segment, earliest, offset_at
from ..protocol.streams import ProducerClaim, ProducerState
from .base import LogConfig, LogInfo, LogKey

__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "Expired",
    "Row",
    "Snapshot",
    "clone",
    "load",
    "load_generation",
    "producer_state",
    "record_at",
]

MIGRATIONS: Final[list[str]] = [
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
    -- Records sit in commit order (the rowid), so a group commit writes a few
    -- pages at the end of the table instead of one leaf per stream, and the index
    -- finds a stream's range. (Measured: half the commit CPU of a table
    -- clustered by (generation, position).)
    CREATE TABLE records (
        seq INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL,
        position INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX records_by_position ON records (generation, position);
    CREATE TABLE kv (
        tenant TEXT NOT NULL,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (tenant, tbl, key)
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

COLUMNS: Final = (
    "generation, tenant, name, content_type, ttl, expires_at, base, parent, "
    "fork_name, fork_position, fork_sub, tail, closed, closed_by_id, "
    "closed_by_epoch, closed_by_seq, stream_seq, last_access, soft_deleted, children"
)


@dataclass(eq=False, slots=True)
class Row:
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
    def from_db(cls, row: tuple[Any, ...]) -> Row:
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
            chain=tuple(segments) if len(segments) > 1 else (),  # one: all its own
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one committed operation changed, for the reader cache."""

    key: LogKey
    generation: int
    row: Row | None
    """The committed row (``None``: the log was removed)."""
    records: Sequence[tuple[int, bytes]] = ()


class Expired(LogNotFound):
    """Internal: the log expired and was collected in this transaction."""


def clone(row: Row) -> Row:
    """A copy for the reader cache (the writer keeps mutating its own)."""
    return Row(
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


def load(conn: sqlite3.Connection, key: LogKey) -> Row | None:
    found = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE tenant=? AND name=?", (key.tenant, key.name)
    ).fetchone()
    if found is None:
        return None
    row = Row.from_db(found)
    # ``logs.tail`` is only written with other metadata changes; the records
    # are the truth (appends do not rewrite the log row).
    top = conn.execute(
        "SELECT MAX(position) FROM records WHERE generation=?", (row.generation,)
    ).fetchone()[0]
    if top is not None and top > row.tail:
        row.tail = top
    row.chain = chain_of(conn, row)
    return row


def load_generation(conn: sqlite3.Connection, generation: int) -> Row | None:
    found = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE generation=?", (generation,)
    ).fetchone()
    return None if found is None else Row.from_db(found)


RESTORED_PREFIX: Final = "\x00restored/"
"""A restore (:mod:`~threadline.storage.sqlite_backup`) renames each log it
continues to ``RESTORED_PREFIX + "<generation>/<name>"``: no API name starts
with a control character, so it can never be reached or taken again."""


def restored_name(generation: int, name: str) -> str:
    """The name a restore gives the generation it continues."""
    return f"{RESTORED_PREFIX}{generation}/{name}"


def original_name(name: str) -> str:
    """A log's name before any restore renamed it."""
    if name.startswith(RESTORED_PREFIX):
        return name.split("/", 2)[2]
    return name


def chain_of(conn: sqlite3.Connection, row: Row) -> list[Segment]:
    """The ancestors' segments of a fork, each cut at the point its child forked.

    A generation that a restore continued (same original name as its child)
    lost the positions it minted after the backup: its segment says so.
    """
    segments: list[Segment] = []
    upto = row.base
    parent_id = row.parent
    child = row
    while parent_id is not None:
        parent = load_generation(conn, parent_id)
        if parent is None:
            raise StorageError(f"fork chain broken at generation {parent_id}")
        lost = parent.key.name.startswith(RESTORED_PREFIX) and original_name(
            parent.key.name
        ) == original_name(child.key.name)
        if parent.base < upto or parent.parent is None:
            segments.append(Segment(parent.generation, parent.base, upto, lost))
        upto = min(upto, parent.base)
        parent_id = parent.parent
        child = parent
    segments.reverse()
    return segments


def producer_state(
    conn: sqlite3.Connection, row: Row, producer_id: str
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


def record_at(
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
