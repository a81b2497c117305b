"""The read side of :class:`~threadline.server.sessions.SessionManager`:
documents, envelopes, waits and snapshots in the reader's view, the waiting
queue's listing, cursors (read receipts) and "my sessions".

:class:`SessionReads` is a mixin; ``SessionManager`` inherits it and provides
the store and the waiting queue's creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson

from ..exceptions import LogNotFound, ProtocolError, SessionNotFound
from ..protocol.events import Event
from ..protocol.offsets import Offset
from ..protocol.queue import QUEUE_SESSION, SERVER_SESSIONS
from ..storage.base import LogKey, LogStore, ReadResult
from ..storage.index import Txn
from .queue import list_waiting
from .session_types import SessionInfo, all_key, full_key
from .session_writes import (
    ALL_PREFIX,
    CURSORS,
    FULL_PREFIX,
    MEMBERS,
    SESSIONS,
    STATE,
    UNREAD,
    WorkingState,
    join,
    recount_unread,
    staff_position,
)

if TYPE_CHECKING:
    from .compaction import CompactRead
    from .sessions import SessionManager

__all__ = ["SessionReads"]


class SessionReads:
    """Reading sessions: what a reader may see of them, in its view."""

    store: LogStore

    if TYPE_CHECKING:  # provided by SessionManager

        async def ensure_queue(self, tenant: str) -> None: ...

    async def info(self, tenant: str, session_id: str) -> SessionInfo:
        """The session's document.

        Raises:
            SessionNotFound: no such session.
        """
        raw = await self.store.index.get(tenant, SESSIONS, session_id)
        if raw is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return SessionInfo.from_json(orjson.loads(raw))

    async def waiting(self, tenant: str) -> tuple[list[dict[str, Any]], Offset]:
        """The sessions waiting for a human now, oldest first, and the offset
        of the queue's log they are current as of."""
        await self.ensure_queue(tenant)
        return await self.store.transact(tenant, list_waiting)

    # Cursors and "my sessions"

    async def set_cursor(
        self,
        tenant: str,
        session_id: str,
        participant: str,
        offset: Offset,
        *,
        staff: bool,
    ) -> Offset:
        """Move a participant's cursor forward (never back), clamped to the tail.

        Returns:
            The cursor after the move.

        Raises:
            SessionNotFound, OffsetGone, InvalidOffset.
        """
        view = FULL_PREFIX if staff else ALL_PREFIX
        key = f"{session_id}\n{participant}"

        def move(txn: Txn) -> Offset:
            try:
                info = txn.info(view + session_id)
            except LogNotFound as exc:
                raise SessionNotFound(f"no session {session_id!r}") from exc
            if offset.generation in (0, info.generation):
                target = min(offset.position, info.tail.position)  # clamped
            else:  # an earlier generation a restore continued, or gone
                target = info.position_of(offset)
            current = txn.get(CURSORS, key)
            if current is not None:
                target = max(
                    target, Offset.parse(orjson.loads(current)["offset"]).position
                )
            moved = info.offset_at(target)
            cursor: dict[str, Any] = {"offset": str(moved), "staff": staff}
            if not staff and target > 0:
                # Read receipts for staff: where this is in their view.
                cursor["staff_offset"] = staff_position(txn, session_id, moved)
            txn.put(CURSORS, key, orjson.dumps(cursor))
            join(txn, session_id, participant, staff=staff)
            unread = 0
            if moved != info.tail:
                unread = recount_unread(txn, session_id, participant, moved, staff)
            txn.put(UNREAD, key, str(unread).encode())
            return moved

        return await self.store.transact(tenant, move)

    async def cursors(
        self, tenant: str, session_id: str, *, staff: bool
    ) -> list[dict[str, str]]:
        """Participants' cursors (read receipts) a reader may see.

        A customer sees the cursors kept in the customer view only: a staff
        cursor is a staff-view offset, which would reveal staff events. A
        staff reader also gets, for a customer's cursor, ``staff_offset``: the
        same place in the staff view, comparable with staff offsets ("seen").
        """
        found = await self.store.index.scan(
            tenant, CURSORS, f"{session_id}\n", limit=1000
        )
        out = []
        for key, raw in found:
            cursor = orjson.loads(raw)
            if staff or not cursor["staff"]:
                entry = {
                    "participant": key.split("\n", 1)[1],
                    "offset": cursor["offset"],
                }
                if staff and cursor.get("staff_offset"):
                    entry["staff_offset"] = cursor["staff_offset"]
                out.append(entry)
        return out

    async def my_sessions(
        self, tenant: str, participant: str, *, staff: bool
    ) -> list[dict[str, Any]]:
        """The participant's sessions, with offset, unread, controller, in flight."""
        members = await self.store.index.scan(
            tenant, MEMBERS, f"{participant}\n", limit=1000
        )
        listed = []
        for key, _ in members:
            session_id = key.split("\n", 1)[1]
            if session_id in SERVER_SESSIONS:
                continue  # a cursor in the queue or feed is not a conversation
            try:
                info = await self.info(tenant, session_id)
                snapshot = await self.snapshot(tenant, session_id, staff=staff)
            except SessionNotFound:
                continue
            if not staff and info.customer != participant:
                continue  # the session moved to another customer
            cursor_raw = await self.store.index.get(
                tenant, CURSORS, f"{session_id}\n{participant}"
            )
            cursor = None if cursor_raw is None else orjson.loads(cursor_raw)["offset"]
            listed.append(
                {
                    "session": info.to_json(),
                    "offset": snapshot["offset"],
                    "cursor": cursor,
                    "unread": int(
                        await self.store.index.get(
                            tenant, UNREAD, f"{session_id}\n{participant}"
                        )
                        or b"0"
                    ),
                    "controller": snapshot["controller"],
                    "in_flight": bool(snapshot["messages"]),
                }
            )
        return listed

    # Reading

    def view_key(self, tenant: str, session_id: str, *, staff: bool) -> LogKey:
        """The log a reader reads: the staff view or the customer view."""
        return full_key(tenant, session_id) if staff else all_key(tenant, session_id)

    async def read(
        self,
        tenant: str,
        session_id: str,
        *,
        staff: bool,
        after: Offset | None,
        max_bytes: int = 1 << 20,
    ) -> ReadResult:
        """Stored envelopes after ``after`` in the reader's view.

        Raises:
            SessionNotFound, OffsetGone, InvalidOffset.
        """
        try:
            return await self.store.read(
                self.view_key(tenant, session_id, staff=staff),
                after,
                max_bytes=max_bytes,
            )
        except LogNotFound as exc:
            raise SessionNotFound(f"no session {session_id!r}") from exc

    async def read_compact(
        self,
        tenant: str,
        session_id: str,
        *,
        staff: bool,
        after: Offset | None,
        max_bytes: int = 1 << 20,
    ) -> CompactRead:
        """The compact view after ``after`` in the reader's view.

        See :func:`threadline.server.compaction.read_compact`.

        Raises:
            SessionNotFound, OffsetGone, InvalidOffset.
        """
        from .compaction import read_compact  # it builds on .sessions

        manager = cast("SessionManager", self)  # the only class using this mixin
        return await read_compact(
            manager, tenant, session_id, staff=staff, after=after, max_bytes=max_bytes
        )

    async def wait(
        self,
        tenant: str,
        session_id: str,
        *,
        staff: bool,
        after: Offset,
        timeout: float,
    ) -> bool:
        """Wait for an event after ``after`` in the reader's view."""
        key = self.view_key(tenant, session_id, staff=staff)
        try:
            return await self.store.wait(key, after, timeout)
        except LogNotFound as exc:
            raise SessionNotFound(f"no session {session_id!r}") from exc

    async def snapshot(
        self, tenant: str, session_id: str, *, staff: bool
    ) -> dict[str, Any]:
        """The state snapshot a reader may see, with the tail of its view."""
        raw = await self.store.index.get(tenant, STATE, session_id)
        if raw is None:
            raise SessionNotFound(f"no session {session_id!r}")
        working = WorkingState.from_json(raw)
        snapshot = working.state.snapshot(staff=staff)
        snapshot["offset"] = str(working.full_tail if staff else working.all_tail)
        if session_id == QUEUE_SESSION:
            listed, offset = await self.waiting(tenant)
            snapshot["waiting"], snapshot["offset"] = listed, str(offset)
        if not staff:
            # The state keeps staff-view offsets; a customer gets customer-view
            # ones, or none, so no offset betrays a staff event.
            for message in snapshot["messages"]:
                message["start_offset"] = working.all_starts.get(message["message_id"])
            for run in snapshot["runs"]:
                run.pop("start_offset", None)
        return snapshot

    @staticmethod
    def parse_events(raw: Sequence[bytes]) -> list[Event]:
        """Decode stored envelopes (trusted: the server wrote them)."""
        try:
            return [Event.parse(orjson.loads(data)) for data in raw]
        except orjson.JSONDecodeError as exc:  # pragma: no cover - corrupt store
            raise ProtocolError("stored event is not JSON") from exc
