"""Compact reads of a session: the I/O around :mod:`threadline.protocol.compaction`.

A compact read from X reads, in this order, so that each source is at least
as new as the one before:

1. the session's working state (index table ``state``): the view's tail T,
   and the open messages with their parts so far, as of T;
2. the folded messages (index table ``messages``) that started after X and
   ended by T: the parts of each completed message, stored with its
   ``message.end`` in the same commit;
3. the view's log between X and T — but only the positions
   :func:`~threadline.protocol.compaction.plan_reads` asks for. A run of
   messages whose event counts fill their positions holds nothing else, so
   only each message's first and last event (and an open message's latest
   delta) are read; their deltas are neither read nor decoded. Anything that
   cannot be accounted for so (notes and other events between messages,
   messages started before X, folded messages written without an event
   count) is read in full.

Reading 100 completed messages of 100 deltas each from the start therefore
touches about 200 stored events and 100 index entries, not 10,200 events.

A customer's compact read uses the customer view throughout: its log, its
offsets (``all_start_offset`` / ``all_end_offset`` of the folded messages),
its tail, and only the open messages visible to all — staff messages do not
exist in it (PRODUCT.md guarantee 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..exceptions import StorageError
from ..protocol.compaction import Entry, Span, compact, plan_reads
from ..protocol.offsets import Offset
from ..storage.index import MAX_SCAN
from .session_writes import MESSAGES, STATE, WorkingState
from .sessions import SessionNotFound

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..storage.base import LogInfo
    from .sessions import SessionManager

__all__ = ["CompactRead", "CompactRecord", "read_compact"]

_CATCH_UP_TRIES: Final = 5
_CATCH_UP_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class CompactRecord:
    """One event of a compact read, encoded."""

    offset: Offset
    data: bytes
    """The envelope's JSON (a stored one as stored, a compacted one encoded)."""

    resumable: bool
    """Whether a reader holding the read up to here may resume from ``offset``."""


@dataclass(frozen=True, slots=True)
class CompactRead:
    """A page of the compact view."""

    records: list[CompactRecord]
    next_offset: Offset
    """Where to read next: the last record's offset (always resumable), or
    the offset read from."""

    up_to_date: bool
    """The page reached the view's tail as of the read."""


async def read_compact(
    sessions: SessionManager,
    tenant: str,
    session_id: str,
    *,
    staff: bool,
    after: Offset | None,
    max_bytes: int = 1 << 20,
) -> CompactRead:
    """The compact view of a session after ``after``, in the reader's view.

    A page ends at a resumable event: past ``max_bytes`` only as far as the
    first one (a compact read always makes progress).

    Raises:
        SessionNotFound, OffsetGone, InvalidOffset; StorageError (the store
        failed, or its log stayed behind its index).
    """
    raw = await sessions.store.index.get(tenant, STATE, session_id)
    if raw is None:
        raise SessionNotFound(f"no session {session_id!r}")
    working = WorkingState.from_json(raw)
    tail = working.full_tail if staff else working.all_tail
    info = await _log_reaches(sessions, tenant, session_id, staff, after, tail)
    begin = 0 if after is None or after.is_zero else info.position_of(after)
    if begin >= tail.position:
        start = info.earliest if begin == 0 else after
        assert start is not None
        return CompactRead([], start, True)
    parts, spans = await _known_messages(
        sessions, tenant, session_id, working, staff, begin, tail, info
    )
    entries: list[Entry] = []
    reader = _RangeReader(sessions, tenant, session_id, staff)
    for low, high in plan_reads(begin, tail.position, spans):
        entries += await reader.read(info.offset_at, low, high)
    results = compact(
        entries,
        after=None if begin == 0 else after,
        parts=parts,
        decode=orjson.loads,
    )
    records: list[CompactRecord] = []
    size = resumable = 0
    for result in results:
        data = result.serialize(orjson.dumps)
        if resumable and size + len(data) > max_bytes:
            break
        records.append(CompactRecord(result.offset, data, result.resumable))
        size += len(data)
        if result.resumable:
            resumable = len(records)
    del records[resumable:]
    return CompactRead(records, records[-1].offset, len(records) == len(results))


async def _log_reaches(
    sessions: SessionManager,
    tenant: str,
    session_id: str,
    staff: bool,
    after: Offset | None,
    tail: Offset,
) -> LogInfo:
    """Check ``after`` as a raw read does, and wait until the log reaches
    ``tail``; the log's info then (its generations map offsets and positions).

    A store may show a commit's index entries a moment before its log reads
    do (SQLite: the reader connection sees the COMMIT before the loop updates
    its cache of the log); the working state must never be ahead of the log.

    Raises:
        SessionNotFound, OffsetGone, InvalidOffset; StorageError if the log
        does not catch up.
    """
    for _ in range(_CATCH_UP_TRIES):
        probe = await sessions.read(
            tenant, session_id, staff=staff, after=after, max_bytes=1
        )
        if probe.info.tail >= tail:
            return probe.info
        await sessions.wait(
            tenant,
            session_id,
            staff=staff,
            after=probe.info.tail,
            timeout=_CATCH_UP_SECONDS,
        )
    raise StorageError(f"session {session_id}: the log lags behind its state")


async def _known_messages(
    sessions: SessionManager,
    tenant: str,
    session_id: str,
    working: WorkingState,
    staff: bool,
    begin: int,
    tail: Offset,
    info: LogInfo,
) -> tuple[dict[Offset, list[Any]], list[Span]]:
    """The parts and spans of the messages started after ``begin``, as of
    ``tail``; ``info`` is the view's log."""
    parts: dict[Offset, list[Any]] = {}
    spans: list[Span] = []
    prefix = f"{session_id}\n"
    # Keys are staff-view start offsets; a customer-view position is never
    # larger than the staff-view position of the same event. The state knows
    # which staff generation holds a position (a restore adds one).
    state = working.state
    floor = Offset(state.owner_generation(begin) or working.full_tail.generation, begin)
    generations = {s.generation for s in info.chain} or {info.generation}
    page_after: str | None = f"{prefix}{floor}"
    while page_after is not None:
        page = await sessions.store.index.scan(
            tenant, MESSAGES, prefix, after=page_after, limit=MAX_SCAN
        )
        page_after = page[-1][0] if len(page) == MAX_SCAN else None
        for _, value in page:
            folded = orjson.loads(value)
            start_text = folded["start_offset" if staff else "all_start_offset"]
            end_text = folded["end_offset" if staff else "all_end_offset"]
            if start_text is None or end_text is None:
                continue  # staff-only, in the customer view
            start, end = Offset.parse(start_text), Offset.parse(end_text)
            if start.position <= begin or end > tail:
                continue  # resumed (read in full), or ended after the tail
            if start.generation not in generations:
                continue  # left over from an earlier incarnation of the log
            parts[start] = folded["parts"]
            deltas = folded.get("deltas")
            if start == end:
                spans.append(Span(start.position, end.position, 1))
            else:
                count = None if deltas is None else deltas + 2
                spans.append(Span(start.position, end.position, count))
    for message in working.state.messages.values():
        if staff:
            start = message.start_offset
        elif message.visibility == "all":
            start = Offset.parse(working.all_starts[message.message_id])
        else:
            continue
        if start.position > begin:
            parts[start] = [part.to_json() for part in message.fold.parts()]
            spans.append(Span(start.position, None, message.next_seq + 1))
    return parts, spans


class _RangeReader:
    """Reads ranges of positions, sizing each read by the records seen so far."""

    def __init__(
        self, sessions: SessionManager, tenant: str, session_id: str, staff: bool
    ) -> None:
        self._sessions = sessions
        self._tenant = tenant
        self._session_id = session_id
        self._staff = staff
        self._records = 0
        self._bytes = 0

    async def read(
        self, offset_at: Callable[[int], Offset], low: int, high: int
    ) -> list[Entry]:
        """The stored events at positions ``low`` to ``high``, described
        (``offset_at`` names a position of the log)."""
        entries: list[Entry] = []
        position = low - 1
        while position < high:
            wanted = high - position
            budget = 1  # one record, until the sizes are known
            if self._records:
                budget = wanted * self._bytes // self._records * 5 // 4
            result = await self._sessions.read(
                self._tenant,
                self._session_id,
                staff=self._staff,
                after=offset_at(position),
                max_bytes=budget,
            )
            if not result.records:
                raise RuntimeError(
                    f"session {self._session_id}: log shorter than its state"
                )
            for record in result.records:
                if record.offset.position > high:
                    break
                entries.append(
                    Entry.from_record(record.offset, record.data, orjson.loads)
                )
                self._records += 1
                self._bytes += len(record.data)
            position = result.records[-1].offset.position
        return entries
