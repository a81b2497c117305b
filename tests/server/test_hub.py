"""The hub: one feed per session view, events encoded once, late joiners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.utils import MS, wait_for
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.protocol.frames import EncodedEvent
from threadline.protocol.offsets import Offset
from threadline.server.hub import Hub
from threadline.server.sessions import SessionManager, full_key
from threadline.storage.memory import MemoryLogStore

AI = Actor("bot", "ai")


@dataclass(eq=False)
class Subscriber:
    """A subscriber double that records what the hub tells it."""

    events: list[EncodedEvent] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    failed: bool = False

    def deliver(self, events: list[EncodedEvent]) -> None:
        self.events.extend(events)

    def gone(self, reason: str, *args: Any) -> None:
        self.reasons.append(reason)

    def fail(self) -> None:
        self.failed = True


@pytest.fixture
async def sessions() -> AsyncIterator[SessionManager]:
    store = MemoryLogStore()
    await store.start()
    manager = SessionManager(store)
    await manager.create("default", "s1", customer="cust")
    try:
        yield manager
    finally:
        await store.stop()


async def publish(sessions: SessionManager, count: int, first: int = 0) -> Offset:
    drafts = [
        EventDraft.parse(
            {
                "type": "note",
                "id": f"n{i}",
                "data": {"text": f"note {i}"},
            }
        )
        for i in range(first, first + count)
    ]
    published = await sessions.publish("default", "s1", AI, drafts)
    return published[-1].offset


async def tail(sessions: SessionManager) -> Offset:
    snapshot = await sessions.snapshot("default", "s1", staff=True)
    return Offset.parse(snapshot["offset"])


def join(hub: Hub, subscriber: Subscriber, after: Offset, at_tail: bool) -> bool:
    return hub.join(
        subscriber, "default", "s1", staff=True, after=after, at_tail=at_tail
    )


async def test_hub_encodes_each_event_once_for_all_subscribers(
    sessions: SessionManager,
) -> None:
    """Every subscriber of a view is handed the very same encoded events."""
    hub = Hub(sessions)
    start = await tail(sessions)
    a, b = Subscriber(), Subscriber()
    assert join(hub, a, start, True) and join(hub, b, start, True)
    await publish(sessions, 3)
    await wait_for(lambda: len(a.events) == len(b.events) == 3, 1000 * MS)
    assert all(x is y for x, y in zip(a.events, b.events, strict=True))
    await hub.aclose()


async def test_hub_sends_the_stored_bytes_as_the_event_text(
    sessions: SessionManager,
) -> None:
    """An encoded event's text is the stored envelope, not a re-encoding."""
    hub = Hub(sessions)
    a = Subscriber()
    assert join(hub, a, await tail(sessions), True)
    await publish(sessions, 1)
    await wait_for(lambda: a.events, 1000 * MS)
    stored = await sessions.read("default", "s1", staff=True, after=None)
    assert a.events[0].text.encode() == stored.records[0].data
    assert a.events[0].offset == str(stored.records[0].offset)
    await hub.aclose()


async def test_hub_late_joiner_gets_the_recent_events_at_once(
    sessions: SessionManager,
) -> None:
    """A joiner behind the feed but within its recent events gets them when it
    joins, in order."""
    hub = Hub(sessions)
    start = await tail(sessions)
    early, late = Subscriber(), Subscriber()
    assert join(hub, early, start, True)
    await publish(sessions, 3)
    await wait_for(lambda: len(early.events) == 3, 1000 * MS)
    assert join(hub, late, start, False)
    assert [e.offset for e in late.events] == [e.offset for e in early.events]
    await hub.aclose()


async def test_hub_refuses_a_joiner_behind_its_recent_events(
    sessions: SessionManager,
) -> None:
    """A joiner further behind than the events the feed keeps must catch up first."""
    hub = Hub(sessions, recent_events=2)
    start = await tail(sessions)
    early, late = Subscriber(), Subscriber()
    assert join(hub, early, start, True)
    await publish(sessions, 5)
    await wait_for(lambda: len(early.events) == 5, 1000 * MS)
    assert not join(hub, late, start, False)
    assert late.events == []
    await hub.aclose()


async def test_hub_starts_no_feed_away_from_the_tail(sessions: SessionManager) -> None:
    """Without a feed, a joiner that is not at the tail is refused (feeds do not
    replay history)."""
    hub = Hub(sessions)
    assert not join(hub, Subscriber(), await tail(sessions), False)
    assert hub.feeds == 0


async def test_hub_last_leave_stops_the_feed(sessions: SessionManager) -> None:
    """When its last subscriber leaves, a feed's task ends."""
    hub = Hub(sessions)
    a = Subscriber()
    assert join(hub, a, await tail(sessions), True)
    assert hub.feeds == 1
    tasks = {t for t in asyncio.all_tasks() if t.get_name().startswith("threadline")}
    hub.leave(a, "default", "s1", staff=True)
    assert hub.feeds == 0
    await asyncio.wait(tasks, timeout=1000 * MS)
    assert all(t.done() for t in tasks)


async def test_hub_tells_subscribers_when_the_session_is_deleted(
    sessions: SessionManager,
) -> None:
    """Deleting the view's log ends every subscription with gone deleted."""
    hub = Hub(sessions)
    a = Subscriber()
    assert join(hub, a, await tail(sessions), True)
    await sessions.store.delete(full_key("default", "s1"))
    await wait_for(lambda: a.reasons, 1000 * MS)
    assert a.reasons == ["deleted"]
    assert hub.feeds == 0
