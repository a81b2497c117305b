"""SessionManager: sessions on the log store — publish, read, state, cursors.

Each session is two logs in its tenant:

* ``session:{id}``, the **staff view**: every event, in the one total order,
  each envelope carrying its offset here and the audit chain's hashes;
* ``session.all:{id}``, the **customer view**: the events visible to all, in
  the same order, with offsets and a hash chain of their own.

A customer therefore reads a log in which staff events do not exist: no gap
in the offsets, no tail, ETag, wake-up or ``prev_hash`` betrays them
(PRODUCT.md guarantee 5). Both copies of an event are written in the same
transaction, so the two views can never disagree.

Every publish runs as one :meth:`LogStore.transact`: exactly-once dedupe by
(actor, event id), validation by the sans-I/O
:class:`~threadline.protocol.state.SessionState`, the envelopes with their
hashes, and the derived state (the folded state, the idempotency index,
folded messages, cursors, memberships) all commit together.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..exceptions import (
    EventTooLarge,
    Forbidden,
    IdConflict,
    LogNotFound,
    OffsetGone,
    ProtocolError,
    SessionNotFound,
    TailMismatch,
)
from ..protocol.actors import SERVER, Actor, Role
from ..protocol.events import Event, EventDraft, format_ts
from ..protocol.offsets import Offset
from ..protocol.queue import (
    QUEUE_SESSION,
    SERVER_SESSIONS,
    SESSIONS_FEED,
    session_created,
    waiting,
)
from ..protocol.state import LEASE, SessionState
from ..storage.base import LogConfig, LogKey, LogStore, ReadResult
from ..storage.index import MAX_SCAN, Txn
from .limits import MAX_EVENT_BYTES, RateLimiter
from .notify import add_to_outbox
from .queue import (
    QUEUE_TYPES,
    RESERVED_PREFIX,
    append_server_event,
    list_waiting,
    write_queue_change,
)
from .redaction import PlannedRedaction, apply_redactions, plan_redaction
from .session_writes import (
    ALL_PREFIX,
    CLOSED,
    CURSORS,
    FULL_PREFIX,
    IDS,
    MEMBERS,
    OPEN,
    SESSIONS,
    STATE,
    UNREAD,
    StoredEvents,
    WorkingState,
    count_unread,
    draft_digest,
    ids_key,
    join,
    recount_unread,
    staff_position,
    store_event,
    update_document,
)

if TYPE_CHECKING:
    from .compaction import CompactRead

__all__ = [
    "ALL_PREFIX",
    "FULL_PREFIX",
    "EventTooLarge",
    "IdConflict",
    "Published",
    "SessionInfo",
    "SessionManager",
    "SessionNotFound",
]

JSON_TYPE: Final = "application/json"
DEFAULT_MAX_WORKING: Final = 10_000
"""Working states a SessionManager keeps cached (bounded memory)."""


def full_key(tenant: str, session_id: str) -> LogKey:
    """The staff view's log."""
    return LogKey(tenant, FULL_PREFIX + session_id)


def all_key(tenant: str, session_id: str) -> LogKey:
    """The customer view's log."""
    return LogKey(tenant, ALL_PREFIX + session_id)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session's document: who it belongs to and its routing metadata."""

    id: str
    customer: str | None
    metadata: dict[str, Any]
    created: str
    controller_role: Role | None = "ai"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "metadata": self.metadata,
            "created": self.created,
            "controller_role": self.controller_role,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SessionInfo:
        return cls(
            obj["id"],
            obj["customer"],
            obj["metadata"],
            obj["created"],
            obj["controller_role"],
        )


@dataclass(frozen=True, slots=True)
class Published:
    """One published draft: where it went, in the publisher's view."""

    id: str
    offset: Offset
    duplicate: bool = False
    """A retry: the event was stored before; ``offset`` is the original."""


class SessionManager:
    """Sessions of every tenant on one log store.

    Working state is cached per session between writes and checked against
    the store's working tails on every use, so a rolled-back commit can never
    leave a stale cache behind.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._working: OrderedDict[tuple[str, str], WorkingState] = OrderedDict()
        """Working states by (tenant, session), least recently used first."""
        self.max_working = DEFAULT_MAX_WORKING
        """Working states kept between writes; past it the least recently
        written is dropped (it is reloaded from the store when needed)."""
        self._queues: set[tuple[str, str]] = set()
        """Server-owned sessions known to exist: (tenant, id)."""
        self.notify_coalesce: float | None = None
        """With webhooks on, the coalescing window of the notification outbox
        (:mod:`threadline.server.notify`); ``None``: no outbox is written."""
        """Tenants whose waiting queue exists."""
        self.limiter = limiter
        """Publish rate limits per participant (``None``: unlimited)."""

    # Sessions

    async def create(
        self,
        tenant: str,
        session_id: str,
        *,
        customer: str | None,
        metadata: dict[str, Any] | None = None,
        controller_role: Role | None = "ai",
    ) -> tuple[SessionInfo, bool]:
        """Create a session, or return the existing one (``created`` False).

        An existing session is returned as it is, whatever ``customer`` and
        ``metadata`` say: creating is "ensure". A session created without a
        controller enters the waiting queue at once.

        Raises:
            ProtocolError: ``reserved_session_id``: the id starts ``threadline.``.
        """
        if session_id.startswith(RESERVED_PREFIX):
            raise ProtocolError(
                f"session ids starting {RESERVED_PREFIX!r} are the server's",
                "reserved_session_id",
            )
        await self.ensure_feed(tenant)
        if controller_role is None:
            await self.ensure_queue(tenant)
        return await self._create(
            tenant, session_id, customer, metadata, controller_role
        )

    async def ensure_queue(self, tenant: str) -> None:
        """Create the tenant's waiting queue if it does not exist yet."""
        await self.ensure_server_session(tenant, QUEUE_SESSION)

    async def ensure_feed(self, tenant: str) -> None:
        """Create the tenant's new-sessions feed if it does not exist yet."""
        await self.ensure_server_session(tenant, SESSIONS_FEED)

    async def ensure_server_session(self, tenant: str, session_id: str) -> None:
        """Create a server-owned session (queue, feed) if it does not exist."""
        if (tenant, session_id) not in self._queues:
            await self._create(tenant, session_id, None, None, None)
            self._queues.add((tenant, session_id))

    async def _create(
        self,
        tenant: str,
        session_id: str,
        customer: str | None,
        metadata: dict[str, Any] | None,
        controller_role: Role | None,
    ) -> tuple[SessionInfo, bool]:
        await self.store.create(full_key(tenant, session_id), LogConfig(JSON_TYPE))
        await self.store.create(all_key(tenant, session_id), LogConfig(JSON_TYPE))
        info = SessionInfo(
            session_id,
            customer,
            dict(metadata or {}),
            format_ts(self._clock()),
            controller_role,
        )

        def ensure(txn: Txn) -> tuple[SessionInfo, bool]:
            existing = txn.get(SESSIONS, session_id)
            if existing is not None:
                return SessionInfo.from_json(orjson.loads(existing)), False
            txn.put(SESSIONS, session_id, orjson.dumps(info.to_json()))
            state = SessionState(customer, controller_role=controller_role)
            working = WorkingState(
                state,
                txn.info(FULL_PREFIX + session_id).tail,
                txn.info(ALL_PREFIX + session_id).tail,
            )
            txn.put(STATE, session_id, working.to_json())
            if customer is not None:
                join(txn, session_id, customer, staff=False)
            if session_id in SERVER_SESSIONS:
                return info, True
            feed = self._load(txn, SESSIONS_FEED)
            created = session_created(
                session_id,
                customer=customer,
                metadata=info.metadata,
                controller_role=controller_role,
            )
            append_server_event(txn, SESSIONS_FEED, feed, created, info.created)
            if waiting(state) is not None:
                queue = self._load(txn, QUEUE_SESSION)
                write_queue_change(
                    txn, session_id, None, state, working.full_tail, queue, info.created
                )
            return info, True

        return await self.store.transact(tenant, ensure)

    async def info(self, tenant: str, session_id: str) -> SessionInfo:
        """The session's document.

        Raises:
            SessionNotFound: no such session.
        """
        raw = await self.store.index.get(tenant, SESSIONS, session_id)
        if raw is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return SessionInfo.from_json(orjson.loads(raw))

    # Publishing

    def _load(self, txn: Txn, session_id: str) -> WorkingState:
        """The working state, from the cache if it still matches the store."""
        try:
            full_tail = txn.info(FULL_PREFIX + session_id).tail
        except LogNotFound as exc:
            raise SessionNotFound(f"no session {session_id!r}") from exc
        key = (txn.tenant, session_id)
        cached = self._working.get(key)
        if cached is not None and cached.full_tail == full_tail:
            self._working.move_to_end(key)
            return cached
        raw = txn.get(STATE, session_id)
        if raw is None:
            raise SessionNotFound(f"no session {session_id!r}")
        working = WorkingState.from_json(raw)
        if working.full_tail != full_tail:
            raise RuntimeError(f"session {session_id}: state and log disagree")
        working.load_ended(txn, session_id)
        self._working[key] = working
        if len(self._working) > self.max_working:
            self._working.popitem(last=False)  # the least recently used
        return working

    async def publish(
        self,
        tenant: str,
        session_id: str,
        actor: Actor,
        drafts: Sequence[EventDraft],
        *,
        caps: Collection[str] = (),
        expected_offset: Offset | None = None,
    ) -> list[Published]:
        """Publish drafts as ``actor``, all or nothing, each exactly once.

        A draft whose (actor, id) was stored before is a retry: it is not
        stored again and gets its original offset, provided its body is the
        same (else :class:`IdConflict`). Dedupe runs before validation.
        Offsets are in the publisher's view (customer: visible to all).

        Raises:
            SessionNotFound, IdConflict, TailMismatch (``expected_offset``),
            and the :class:`SessionRuleError` family of the rules.
        """
        staff = actor.is_staff
        if session_id.startswith(RESERVED_PREFIX) and not actor.is_server:
            raise Forbidden(f"only the server writes {session_id!r}")
        if self.limiter is not None and not actor.is_server:
            self.limiter.take(tenant, actor.id, staff=staff, count=len(drafts))
        key = (tenant, session_id)
        if any(draft.type in QUEUE_TYPES for draft in drafts):
            await self.ensure_queue(tenant)

        def run(txn: Txn) -> list[Published]:
            working = self._load(txn, session_id)
            try:
                return self._publish(
                    txn,
                    working,
                    session_id,
                    actor,
                    drafts,
                    caps,
                    expected_offset,
                    staff,
                )
            except BaseException:
                self._working.pop(key, None)  # it may hold half a batch
                self._working.pop((tenant, QUEUE_SESSION), None)
                raise

        # A commit that fails after ``run`` leaves the cache ahead of the store;
        # ``_load`` notices (the tails differ) and reloads.
        return await self.store.transact(tenant, run)

    def _publish(
        self,
        txn: Txn,
        working: WorkingState,
        session_id: str,
        actor: Actor,
        drafts: Sequence[EventDraft],
        caps: Collection[str],
        expected_offset: Offset | None,
        staff: bool,
    ) -> list[Published]:
        if expected_offset is not None:
            tail = working.full_tail if staff else working.all_tail
            if expected_offset != tail:
                raise TailMismatch(tail)
        now = self._clock()
        ts = format_ts(now)
        results: list[Published] = []
        stored = StoredEvents()
        queued = any(draft.type in QUEUE_TYPES for draft in drafts)
        before = waiting(working.state) if queued else None
        # The chain tips are built on these tails: the appends compare-and-set.
        full_base, all_base = working.full_tail, working.all_tail
        redactions: list[PlannedRedaction] = []
        for draft in drafts:
            if len(draft.serialize()) > MAX_EVENT_BYTES:
                raise EventTooLarge(
                    f"event {draft.id!r} is over {MAX_EVENT_BYTES} bytes"
                )
            entry_key = ids_key(session_id, actor, draft.id)
            digest = draft_digest(draft)
            prior = txn.get(IDS, entry_key)
            if prior is not None:
                original = orjson.loads(prior)
                if original["digest"] != digest:
                    raise IdConflict(
                        f"event id {draft.id!r} was used with another body"
                    )
                offset = original["full"] if staff else original["all"]
                if offset is None:
                    raise IdConflict(f"event id {draft.id!r} names a staff event")
                results.append(Published(draft.id, Offset.parse(offset), True))
                continue
            accepted = working.state.validate(draft, actor, caps=caps)
            if draft.type == "session.updated":
                update_document(txn, session_id, draft.data)
            elif draft.type == "session.closed":
                txn.put(CLOSED, session_id, ts.encode())  # for retention
            shown = None
            if draft.type == "redaction":  # shown where its target is
                accepted, shown = plan_redaction(
                    txn,
                    session_id,
                    working,
                    stored,
                    draft.visibility,
                    accepted,
                    redactions,
                )
            mine: dict[str, str | None] = {"full": None, "all": None}
            for entry_actor, entry in accepted.entries():
                full_offset, all_offset = store_event(
                    txn,
                    session_id,
                    working,
                    stored,
                    entry_actor,
                    entry,
                    ts,
                    visible_data=shown if entry is accepted.draft else None,
                )
                if entry is accepted.draft:
                    mine = {
                        "full": str(full_offset),
                        "all": None if all_offset is None else str(all_offset),
                    }
            txn.put(IDS, entry_key, orjson.dumps({"digest": digest, **mine}))
            offset = mine["full"] if staff else mine["all"]
            assert offset is not None  # a customer's events are visible to all
            results.append(Published(draft.id, Offset.parse(offset)))
        if not actor.is_server and actor.id not in working.members:
            join(txn, session_id, actor.id, staff=staff)
        count_unread(txn, session_id, stored.completed)
        if self.notify_coalesce is not None and stored.completed:
            at = str(working.full_tail)
            add_to_outbox(
                txn,
                session_id,
                [(author, shown, at) for author, shown in stored.completed],
                now,
                self.notify_coalesce,
            )
        if stored.full:
            # Remembered only with new events: a commit that fails then moves
            # no tail, and the next ``_load`` drops this working state.
            if not actor.is_server:
                working.members.add(actor.id)
            txn.append(FULL_PREFIX + session_id, stored.full, expected_tail=full_base)
            if stored.visible:
                txn.append(
                    ALL_PREFIX + session_id, stored.visible, expected_tail=all_base
                )
            apply_redactions(txn, session_id, working, redactions)
            working.save_ended(txn, session_id)
            working.save_open(txn, session_id)
            txn.put(STATE, session_id, working.to_json())
            if queued:
                queue = self._load(txn, QUEUE_SESSION)
                write_queue_change(
                    txn, session_id, before, working.state, working.full_tail, queue, ts
                )
        return results

    async def waiting(self, tenant: str) -> tuple[list[dict[str, Any]], Offset]:
        """The sessions waiting for a human now, oldest first, and the offset
        of the queue's log they are current as of."""
        await self.ensure_queue(tenant)
        return await self.store.transact(tenant, list_waiting)

    def forget(self, tenant: str, session_id: str) -> None:
        """Drop the cached working state of a deleted session."""
        self._working.pop((tenant, session_id), None)

    # Dead producers

    async def sweep(self, lease: float = LEASE) -> int:
        """End every message and run silent for ``lease`` seconds, in every
        tenant (``error`` / ``producer_lost``, as the server). Returns how
        many sessions had something ended.

        Sessions are found by their OPEN entries, written in the commits that
        open and end things, so a restart forgets none.
        """
        now = self._clock()
        swept = 0
        for tenant in await self.store.index.tenants(OPEN):
            after: str | None = None
            while True:
                page = await self.store.index.scan(
                    tenant, OPEN, after=after, limit=MAX_SCAN
                )
                for number, (session_id, _) in enumerate(page, 1):
                    if await self._expire(tenant, session_id, now, lease):
                        swept += 1
                    if number % 100 == 0:
                        await asyncio.sleep(0)  # index reads block: let others run
                if len(page) < MAX_SCAN:
                    break
                after = page[-1][0]
        return swept

    async def _expire(
        self, tenant: str, session_id: str, now: float, lease: float
    ) -> bool:
        # Most open work is alive: check without a transaction first, on the
        # cached working state (never behind the store) or else the stored one.
        cached = self._working.get((tenant, session_id))
        if cached is not None:
            if not cached.state.expired(now, lease):
                return False
        else:
            raw = await self.store.index.get(tenant, STATE, session_id)
            if raw is None or not WorkingState.from_json(raw).state.expired(now, lease):
                return False

        def run(txn: Txn) -> bool:
            working = self._load(txn, session_id)
            drafts = working.state.expired(now, lease)
            if not drafts:
                return False
            try:
                self._publish(txn, working, session_id, SERVER, drafts, (), None, True)
            except BaseException:
                self._working.pop((tenant, session_id), None)
                raise
            return True

        try:
            return await self.store.transact(tenant, run)
        except SessionNotFound:
            return False  # deleted meanwhile

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
            if offset.generation not in (0, info.generation):
                raise OffsetGone(info.earliest, info.tail)
            target = min(offset.position, info.tail.position)
            current = txn.get(CURSORS, key)
            if current is not None:
                target = max(
                    target, Offset.parse(orjson.loads(current)["offset"]).position
                )
            moved = Offset(info.generation, target)
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
        from .compaction import read_compact  # it builds on this module

        return await read_compact(
            self, tenant, session_id, staff=staff, after=after, max_bytes=max_bytes
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
