"""Live fan-out of session views to the subscribers of this process.

One :class:`_Feed` per (tenant, session, view) reads the view's log once,
encodes each stored event once (:class:`~threadline.protocol.frames.EncodedEvent`
splices the stored envelope bytes, which are already its canonical JSON), and
hands the same objects to every live subscriber. A subscriber pays for the
events it is sent, never for encoding them.

A feed keeps its most recent events, so a subscriber whose catch-up reached
them joins at once, without a gap or a second read: it is sent the recent
events after its position, then everything the feed reads. A subscriber
further behind catches up from the store first (paced by its connection),
and tries again.

Process-local: subscribers of another process (another gateway node) have
their own feeds, each woken by the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from ..exceptions import LogGone, OffsetGone
from ..protocol.frames import EncodedEvent
from ..protocol.offsets import Offset
from ..storage.base import Record
from .sessions import SessionManager, SessionNotFound

__all__ = ["DEFAULT_RECENT_EVENTS", "Hub", "Subscriber", "encode_records"]

logger = logging.getLogger(__name__)

DEFAULT_RECENT_EVENTS: Final = 1024
"""Events a feed keeps for subscribers that join late (bounded by bytes too)."""

_IDLE_WAIT: Final = 30.0  # seconds a feed waits before re-checking, if never woken
_REDACTION_MARK: Final = b',"type":"redaction",'
"""In a stored envelope: a redaction, which rewrote earlier stored events."""


def encode_records(records: Sequence[Record]) -> list[EncodedEvent]:
    """Stored envelopes as events ready to splice into frames (no re-encoding)."""
    return [
        EncodedEvent(str(record.offset), record.data.decode(), len(record.data))
        for record in records
    ]


class Subscriber(Protocol):
    """What a feed needs of a live subscription.

    Each method runs on the event loop and must not await: a feed calls
    every subscriber in turn.
    """

    def deliver(self, events: list[EncodedEvent]) -> None:
        """Send events, in offset order (some may have been sent already)."""

    def gone(
        self,
        reason: str,
        earliest: Offset | None = None,
        tail: Offset | None = None,
    ) -> None:
        """The session went away (``deleted``) or changed generation
        (``offset_gone``): the subscription ends."""

    def fail(self) -> None:
        """The feed failed (a storage error): end the connection, retryably."""


@dataclass(frozen=True, slots=True)
class _Key:
    tenant: str
    session: str
    staff: bool


class _Feed:
    """One view of one session, read once for all its live subscribers."""

    def __init__(
        self,
        hub: Hub,
        key: _Key,
        position: Offset,
    ) -> None:
        self.hub = hub
        self.key = key
        self.position = position
        """The offset of the last event read (what subscribers have been sent)."""
        self.recent: deque[EncodedEvent] = deque()
        self.recent_bytes = 0
        self.recent_start = position
        """Every event after this offset, up to :attr:`position`, is in ``recent``."""
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None

    def events_after(self, offset: Offset) -> list[EncodedEvent] | None:
        """The recent events after ``offset``; None if some are no longer kept."""
        if offset < self.recent_start:
            return None
        text = str(offset)
        # Walk back from the newest: a joiner is usually near the tail.
        fresh: list[EncodedEvent] = []
        for event in reversed(self.recent):
            if event.offset <= text:
                break
            fresh.append(event)
        fresh.reverse()
        return fresh

    def _forget_recent(self) -> None:
        """Drop the recent events: joiners behind :attr:`position` re-read them."""
        self.recent.clear()
        self.recent_bytes = 0
        self.recent_start = self.position

    def _remember(self, events: list[EncodedEvent]) -> None:
        hub = self.hub
        for event in events:
            self.recent.append(event)
            self.recent_bytes += event.size
        while self.recent and (
            len(self.recent) > hub.recent_events or self.recent_bytes > hub.recent_bytes
        ):
            dropped = self.recent.popleft()
            self.recent_bytes -= dropped.size
            self.recent_start = Offset.parse(dropped.offset)

    async def run(self) -> None:
        key, sessions = self.key, self.hub.sessions
        try:
            while self.subscribers:
                result = await sessions.read(
                    key.tenant,
                    key.session,
                    staff=key.staff,
                    after=self.position,
                    max_bytes=self.hub.read_bytes,
                )
                if result.records:
                    events = encode_records(result.records)
                    if any(_REDACTION_MARK in r.data for r in result.records):
                        self._forget_recent()  # they may hold what it blanked
                    self.position = result.next_offset
                    self._remember(events)
                    for subscriber in list(self.subscribers):
                        subscriber.deliver(events)
                    if not result.up_to_date:
                        await asyncio.sleep(0)  # let the writers run between chunks
                        continue
                # Up to date: wait (it returns at once if more came meanwhile),
                # rather than read again only to find nothing.
                await sessions.wait(
                    key.tenant,
                    key.session,
                    staff=key.staff,
                    after=self.position,
                    timeout=_IDLE_WAIT,
                )
        except (SessionNotFound, LogGone):
            for subscriber in self._end():
                subscriber.gone("deleted")
        except OffsetGone as exc:
            for subscriber in self._end():
                subscriber.gone("offset_gone", exc.earliest, exc.tail)
        except Exception:
            logger.exception("! feed of session %s failed", key.session)
            for subscriber in self._end():
                subscriber.fail()
        finally:
            self.hub._forget(self)

    def _end(self) -> set[Subscriber]:
        """Stop the feed; the subscribers it had, to be told."""
        subscribers, self.subscribers = self.subscribers, set()
        self.hub._forget(self)
        return subscribers


class Hub:
    """The feeds of this process, one per (tenant, session, view) with subscribers.

    Args:
        sessions: Where feeds read.
        read_bytes: Most bytes a feed reads at once (at least one event).
        recent_events: Events each feed keeps for late joiners.
        recent_bytes: Bytes each feed keeps for late joiners (default
            ``read_bytes``: a joiner is sent no more at once than a read).
    """

    def __init__(
        self,
        sessions: SessionManager,
        *,
        read_bytes: int = 256 * 1024,
        recent_events: int = DEFAULT_RECENT_EVENTS,
        recent_bytes: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.read_bytes = read_bytes
        self.recent_events = recent_events
        self.recent_bytes = read_bytes if recent_bytes is None else recent_bytes
        self._feeds: dict[_Key, _Feed] = {}

    @property
    def feeds(self) -> int:
        """Feeds running (views with at least one live subscriber)."""
        return len(self._feeds)

    def join(
        self,
        subscriber: Subscriber,
        tenant: str,
        session: str,
        *,
        staff: bool,
        after: Offset,
        at_tail: bool,
    ) -> bool:
        """Make ``subscriber`` live from ``after``, if the feed can take it now.

        The subscriber is first sent the feed's recent events after ``after``
        (synchronously, at most ``recent_bytes``), then every event the feed
        reads: no gap. Events at or before ``after`` may be delivered again;
        the subscriber drops them. Without a feed, one starts at ``after``,
        which must then be the tail as a read just found it (``at_tail``): a
        feed does not pace, so it never replays history.

        Returns:
            False if the subscriber is further behind than the feed's recent
            events (or than the tail, when no feed runs): catch up from the
            store, then join again.
        """
        key = _Key(tenant, session, staff)
        feed = self._feeds.get(key)
        if feed is None:
            if not at_tail:
                return False
            feed = self._feeds[key] = _Feed(self, key, after)
            feed.subscribers.add(subscriber)
            feed.task = asyncio.get_running_loop().create_task(
                feed.run(), name=f"threadline-feed-{session}"
            )
            return True
        missed = feed.events_after(after)
        if missed is None:
            return False
        if missed:
            subscriber.deliver(missed)
        feed.subscribers.add(subscriber)
        return True

    def leave(
        self, subscriber: Subscriber, tenant: str, session: str, *, staff: bool
    ) -> None:
        """Stop sending to ``subscriber``; the last one out stops the feed."""
        feed = self._feeds.get(_Key(tenant, session, staff))
        if feed is None or subscriber not in feed.subscribers:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            self._forget(feed)
            if feed.task is not None:
                feed.task.cancel()

    async def aclose(self) -> None:
        """Stop every feed and wait for them (the subscribers are not told)."""
        feeds = list(self._feeds.values())
        self._feeds.clear()
        tasks = [feed.task for feed in feeds if feed.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, feed: _Feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]
