"""The waiting queue's writes and reads (PRODUCT.md: "the waiting queue").

Each tenant's queue is a server-owned session, :data:`QUEUE_SESSION`, whose
log holds only staff ``queue.added`` / ``queue.removed`` events. A publish that
makes a session enter or leave the queue (:func:`threadline.protocol.queue.waiting`)
appends the queue event in the same commit, and updates the ``waiting`` index
table, which lists the sessions waiting now. Consoles read the queue like any
session (SSE, WebSocket, long-poll, from an offset) and list it with
``GET /v1/sessions?waiting=agent``, whose answer names the queue offset it is
current as of, so a console lists, then subscribes from that offset, gaplessly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from ..protocol.actors import SERVER
from ..protocol.events import EventDraft
from ..protocol.offsets import Offset
from ..protocol.queue import QUEUE_SESSION, Waiting, queue_change
from ..protocol.state import SessionState
from ..storage.index import MAX_SCAN, Txn
from .session_writes import FULL_PREFIX, SESSIONS, STATE, StoredEvents, store_event

if TYPE_CHECKING:
    from .session_writes import WorkingState

__all__ = [
    "FEED_ROLES",
    "QUEUE_ROLES",
    "QUEUE_SESSION",
    "QUEUE_TYPES",
    "RESERVED_PREFIX",
    "WAITING",
    "append_server_event",
    "list_waiting",
    "write_queue_change",
]

WAITING: Final = "waiting"  # {session id} -> its queue.added data, with "offset"

RESERVED_PREFIX: Final = "threadline."
"""Session ids the server keeps for itself (the queue); no one creates them."""

QUEUE_ROLES: Final = frozenset({"agent", "supervisor", "service"})
"""Roles that may list and subscribe to the waiting queue (the rights table)."""

FEED_ROLES: Final = frozenset({"ai", "agent", "supervisor", "service"})
"""Roles that may read the new-sessions feed (staff)."""

QUEUE_TYPES: Final = frozenset(
    {"control.request", "control.accept", "control.release", "session.closed"}
)
"""Event types that can move a session in or out of the queue."""


def write_queue_change(
    txn: Txn,
    session_id: str,
    before: Waiting | None,
    state: SessionState,
    cause: Offset,
    queue: WorkingState,
    ts: str,
) -> None:
    """If the session entered or left the queue, log it and index it."""
    customer: str | None = None
    metadata: dict[str, Any] | None = None
    raw = txn.get(SESSIONS, session_id)
    if raw is not None:
        document = orjson.loads(raw)
        customer, metadata = document.get("customer"), document.get("metadata")
    change = queue_change(
        session_id, before, state, cause, customer=customer, metadata=metadata
    )
    if change is None:
        return
    append_server_event(txn, QUEUE_SESSION, queue, change, ts)
    if change.type == "queue.added":
        entry = {**change.data, "offset": str(queue.full_tail), "since": ts}
        txn.put(WAITING, session_id, orjson.dumps(entry))
    else:
        txn.put(WAITING, session_id, None)


def append_server_event(
    txn: Txn, session_id: str, working: WorkingState, draft: EventDraft, ts: str
) -> None:
    """Store one server event in a server-owned session (staff view only)."""
    stored = StoredEvents()
    store_event(txn, session_id, working, stored, SERVER, draft, ts)
    txn.append(FULL_PREFIX + session_id, stored.full)
    working.save_ended(txn, session_id)
    txn.put(STATE, session_id, working.to_json())


def list_waiting(txn: Txn) -> tuple[list[dict[str, Any]], Offset]:
    """The sessions waiting now, oldest first, and the queue offset as of which."""
    entries: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = txn.scan(WAITING, "", after=after, limit=MAX_SCAN)
        entries += [orjson.loads(raw) for _, raw in page]
        if len(page) < MAX_SCAN:
            break
        after = page[-1][0]
    entries.sort(key=lambda entry: entry["offset"])
    return entries, txn.info(FULL_PREFIX + QUEUE_SESSION).tail
