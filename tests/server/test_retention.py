"""Retention never trims an unexported audit chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from threadline.exceptions import OffsetGone
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.protocol.offsets import Offset
from threadline.server.audit import AuditSigner, export_lines
from threadline.server.retention import trim
from threadline.server.sessions import SessionManager, SessionNotFound
from threadline.storage.base import LogStore

Opener = Callable[[], Awaitable[LogStore]]
TENANT = "acme"
SERVICE = Actor("svc", "service")
T0 = 1_780_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def say(event_id: str) -> EventDraft:
    parts = [{"type": "text", "text": "hello"}]
    data = {"message_id": f"m-{event_id}", "role": "user", "parts": parts}
    return EventDraft("message", event_id, data)


async def export(
    sessions: SessionManager, session_id: str, after: Offset | None = None
) -> int:
    lines = await export_lines(
        sessions, AuditSigner.ephemeral(), TENANT, session_id, "staff", after
    )
    return sum([chunk.count(b"\n") async for chunk in lines])


async def closed_session(sessions: SessionManager, session_id: str) -> Offset:
    await sessions.create(TENANT, session_id, customer=None)
    [first] = await sessions.publish(TENANT, session_id, SERVICE, [say("a")])
    await sessions.publish(TENANT, session_id, SERVICE, [say("b")])
    await sessions.publish(
        TENANT, session_id, SERVICE, [EventDraft("session.closed", "c", {})]
    )
    return first.offset


async def test_closed_sessions_are_trimmed_only_once_exported(opener: Opener) -> None:
    """Past the retention an unexported session stays; a full staff export
    (recorded durably) lets it go: both logs and the index, id reusable."""
    clock = Clock()
    sessions = SessionManager(await opener(), clock=clock)
    first = await closed_session(sessions, "old")
    await sessions.create(TENANT, "open", customer=None)
    clock.now += 31 * DAY
    assert await trim(sessions, 30 * DAY, clock.now) == 0
    await sessions.info(TENANT, "old")  # kept: its audit was never exported
    assert await export(sessions, "old") == 4  # anchor + 3 events
    sessions = SessionManager(await opener(), clock=clock)  # the mark is stored
    assert await trim(sessions, 30 * DAY, clock.now) == 1
    with pytest.raises(SessionNotFound):
        await sessions.info(TENANT, "old")
    assert await sessions.store.index.scan(TENANT, "ids", "old\n") == []
    assert await sessions.store.index.scan(TENANT, "messages", "old\n") == []
    await sessions.info(TENANT, "open")  # never closed, never trimmed
    await sessions.create(TENANT, "old", customer=None)
    with pytest.raises(OffsetGone):
        await sessions.read(TENANT, "old", staff=True, after=first)


async def test_a_young_or_partly_exported_session_stays(opener: Opener) -> None:
    """Inside the retention nothing goes; an export that skips the start of the
    chain does not count."""
    clock = Clock()
    sessions = SessionManager(await opener(), clock=clock)
    first = await closed_session(sessions, "s1")
    assert await export(sessions, "s1", after=first) == 3  # misses event 1
    clock.now += 29 * DAY
    assert await trim(sessions, 30 * DAY, clock.now) == 0
    clock.now += 2 * DAY
    assert await trim(sessions, 30 * DAY, clock.now) == 0
    await export(sessions, "s1")
    assert await trim(sessions, 30 * DAY, clock.now) == 1
