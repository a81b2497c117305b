"""The client's end of a WebSocket connection: a sans-I/O state machine.

See :mod:`~threadline.protocol.connection` for how the I/O layer drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..exceptions import ProtocolError
from ._common import State, checked, close_for, encoded
from .codes import Close, CloseCode, is_retryable
from .frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGES,
    JSONObject,
    Outbox,
    Side,
    decode_frame,
    utf8_size,
)
from .messages import (
    Cursor,
    ErrorMessage,
    Events,
    Hello,
    Presence,
    PresenceStatus,
    Publish,
    Published,
    Refresh,
    ServerMessage,
    SetPresence,
    Subscribe,
    Subscribed,
    Unsubscribe,
    View,
    parse_message,
)
from .offsets import NOW, START

__all__ = ["ClientProtocol"]


@dataclass(slots=True)
class _Subscription:
    rid: str
    offset: str  # resume point: the last offset received, or the one asked for
    view: View


class ClientProtocol:
    """The client's end of a connection, and of the connections that follow it.

    One instance outlives its connections: it remembers each subscription's
    last offset and the publishes not yet answered, so :meth:`connect` on a
    new connection sends the ``hello``, resubscribes from those offsets and
    resends those publishes (their event ids make the resend exactly-once).
    Events at or before a subscription's last offset are dropped, so the
    application sees each event once, with no gap.

    Requests made while disconnected are sent on the next :meth:`connect`;
    the latest ``cursor`` and ``presence`` per session too.

    Args:
        token: The bearer token for ``hello``.
        device: This tab's or install's stable id.
        max_frame_bytes: Largest frame, received or sent.
        max_messages: Most messages in one frame, received or sent.

    Raises:
        ValueError: ``token`` or ``device`` is malformed.
    """

    def __init__(
        self,
        token: str,
        *,
        device: str | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_messages: int = DEFAULT_MAX_MESSAGES,
    ) -> None:
        checked(Hello(token, device))
        self.token = token
        """The token the next ``hello`` sends (:meth:`refresh` replaces it)."""
        self.device = device
        """The device id sent in ``hello``."""
        self.state = State.CLOSED
        """``OPEN`` between :meth:`connect` and the end of that connection."""
        self._max_frame_bytes = max_frame_bytes
        self._max_messages = max_messages
        self._events: list[ServerMessage] = []
        self._outbox = Outbox(
            max_frame_bytes=max_frame_bytes, max_messages=max_messages
        )
        self._close: Close | None = None
        self._last_rid = 0
        self._subscriptions: dict[str, _Subscription] = {}
        self._subscription_rids: dict[str, str] = {}  # rid → session
        self._publishes: dict[str, str] = {}  # rid → its publish's JSON text
        self._unsent: dict[tuple[str, str], Cursor | SetPresence] = {}

    # Public attributes

    @property
    def subscriptions(self) -> dict[str, str]:
        """Each subscribed session's resume offset (the last offset received)."""
        return {session: sub.offset for session, sub in self._subscriptions.items()}

    @property
    def pending_publishes(self) -> tuple[str, ...]:
        """The ``rid`` of each publish not answered yet."""
        return tuple(self._publishes)

    # Connection

    def connect(self) -> None:
        """Start a new connection: hello, resubscribe, resend what is pending.

        Raises:
            RuntimeError: the current connection is still open.
        """
        if self.state is State.OPEN:
            raise RuntimeError("connect() while connected")
        self.state = State.OPEN
        self._close = None
        self._outbox.clear()
        self._outbox.add(encoded(Hello(self.token, self.device)))
        for session, sub in self._subscriptions.items():
            self._outbox.add(encoded(Subscribe(sub.rid, session, sub.offset, sub.view)))
        for text in self._publishes.values():
            self._outbox.add(text)
        for message in self._unsent.values():
            self._outbox.add(encoded(message))
        self._unsent.clear()

    def receive_text(self, text: str) -> None:
        """Handle a text frame from the server; a bad one closes 4409 or 4413.

        Messages of types this version does not know are skipped: a newer
        server may send them.
        """
        if self.state is not State.OPEN:
            return
        try:
            items = decode_frame(
                text,
                max_frame_bytes=self._max_frame_bytes,
                max_messages=self._max_messages,
            )
            messages = [
                parse_message(item, Side.SERVER) for item in items if not _unknown(item)
            ]
        except ProtocolError as exc:
            self._outbox.clear()
            self.state = State.CLOSED
            self._close = close_for(exc)
            return
        for message in messages:
            self._receive(message)

    def receive_close(self, code: int, reason: str = "") -> bool:
        """Record that the connection closed with ``code``; return whether to reconnect.

        After a terminal close the pending publishes are dropped (they
        failed); subscriptions are kept, for a :meth:`connect` that the
        application may still decide on (say, with a new token).
        """
        self.state = State.CLOSED
        self._outbox.clear()
        self._close = None
        retryable = is_retryable(code)
        if not retryable:
            self._publishes.clear()
        return retryable

    def close(self) -> None:
        """Close the connection normally (1000) after what is queued."""
        if self.state is State.OPEN:
            self.state = State.CLOSED
            self._close = Close(CloseCode.NORMAL_CLOSURE)

    def events_received(self) -> list[ServerMessage]:
        """The server's messages since the last call: answers to this client's
        requests, new events (each once), presence, gone, errors."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str | Close]:
        """Frames to send, in order, then perhaps the close to send after them."""
        out: list[str | Close] = [*self._outbox.frames()]
        if self._close is not None:
            out.append(self._close)
            self._close = None
        return out

    # Requests

    def subscribe(self, session: str, offset: str = START, view: View = "raw") -> str:
        """Subscribe to a session's events after ``offset``; return the ``rid``.

        Raises:
            ValueError: already subscribed, or a value is malformed.
        """
        if session in self._subscriptions:
            raise ValueError(f"already subscribed to {session!r}")
        message = checked(Subscribe(self._rid(), session, offset, view))
        self._subscriptions[session] = _Subscription(message.rid, offset, view)
        self._subscription_rids[message.rid] = session
        self._send(message)
        return message.rid

    def unsubscribe(self, session: str) -> None:
        """Stop a subscription (if there is one)."""
        sub = self._subscriptions.pop(session, None)
        if sub is not None:
            del self._subscription_rids[sub.rid]
            self._send(Unsubscribe(session))

    def publish(
        self,
        session: str,
        events: Sequence[JSONObject],
        *,
        expected_offset: str | None = None,
    ) -> str:
        """Publish event drafts, all or nothing; return the ``rid``.

        Raises:
            ValueError: a value is malformed, an event holds NaN, or the
                publish does not fit in one frame.
        """
        message = checked(Publish(self._rid(), session, tuple(events), expected_offset))
        text = encoded(message)
        if utf8_size(text) + 2 > self._max_frame_bytes:
            raise ValueError(
                f"publish larger than a frame ({self._max_frame_bytes} bytes)"
            )
        self._publishes[message.rid] = text
        if self.state is State.OPEN:
            self._outbox.add(text)
        return message.rid

    def send_cursor(self, session: str, offset: str) -> None:
        """Move this participant's read cursor in ``session`` to ``offset``.

        Raises:
            ValueError: a value is malformed.
        """
        self._send_latest(checked(Cursor(session, offset)))

    def send_presence(self, session: str, status: PresenceStatus) -> None:
        """Set this device's presence status in ``session``.

        Raises:
            ValueError: a value is malformed.
        """
        self._send_latest(checked(SetPresence(session, status)))

    def refresh(self, token: str) -> None:
        """Replace the token, on this connection and for later hellos.

        Raises:
            ValueError: ``token`` is malformed.
        """
        message = checked(Refresh(token))
        self.token = token
        if self.state is State.OPEN:
            self._outbox.add(encoded(message))

    # Private methods

    def _rid(self) -> str:
        self._last_rid += 1
        return str(self._last_rid)

    def _send(self, message: Subscribe | Unsubscribe) -> None:
        # While disconnected, connect() sends what the subscriptions then are.
        if self.state is State.OPEN:
            self._outbox.add(encoded(message))

    def _send_latest(self, message: Cursor | SetPresence) -> None:
        # While disconnected, the latest per session waits for connect().
        if self.state is State.OPEN:
            self._outbox.add(encoded(message))
        else:
            self._unsent[message.type, message.session] = message

    def _receive(self, message: ServerMessage) -> None:
        if isinstance(message, Events):
            self._receive_events(message)
        elif isinstance(message, Subscribed):
            sub = self._subscriptions.get(message.session)
            if sub is not None and sub.rid == message.rid:
                if sub.offset in (START, NOW) or message.offset > sub.offset:
                    sub.offset = message.offset
                self._events.append(message)
        elif isinstance(message, Published):
            if self._publishes.pop(message.rid, None) is not None:
                self._events.append(message)
        elif isinstance(message, ErrorMessage):
            if message.rid is not None:
                self._publishes.pop(message.rid, None)
                session = self._subscription_rids.pop(message.rid, None)
                if session is not None:
                    del self._subscriptions[session]
            self._events.append(message)
        elif isinstance(message, Presence):
            if message.session in self._subscriptions:
                self._events.append(message)
        else:
            sub = self._subscriptions.pop(message.session, None)
            if sub is not None:
                del self._subscription_rids[sub.rid]
                self._events.append(message)

    def _receive_events(self, message: Events) -> None:
        sub = self._subscriptions.get(message.session)
        if sub is None:
            return
        last = sub.offset
        fresh: list[JSONObject] = []
        for event in message.events:
            if last in (START, NOW) or event["offset"] > last:
                fresh.append(event)
                last = event["offset"]
        if fresh:
            sub.offset = last
            self._events.append(Events(message.session, tuple(fresh)))


_SERVER_TYPES: Final = frozenset(
    {"subscribed", "events", "published", "error", "presence", "gone"}
)


def _unknown(item: object) -> bool:
    """Whether ``item`` is a message of a type this version does not know."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("type"), str)
        and item["type"] not in _SERVER_TYPES
    )
