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

This module holds the manager itself: creating sessions, the working-state
cache and publishing. The rest is cut by responsibility and inherited:
:mod:`.session_reads` (reads, waits, snapshots, cursors, "my sessions"),
:mod:`.session_sweep` (the dead-producer sweep); the values it hands out are
in :mod:`.session_types` and the writes inside a publish in
:mod:`.session_writes`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

import orjson

from ..exceptions import (
    EventTooLarge,
    Forbidden,
    IdConflict,
    LogNotFound,
    ProtocolError,
    SessionNotFound,
    TailMismatch,
)
from ..protocol.actors import Actor, Role
from ..protocol.events import EventDraft, format_ts
from ..protocol.offsets import Offset
from ..protocol.queue import (
    QUEUE_SESSION,
    SERVER_SESSIONS,
    SESSIONS_FEED,
    session_created,
    waiting,
)
from ..protocol.state import SessionState
from ..storage.base import LogConfig, LogStore
from ..storage.index import Txn
from .limits import MAX_EVENT_BYTES, RateLimiter
from .notify import add_to_outbox
from .queue import (
    QUEUE_TYPES,
    RESERVED_PREFIX,
    append_server_event,
    write_queue_change,
)
from .redaction import PlannedRedaction, apply_redactions, plan_redaction
from .session_reads import SessionReads
from .session_sweep import SessionSweep
from .session_types import Published, SessionInfo, all_key, full_key
from .session_writes import (
    ALL_PREFIX,
    CLOSED,
    FULL_PREFIX,
    IDS,
    SESSIONS,
    STATE,
    StoredEvents,
    WorkingState,
    count_unread,
    draft_digest,
    ids_key,
    join,
    store_event,
    update_document,
)

__all__ = [
    "ALL_PREFIX",
    "FULL_PREFIX",
    "EventTooLarge",
    "IdConflict",
    "Published",
    "SessionInfo",
    "SessionManager",
    "SessionNotFound",
    "all_key",
    "full_key",
]

JSON_TYPE: Final = "application/json"
DEFAULT_MAX_WORKING: Final = 10_000
"""Working states a SessionManager keeps cached (bounded memory)."""


class SessionManager(SessionReads, SessionSweep):
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

    # Publishing

    def _load(self, txn: Txn, session_id: str) -> WorkingState:
        """The working state, from the cache if it still matches the store."""
        try:
            full = txn.info(FULL_PREFIX + session_id)
        except LogNotFound as exc:
            raise SessionNotFound(f"no session {session_id!r}") from exc
        full_tail = full.tail
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
        working.full_generation = full.generation
        working.all_generation = txn.info(ALL_PREFIX + session_id).generation
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

    def forget(self, tenant: str, session_id: str) -> None:
        """Drop the cached working state of a deleted session."""
        self._working.pop((tenant, session_id), None)
