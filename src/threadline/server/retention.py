"""Retention: closed sessions are deleted after ``--retention``, never before
their audit chain was exported.

A ``session.closed`` lists the session in the ``closed`` index table, in its
commit. A staff-view export that reaches its head, starting at the start or
at or before what an earlier export reached, records that offset in
``exported``. :func:`trim` deletes a session closed for longer than the
retention **only** when ``exported`` has reached the staff view's tail (the
close is the last event): an unexported audit chain is never trimmed, however
old. Deleting removes both logs and every index entry of the session; its id
can be created again (a new generation: old offsets answer ``410``).
"""

from __future__ import annotations

import logging
from typing import Final

from ..exceptions import LogNotFound
from ..protocol.events import parse_ts
from ..protocol.offsets import Offset
from ..storage.index import MAX_SCAN, Txn
from .notify import OUTBOX
from .queue import WAITING
from .redaction import REDACTIONS
from .session_writes import (
    CLOSED,
    CURSORS,
    ENDED,
    IDS,
    MEMBERS,
    MESSAGES,
    OPEN,
    PARTICIPANTS,
    SESSIONS,
    STATE,
    UNREAD,
    WorkingState,
)
from .sessions import SessionManager, all_key, full_key

__all__ = ["CLOSED", "EXPORTED", "delete_session", "record_export", "trim"]

logger = logging.getLogger("threadline.server")

EXPORTED: Final = "exported"  # {id} -> the staff offset its exports reached

_BY_ID: Final = (IDS, MESSAGES, CURSORS, UNREAD, ENDED, REDACTIONS, OUTBOX)
"""Tables keyed ``{id}\\n…``."""


async def record_export(
    sessions: SessionManager,
    tenant: str,
    session_id: str,
    start: Offset,
    head: Offset,
) -> None:
    """Note that the staff chain was exported up to ``head`` from ``start``.

    Only an export that joins what earlier ones covered counts: from the start
    of the log, or from an offset they reached.
    """

    def run(txn: Txn) -> None:
        raw = txn.get(EXPORTED, session_id)
        reached = None if raw is None else Offset.parse(raw.decode())
        # Offsets only grow, across the generations a restore adds too: an
        # export from an offset not past what earlier ones reached joins them.
        joins = start.position == 0 or (reached is not None and start <= reached)
        if joins and (reached is None or head > reached):
            txn.put(EXPORTED, session_id, str(head).encode())

    await sessions.store.transact(tenant, run)


async def trim(sessions: SessionManager, retention: float, now: float) -> int:
    """Delete every session closed for ``retention`` seconds whose audit was
    exported to its tail; returns how many were deleted."""
    deleted = 0
    for tenant in await sessions.store.index.tenants(CLOSED):
        after: str | None = None
        while True:
            page = await sessions.store.index.scan(
                tenant, CLOSED, after=after, limit=MAX_SCAN
            )
            for session_id, raw in page:
                if parse_ts(raw.decode()) + retention > now:
                    continue
                if not await _exported(sessions, tenant, session_id):
                    continue  # kept until its audit is exported
                await delete_session(sessions, tenant, session_id)
                deleted += 1
            if len(page) < MAX_SCAN:
                break
            after = page[-1][0]
    return deleted


async def _exported(sessions: SessionManager, tenant: str, session_id: str) -> bool:
    raw_state = await sessions.store.index.get(tenant, STATE, session_id)
    raw_mark = await sessions.store.index.get(tenant, EXPORTED, session_id)
    if raw_state is None or raw_mark is None:
        return raw_state is None  # already gone: nothing to keep
    tail = WorkingState.from_json(raw_state).full_tail
    return Offset.parse(raw_mark.decode()) >= tail


async def delete_session(
    sessions: SessionManager, tenant: str, session_id: str
) -> None:
    """Delete a session: its index entries (one commit), then both logs."""

    def run(txn: Txn) -> None:
        for table in (SESSIONS, STATE, CLOSED, EXPORTED, OPEN, WAITING):
            txn.put(table, session_id, None)
        for table in (*_BY_ID, PARTICIPANTS):
            after: str | None = None
            while True:
                page = txn.scan(table, f"{session_id}\n", after=after, limit=MAX_SCAN)
                for key, _ in page:
                    txn.put(table, key, None)
                    if table == PARTICIPANTS:
                        participant = key.split("\n", 1)[1]
                        txn.put(MEMBERS, f"{participant}\n{session_id}", None)
                if len(page) < MAX_SCAN:
                    break
                after = page[-1][0]

    await sessions.store.transact(tenant, run)
    sessions.forget(tenant, session_id)
    for key in (full_key(tenant, session_id), all_key(tenant, session_id)):
        try:
            await sessions.store.delete(key)
        except LogNotFound:
            pass
    logger.info("retention: deleted session %s/%s", tenant, session_id)
