"""A subscription: a session's events as an async iterator, resumed by itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal

from ..exceptions import ConcurrencyError, InvalidState
from ..protocol.client_messages import View
from ..protocol.events import Event
from ..protocol.frames import JSONObject

if TYPE_CHECKING:
    from .transports import Transport

__all__ = ["DEFAULT_MAX_QUEUE", "PresenceCallback", "Subscription", "View"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE: Final = 1000
"""Events a subscription holds for a consumer that has not read them yet."""

PresenceCallback = Callable[["Subscription"], object]
"""Called with the subscription after its :attr:`Subscription.presence` changed."""


class Subscription:
    """A session's events after an offset, then live ones, with no gap or duplicate.

    Iterate it (``async for event in subscription``) to get
    :class:`~threadline.protocol.events.Event` objects in offset order. It
    starts on first use (``async with`` or the first ``__anext__``), then
    reconnects and resumes by itself: an event is never delivered twice or
    skipped, across any number of reconnects.

    Iteration ends (``StopAsyncIteration``) after the session's
    ``session.closed`` event (nothing can follow it), when the subscription
    or its client is closed. It raises if the subscription fails for good:
    :class:`~threadline.exceptions.SessionNotFound`,
    :class:`~threadline.exceptions.Forbidden`,
    :class:`~threadline.exceptions.OffsetGone` (the offset was trimmed or is
    of another generation: subscribe again from ``-1``),
    :class:`~threadline.exceptions.AuthError` or
    :class:`~threadline.exceptions.ConnectionClosedError`. Events received
    before a failure are yielded first.

    **A slow consumer.** At most ``max_queue`` events wait in the
    subscription (plus at most 4 WebSocket frames read ahead). When it is
    full the client stops reading from the server (on the WebSocket, for
    every subscription of the client: give a slow consumer a client of its
    own). The server's send queue is bounded too: it paces the connection,
    or closes it 4000 (slow consumer) and drops what it queued; the client
    then reconnects and resumes from the last offset it received, and the
    server replays what was dropped. Nothing is buffered without bound on
    either side, and nothing is lost.

    Use ``async with`` so that the server stops sending when you are done:
    breaking out of a bare ``async for`` leaves the subscription open until
    :meth:`aclose` or the client's close.
    """

    def __init__(
        self,
        transport: Transport,
        session: str,
        *,
        offset: str,
        view: View,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.session = session
        """The session read."""
        self.view: View = view
        """``raw`` or ``compact``."""
        self.offset = offset
        """The offset of the last event yielded (or the start asked for): store
        it to resume in a later process."""
        self.state: JSONObject | None = None
        """The session's state snapshot when the subscription (re)started, as
        this reader may see it (WebSocket only; ``None`` over SSE)."""
        self.presence: dict[tuple[str, str], JSONObject] | None = None
        """The session's present devices, as this reader may see them:
        ``(participant id, device)`` → ``{actor, status}``. Seeded by each
        (re)subscribe's state snapshot and kept current by the server's
        ``presence`` messages (a device that goes ``offline`` is removed).
        WebSocket only; ``None`` until known, and while the server does not
        serve presence."""
        self._presence_callbacks: list[PresenceCallback] = []
        self._transport = transport
        self._max_queue = max_queue
        self._events: deque[Event] = deque()
        self._resume = offset  # the last offset queued
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._state: Literal["new", "starting", "open", "ending", "done"] = "new"
        self._error: BaseException | None = None
        self._reading = False

    # Async context manager and iterator

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        """The next event, waiting for it.

        Cancelling is safe: no event is lost, the next call returns it.

        Raises:
            StopAsyncIteration: the session closed, or the subscription or
                its client was closed.
            ConcurrencyError: another coroutine is iterating.
            ThreadlineError: the subscription failed for good (see the class
                docstring).
        """
        if self._reading:
            raise ConcurrencyError("another coroutine is iterating this subscription")
        self._reading = True
        try:
            if self._state == "new":
                await self.start()
            while not self._events:
                if self._state == "ending":
                    await self.aclose()
                if self._state == "done":
                    if self._error is not None:
                        raise self._error
                    raise StopAsyncIteration
                self._readable.clear()
                await self._readable.wait()
            event = self._events.popleft()
            self._writable.set()
            self.offset = str(event.offset)
            if event.type == "session.closed":
                self._state = "ending"  # nothing can follow
            return event
        finally:
            self._reading = False

    # Public methods

    async def start(self) -> None:
        """Subscribe on the server; return once it accepted.

        Called by ``async with`` and the first ``__anext__``; a second call
        does nothing.

        Raises:
            ThreadlineError: the server refused (``SessionNotFound``,
                ``Forbidden``, ``AuthError``…).
            Timeout: no answer within the client's timeout.
            InvalidState: the subscription or client is closed, or the client
                already subscribes to this session.
        """
        if self._state != "new":
            if self._state == "done" and self._error is None and not self._events:
                raise InvalidState("the subscription is closed")
            return
        self._state = "starting"
        try:
            await self._transport.subscribe(self)
        except BaseException:
            self._state = "done"
            raise
        if self._state == "starting":
            self._state = "open"

    def add_presence_callback(self, callback: PresenceCallback) -> None:
        """Call ``callback(subscription)`` after each change of :attr:`presence`.

        It runs in the client's reading task: it must not block (schedule
        work instead). An exception it raises is logged and ignored.
        """
        self._presence_callbacks.append(callback)

    def remove_presence_callback(self, callback: PresenceCallback) -> None:
        """Stop calling ``callback`` (nothing if it was not added)."""
        if callback in self._presence_callbacks:
            self._presence_callbacks.remove(callback)

    async def aclose(self) -> None:
        """Unsubscribe. Events already queued are dropped; iteration ends.

        Safe to call twice, and concurrently with iteration.
        """
        if self._state in ("starting", "open", "ending"):
            self._state = "done"
            await self._transport.unsubscribe(self)
        self._state = "done"
        self._events.clear()
        self._readable.set()
        self._writable.set()

    # The transport's side (transports.Sink)

    def resume_offset(self) -> str:
        """Where the transport resumes: after the last event it queued."""
        return self._resume

    async def deliver(self, events: Sequence[Event]) -> None:
        """Queue events; wait while the queue is full (or return once closed)."""
        for event in events:
            while len(self._events) >= self._max_queue and self._state != "done":
                self._writable.clear()
                await self._writable.wait()
            if self._state == "done":
                return
            self._events.append(event)
            self._resume = str(event.offset)
            self._readable.set()

    def set_state(self, state: JSONObject) -> None:
        """Record the snapshot that came with ``subscribed``."""
        self.state = state
        entries = state.get("presence")
        if not isinstance(entries, list):
            self.presence = None  # a server without presence
            return
        self.presence = {}
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("actor"), dict):
                self.presence[_presence_key(entry["actor"])] = entry
        self._presence_changed()

    def set_presence(self, actor: JSONObject, status: str) -> None:
        """Record a ``presence`` message: a device changed status."""
        presence = self.presence if self.presence is not None else {}
        self.presence = presence
        key = _presence_key(actor)
        if status == "offline":
            presence.pop(key, None)
        else:
            presence[key] = {"actor": actor, "status": status}
        self._presence_changed()

    def _presence_changed(self) -> None:
        for callback in list(self._presence_callbacks):
            try:
                callback(self)
            except Exception:
                logger.exception("! presence callback failed")

    def finish(self, error: BaseException | None) -> None:
        """End after the queued events: cleanly, or raising ``error``."""
        if self._state != "done":
            self._state = "done"
            self._error = error
        self._readable.set()
        self._writable.set()


def _presence_key(actor: JSONObject) -> tuple[str, str]:
    return str(actor.get("id", "")), str(actor.get("device") or "")
