"""The server's end of one WebSocket connection: a sans-I/O state machine.

See :mod:`~threadline.protocol.connection` for how the I/O layer drives it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..exceptions import ProtocolError
from ._checks import RID
from ._common import State, checked, close_for, encoded
from .codes import Close, CloseCode, ErrorCode
from .frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGES,
    EncodedEvent,
    JSONObject,
    Outbox,
    Side,
    decode_frame,
)
from .messages import (
    ClientMessage,
    ErrorMessage,
    Gone,
    GoneReason,
    Hello,
    Presence,
    Publish,
    Published,
    ServerMessage,
    Subscribe,
    Subscribed,
    Unsubscribe,
    parse_message,
)

__all__ = [
    "DEFAULT_HELLO_TIMEOUT",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_MESSAGES",
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "DEFAULT_TOKEN_GRACE",
    "ServerProtocol",
]

DEFAULT_HELLO_TIMEOUT: Final = 5.0
"""Seconds a new connection has to send its ``hello``."""

DEFAULT_TOKEN_GRACE: Final = 30.0
"""Seconds past a token's expiry before the connection closes 4001 (the same
30 s as the leeway of token verification)."""

DEFAULT_MAX_SUBSCRIPTIONS: Final = 100
"""Subscriptions one connection may hold, pending ones included."""

DEFAULT_MAX_QUEUE_BYTES: Final = 1024 * 1024
"""Bytes that may wait to be sent on one connection before it closes 4000."""

DEFAULT_MAX_QUEUE_MESSAGES: Final = 10_000
"""Messages (each event counts as one) that may wait to be sent on one
connection before it closes 4000."""


@dataclass(slots=True)
class _Request:
    kind: Literal["subscribe", "publish"]
    session: str


class ServerProtocol:
    """The server's end of one connection.

    It enforces the handshake (a ``hello`` first, within ``hello_timeout``),
    token expiry (closes 4001 at expiry plus ``token_grace`` unless
    :meth:`accept` is called again after a ``refresh``), the subscription
    limit, the answer to every request, and the send queue bound. The
    application verifies tokens, reads and writes sessions, and answers
    through the ``send_*`` methods.

    Handle ``events_received()`` in order: a ``hello`` (and a ``refresh``) is
    verified, then :meth:`accept` or :meth:`close`, before the next event.

    Messages that break the protocol are answered by the protocol itself:
    ``error`` with the message's ``rid`` for a bad message (the rest of the
    frame still counts), close 4409 or 4413 for a bad frame, close 4401 when
    the first message is not a ``hello``. Such messages never reach
    ``events_received()``.

    Every ``subscribe`` and ``publish`` passed on must be answered exactly
    once: ``send_subscribed()`` or ``send_published()``, or ``send_error()``
    with its ``rid``. Catch-up (history) must be paced by the caller: send it
    while :attr:`queued_bytes` is low; live events may fill the queue, and
    that closes 4000.

    Args:
        now: The time the connection opened.
        hello_timeout: Seconds to wait for the ``hello``.
        token_grace: Seconds past the token's expiry before closing 4001.
        max_subscriptions: Subscriptions this connection may hold.
        max_frame_bytes: Largest frame, received or sent (sent frames are
            packed up to it; one larger message travels alone).
        max_messages: Most messages in one frame, received or sent.
        max_queue_bytes: Bytes that may wait to be sent.
        max_queue_messages: Messages that may wait to be sent.
    """

    def __init__(
        self,
        *,
        now: float,
        hello_timeout: float = DEFAULT_HELLO_TIMEOUT,
        token_grace: float = DEFAULT_TOKEN_GRACE,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_queue_messages: int = DEFAULT_MAX_QUEUE_MESSAGES,
    ) -> None:
        self.state = State.CONNECTING
        """Where the connection is."""
        self.closing: Close | None = None
        """The close this connection ends with, once decided (``data_to_send()``
        returns it once, after the frames queued before it)."""
        self.hello_deadline = now + hello_timeout
        """When the connection closes 4408 if no ``hello`` has come."""
        self.token_deadline: float | None = None
        """When the connection closes 4001: the token's expiry plus grace."""
        self._token_grace = token_grace
        self._max_subscriptions = max_subscriptions
        self._max_frame_bytes = max_frame_bytes
        self._max_messages = max_messages
        self._max_queue_bytes = max_queue_bytes
        self._max_queue_messages = max_queue_messages
        self._events: list[ClientMessage] = []
        self._outbox = Outbox(
            max_frame_bytes=max_frame_bytes, max_messages=max_messages
        )
        self._close_pending = False
        self._requests: dict[str, _Request] = {}  # rid → subscribe or publish
        self._pending: dict[str, str] = {}  # session → rid of its subscribe
        self._subscriptions: dict[str, str] = {}  # session → last offset sent

    # Public attributes

    @property
    def subscriptions(self) -> frozenset[str]:
        """Sessions whose events this connection receives."""
        return frozenset(self._subscriptions)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for ``data_to_send()``."""
        return self._outbox.bytes

    @property
    def queued_messages(self) -> int:
        """Messages waiting for ``data_to_send()``; each event counts as one."""
        return self._outbox.messages

    @property
    def has_output(self) -> bool:
        """Whether ``data_to_send()`` has anything (frames or the close)."""
        return bool(self._outbox.messages) or (
            self._close_pending and self.closing is not None
        )

    # Receiving

    def receive_text(self, text: str, *, now: float) -> None:
        """Handle a text frame from the client, received at ``now``."""
        self.check_timeouts(now)
        if self.state is State.CLOSED:
            return
        try:
            items = decode_frame(
                text,
                max_frame_bytes=self._max_frame_bytes,
                max_messages=self._max_messages,
            )
        except ProtocolError as exc:
            self._fail(close_for(exc))
            return
        for item in items:
            if self.state is State.CONNECTING:
                self._receive_hello(item)
            elif self.state is State.OPEN:
                self._receive(item)
            else:
                break  # a message closed the connection: ignore the rest

    def receive_binary(self, data: bytes, *, now: float) -> None:
        """Handle a binary frame from the client: ``threadline.v1`` has none."""
        self.check_timeouts(now)
        if self.state is not State.CLOSED:
            self._close(
                CloseCode.PROTOCOL_ERROR, "binary frames are not part of the protocol"
            )

    def check_timeouts(self, now: float) -> None:
        """Close if the hello or the token's deadline has passed at ``now``."""
        if self.state is State.CONNECTING and now >= self.hello_deadline:
            self._close(CloseCode.HELLO_TIMEOUT, "no hello in time")
        elif (
            self.state is State.OPEN
            and self.token_deadline is not None
            and now >= self.token_deadline
        ):
            self._close(CloseCode.TOKEN_EXPIRED, "token expired")

    def next_deadline(self) -> float | None:
        """When :meth:`check_timeouts` should run next, if ever."""
        if self.state is State.CONNECTING:
            return self.hello_deadline
        if self.state is State.OPEN:
            return self.token_deadline
        return None

    def events_received(self) -> list[ClientMessage]:
        """The client's messages received since the last call, for the application."""
        events, self._events = self._events, []
        return events

    # Decisions

    def accept(self, *, expires_at: float | None) -> None:
        """Record that the latest token (``hello`` or ``refresh``) is valid.

        Args:
            expires_at: The token's expiry (``exp``); ``None`` if it has none.

        Raises:
            RuntimeError: no ``hello`` was received yet.
        """
        if self.state is State.CONNECTING:
            raise RuntimeError("accept() before a hello was received")
        if self.state is State.OPEN:
            self.token_deadline = (
                None if expires_at is None else expires_at + self._token_grace
            )

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection after the frames already queued.

        Args:
            code: A :class:`CloseCode` or an application code (4900–4999).
            reason: A short reason; cut to the 123 bytes a close allows.

        Raises:
            ValueError: ``code`` cannot be sent.
        """
        if self.state is not State.CLOSED:
            self._close(code, reason)

    # Sending (each does nothing once the connection is closed)

    def send_subscribed(
        self, rid: str, session: str, offset: str, state: JSONObject
    ) -> None:
        """Answer a ``subscribe``: events after ``offset`` follow.

        Raises:
            ValueError: no subscribe to ``session`` is pending with ``rid``,
                or a value is malformed (``offset`` must not be ``-1``/``now``).
        """
        if self.state is State.CLOSED:
            return
        request = self._requests.get(rid)
        if request is None or request.kind != "subscribe" or request.session != session:
            raise ValueError(f"no subscribe to {session!r} is pending with rid {rid!r}")
        message = checked(Subscribed(rid, session, offset, state))
        del self._requests[rid]
        if self._pending.get(session) == rid:  # not unsubscribed meanwhile
            del self._pending[session]
            self._subscriptions[session] = offset
        self._queue(message, session)

    def send_events(
        self, session: str, events: Iterable[Mapping[str, Any] | EncodedEvent]
    ) -> None:
        """Send events of a subscribed session, in offset order.

        Events of a session not subscribed (or not yet: call
        :meth:`send_subscribed` first) are dropped, and so are events whose
        offset is not greater than the last one sent: a catch-up that
        overlaps live events sends each once.

        Raises:
            ValueError: an event object has no string ``offset``.
        """
        last = self._subscriptions.get(session)
        if self.state is State.CLOSED or last is None:
            return
        fresh: list[EncodedEvent] = []
        for event in events:
            encoded = (
                event if isinstance(event, EncodedEvent) else EncodedEvent.encode(event)
            )
            if encoded.offset > last:
                fresh.append(encoded)
                last = encoded.offset
        if fresh:
            self._subscriptions[session] = last
            before = self._outbox.messages
            self._outbox.add_events(session, fresh)
            self._check_queue(before)

    def send_published(self, rid: str, offsets: Sequence[str]) -> None:
        """Answer a ``publish`` with its events' offsets.

        Raises:
            ValueError: no publish is pending with ``rid``, or an offset is
                malformed.
        """
        if self.state is State.CLOSED:
            return
        request = self._requests.get(rid)
        if request is None or request.kind != "publish":
            raise ValueError(f"no publish is pending with rid {rid!r}")
        message = checked(Published(rid, tuple(offsets)))
        del self._requests[rid]
        self._queue(message)

    def send_error(
        self,
        code: str,
        message: str,
        *,
        rid: str | None = None,
        details: JSONObject | None = None,
    ) -> None:
        """Answer a request with an error (``rid``), or report one without.

        A failed ``subscribe`` leaves the session unsubscribed.

        Raises:
            ValueError: ``code`` or ``rid`` is malformed.
        """
        if self.state is State.CLOSED:
            return
        error = checked(ErrorMessage(code, message, rid, details))
        request = self._requests.pop(rid, None) if rid is not None else None
        if request is not None and self._pending.get(request.session) == rid:
            del self._pending[request.session]
        self._queue(error)

    def send_presence(self, session: str, actor: JSONObject, status: str) -> None:
        """Send a presence change in a subscribed session (else drop it).

        Raises:
            ValueError: ``actor`` or ``status`` is malformed.
        """
        if self.state is State.CLOSED or session not in self._subscriptions:
            return
        self._queue(checked(Presence(session, actor, status)), session)

    def send_gone(
        self,
        session: str,
        reason: GoneReason,
        *,
        earliest: str | None = None,
        tail: str | None = None,
    ) -> None:
        """End a subscription from the server's side (if it exists).

        Raises:
            ValueError: a value is malformed.
        """
        if self.state is State.CLOSED or session not in self._subscriptions:
            return
        message = checked(Gone(session, reason, earliest, tail))
        del self._subscriptions[session]
        self._queue(message, session)

    def data_to_send(self) -> list[str | Close]:
        """Frames to send, in order, then perhaps the close to send after them."""
        out: list[str | Close] = [*self._outbox.frames()]
        if self._close_pending and self.closing is not None:
            out.append(self.closing)
            self._close_pending = False
        return out

    # Private methods

    def _receive_hello(self, item: object) -> None:
        if not isinstance(item, dict) or item.get("type") != "hello":
            self._close(CloseCode.UNAUTHORIZED, "the first message must be a hello")
            return
        token = item.get("token")
        if not isinstance(token, str) or not token:
            self._close(CloseCode.UNAUTHORIZED, "hello: missing token")
            return
        try:
            hello = Hello.parse(item)
        except ProtocolError as exc:
            self._close(CloseCode.PROTOCOL_ERROR, str(exc))
            return
        self.state = State.OPEN
        self._events.append(hello)

    def _receive(self, item: object) -> None:
        try:
            message = parse_message(item, Side.CLIENT)
        except ProtocolError as exc:
            rid = _rid_of(item)
            self._reply_error(
                exc.code, str(exc), None if rid in self._requests else rid
            )
            return
        if isinstance(message, Hello):
            self._close(CloseCode.PROTOCOL_ERROR, "hello sent twice")
        elif isinstance(message, Subscribe):
            self._receive_subscribe(message)
        elif isinstance(message, Publish):
            if message.rid in self._requests:
                self._reply_duplicate(message.rid)
            else:
                self._requests[message.rid] = _Request("publish", message.session)
                self._events.append(message)
        elif isinstance(message, Unsubscribe):
            if self._subscriptions.pop(message.session, None) is not None:
                self._events.append(message)
            elif self._pending.pop(message.session, None) is not None:
                self._events.append(message)  # its subscribe is still answered
        else:
            self._events.append(message)

    def _receive_subscribe(self, message: Subscribe) -> None:
        session = message.session
        if message.rid in self._requests:
            self._reply_duplicate(message.rid)
        elif session in self._subscriptions or session in self._pending:
            self._reply_error(
                ErrorCode.ALREADY_SUBSCRIBED,
                f"already subscribed to {session}",
                message.rid,
            )
        elif len(self._subscriptions) + len(self._pending) >= self._max_subscriptions:
            self._reply_error(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"subscription limit reached ({self._max_subscriptions})",
                message.rid,
            )
        else:
            self._requests[message.rid] = _Request("subscribe", session)
            self._pending[session] = message.rid
            self._events.append(message)

    def _reply_error(self, code: str, text: str, rid: str | None) -> None:
        self._queue(ErrorMessage(code, text, rid))

    def _reply_duplicate(self, rid: str) -> None:
        # Without a rid: the request in flight keeps its own answer.
        self._reply_error(ErrorCode.DUPLICATE_RID, f"rid {rid} is in flight", None)

    def _queue(self, message: ServerMessage, session: str | None = None) -> None:
        before = self._outbox.messages
        self._outbox.add(encoded(message), session=session)
        self._check_queue(before)

    def _check_queue(self, before: int) -> None:
        # One message always fits in an empty queue, or a large one would
        # close every connection that tries to send it.
        if before and (
            self._outbox.bytes > self._max_queue_bytes
            or self._outbox.messages > self._max_queue_messages
        ):
            self._outbox.clear()
            self._close(
                CloseCode.SLOW_CONSUMER, "slow consumer: resume from your offsets"
            )

    def _close(self, code: int, reason: str) -> None:
        self._fail(Close.truncated(code, reason))

    def _fail(self, close: Close) -> None:
        self.state = State.CLOSED
        self.closing = close
        self._close_pending = True


def _rid_of(item: object) -> str | None:
    if isinstance(item, dict):
        rid = item.get("rid")
        if isinstance(rid, str) and RID.fullmatch(rid):
            return rid
    return None
