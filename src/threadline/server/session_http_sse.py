"""Session SSE: ``GET /v1/sessions/{id}/events?live=sse``.

One SSE event per log event (``id:`` is its offset), ``event: control`` lines
(``gone``, ``closed``, ``resume``) and, with presence, ``event: presence``
lines. :mod:`threadline.server.session_http` authenticates the reader and
picks the resume point; :func:`session_sse` streams from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import orjson
from starlette.responses import Response, StreamingResponse

from ..auth import Claims
from ..exceptions import StorageError
from ..protocol.offsets import Offset
from .compaction import CompactRecord
from .presence import Hold, PresenceInbox, PresenceManager
from .session_http_codec import request_actor
from .sessions import SessionManager, SessionNotFound

__all__ = ["CLOSED_MARK", "HEARTBEAT_SECONDS", "SSE_SECONDS", "session_sse"]

logger = logging.getLogger(__name__)

SSE_SECONDS: Final = 60.0
"""A session SSE response ends after about this long (±10 %); clients resume."""
HEARTBEAT_SECONDS: Final = 15.0
"""An idle session SSE response sends a comment this often."""
CLOSED_MARK: Final = b',"type":"session.closed",'


def session_sse(
    sessions: SessionManager,
    claims: Claims,
    session_id: str,
    after: Offset | None,
    *,
    compact: bool = False,
    device: str | None = None,
    draining: asyncio.Event | None = None,
    presence: PresenceManager | None = None,
) -> Response:
    """Session SSE: one event per log event (``id:`` offset), control events.

    With ``compact``, the catch-up (up to the tail when the response
    starts) is the compact view, and live events follow raw. A compacted
    event that is not resumable has no ``id:`` line, so ``Last-Event-ID``
    only ever names a point a compact read may resume from.

    With presence, the stream holds ``device`` (or one it assigns) present
    while it is open, starts with an ``event: presence`` per device
    present (its own aside), then one per change.
    """
    staff, tenant = claims.is_staff, claims.tenant
    actor = request_actor(claims, device or f"sse-{secrets.token_hex(6)}")
    own = (actor.id, actor.device)

    async def stream() -> AsyncIterator[bytes]:
        listener: PresenceInbox | None = None
        hold: Hold | None = None
        if presence is not None:
            listener = PresenceInbox()
            presence.add_listener(tenant, session_id, listener, staff=staff, own=actor)
            try:
                hold = await presence.hold(tenant, session_id, actor)
                for item in await presence.snapshot(tenant, session_id, staff=staff):
                    shown = item["actor"]
                    if (shown["id"], shown.get("device")) != own:
                        listener.add(session_id, shown, item["status"])
            except StorageError:
                logger.exception("! presence failed for session %s", session_id)
        try:
            if listener is not None and listener.pending:
                yield _presence_events(listener)
            async with contextlib.aclosing(events(listener)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            if presence is not None and listener is not None:
                presence.remove_listener(tenant, session_id, listener)
                if hold is not None:
                    presence.release(hold)

    async def events(
        listener: PresenceInbox | None,
    ) -> AsyncGenerator[bytes, None]:
        position = after
        deadline = time.monotonic() + SSE_SECONDS * random.uniform(0.9, 1.1)
        while compact:
            try:
                page = await sessions.read_compact(
                    tenant, session_id, staff=staff, after=position
                )
            except SessionNotFound:
                yield _control("gone")
                return
            if page.records:
                yield b"".join(map(_sse_compacted, page.records))
            position = page.next_offset
            if any(CLOSED_MARK in r.data for r in page.records):
                yield _control("closed", position)
                return
            if page.up_to_date:
                break
        while True:
            try:
                result = await sessions.read(
                    tenant, session_id, staff=staff, after=position
                )
            except SessionNotFound:
                yield _control("gone")
                return
            if result.records:
                yield b"".join(
                    b"id: %s\ndata: %s\n\n" % (str(r.offset).encode(), r.data)
                    for r in result.records
                )
                position = result.next_offset
                if any(CLOSED_MARK in r.data for r in result.records):
                    yield _control("closed", position)
                    return
                if not result.up_to_date:
                    continue
            elif position is None:
                position = result.next_offset
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (draining is not None and draining.is_set()):
                yield _control("resume", position)
                return
            waiting = sessions.wait(
                tenant,
                session_id,
                staff=staff,
                after=result.next_offset,
                timeout=min(HEARTBEAT_SECONDS, remaining),
            )
            if listener is None:
                woke = await waiting
            else:
                woke = await listener.wait(waiting)
            if listener is not None and listener.pending:
                yield _presence_events(listener)
            elif not woke:
                yield b": heartbeat\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _presence_events(inbox: PresenceInbox) -> bytes:
    """The changes waiting in ``inbox`` as ``event: presence`` (no ``id``)."""
    return b"".join(
        b"event: presence\ndata: " + orjson.dumps(item) + b"\n\n"
        for item in inbox.take()
    )


def _control(kind: str, offset: Offset | None = None) -> bytes:
    """A control event (no ``id``): ``gone``, ``closed`` or ``resume``."""
    body: dict[str, str] = {"type": kind}
    if offset is not None:
        body["offset"] = str(offset)
    return b"event: control\ndata: " + orjson.dumps(body) + b"\n\n"


def _sse_compacted(record: CompactRecord) -> bytes:
    """A compacted SSE event: ``id:`` only where a reader may resume."""
    if record.resumable:
        return b"id: %s\ndata: %s\n\n" % (str(record.offset).encode(), record.data)
    return b"data: %s\n\n" % record.data
