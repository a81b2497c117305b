"""The waiting queue: when a session waits for a human, and the events that say so.

A session *waits* while it is open and either nobody holds the floor (a cold
``control.request``, a ``control.release`` without ``to``, a session created
without a controller) or a control request is pending while no human (agent or
supervisor) holds the floor (a warm request: the AI keeps talking until a human
accepts). Each tenant's queue is a server-owned, staff-only log of
``queue.added`` and ``queue.removed`` events, written in the same commit as
the session event that made the session enter or leave it; consoles read it
like a session and resume from an offset.

Pure functions: the server calls :func:`waiting` on the session's state before
and after a publish and stores what :func:`queue_change` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .events import EventDraft
from .offsets import Offset
from .records import server_event_id
from .state import SessionState

__all__ = [
    "HUMAN_ROLES",
    "QUEUE_SESSION",
    "SERVER_SESSIONS",
    "SESSIONS_FEED",
    "Waiting",
    "queue_change",
    "session_created",
    "waiting",
]

QUEUE_SESSION: Final = "threadline.queue"
"""The id under which each tenant's waiting queue is read like a session.
Session ids starting ``threadline.`` are reserved for the server."""

SESSIONS_FEED: Final = "threadline.sessions"
"""The id under which each tenant's feed of new sessions is read like a
session: one staff ``session.created`` per session, written in its creation
commit, so a worker or console learns of every session and resumes from an
offset."""

SERVER_SESSIONS: Final = frozenset({QUEUE_SESSION, SESSIONS_FEED})
"""The sessions only the server writes."""

HUMAN_ROLES: Final = frozenset({"agent", "supervisor"})
"""Roles whose holding the floor answers a control request."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a session waits."""

    reason: str
    """``requested`` (a pending control request) or ``released`` (empty floor)."""

    request_id: str | None = None
    """The latest pending request, when ``requested``."""

    mode: str | None = None
    """That request's mode (``warm`` or ``cold``)."""


def waiting(state: SessionState) -> Waiting | None:
    """Whether (and why) the session waits for a human; ``None``: it does not."""
    if state.closed or state.controller_role in HUMAN_ROLES:
        return None
    pending = [r for r in state.requests.values() if not r.accepted]
    if pending:
        return Waiting("requested", pending[-1].request_id, pending[-1].mode)
    if state.controller_role is None:
        return Waiting("released")
    return None


def queue_change(
    session_id: str,
    before: Waiting | None,
    state: SessionState,
    cause: Offset,
    *,
    customer: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> EventDraft | None:
    """The queue event for a session that entered or left the queue, if it did.

    Args:
        session_id: The session.
        before: :func:`waiting` before the events were folded into ``state``.
        state: The session's state after them.
        cause: The offset (staff view) of the last event of the commit.
        customer: The session's customer, named in ``queue.added``.
        metadata: The session's metadata (routing), in ``queue.added``.
    """
    after = waiting(state)
    if (before is None) == (after is None):
        return None  # a new reason while waiting is not news to a console
    key = f"{session_id}\x00{cause}"
    if after is not None:
        data: dict[str, Any] = {
            "session": session_id,
            "reason": after.reason,
            "cause": str(cause),
        }
        if after.request_id is not None:
            data["request_id"] = after.request_id
            data["mode"] = after.mode
        if customer is not None:
            data["customer"] = customer
        if metadata:
            data["metadata"] = metadata
        return EventDraft(
            "queue.added", server_event_id("queue.added", key), data, "staff"
        )
    if state.closed:
        reason = "closed"
    elif state.controller_role in HUMAN_ROLES:
        reason = "accepted"
    else:
        reason = "handed"
    data = {"session": session_id, "reason": reason, "cause": str(cause)}
    return EventDraft(
        "queue.removed", server_event_id("queue.removed", key), data, "staff"
    )


def session_created(
    session_id: str,
    *,
    customer: str | None,
    metadata: dict[str, Any] | None,
    controller_role: str | None,
) -> EventDraft:
    """The ``session.created`` of the new-sessions feed."""
    data: dict[str, Any] = {"session": session_id, "controller_role": controller_role}
    if customer is not None:
        data["customer"] = customer
    if metadata:
        data["metadata"] = metadata
    event_id = server_event_id("session.created", session_id)
    return EventDraft("session.created", event_id, data, "staff")
