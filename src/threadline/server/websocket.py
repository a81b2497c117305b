"""The WebSocket transport ``/v1/ws`` (subprotocol ``threadline.v1``), raw ASGI.

A thin asyncio layer over the sans-I/O
:class:`~threadline.protocol.server_protocol.ServerProtocol`, the
:class:`~threadline.server.sessions.SessionManager` and the process's
:class:`~threadline.server.hub.Hub`. Per connection:

* a **reader** feeds frames to the protocol and acts on its events in order
  (``hello`` and ``refresh`` are verified before the next message is looked
  at; publishes start in the order received, so a pipelined stream of deltas
  commits in order);
* a **writer** sends what ``data_to_send()`` returns whenever something was
  queued: all that waits goes out packed into as few frames as the limits
  allow, so a busy connection gets many events per frame;
* a task per subscription while it answers and **catches up**
  (:class:`~threadline.server.subscription.Subscription`: history in chunks,
  each only when the send queue is low, then a gapless join of the session's
  live feed). Live subscriptions cost no task: the feed pushes events
  (encoded once for all) into each protocol, and a consumer that cannot keep
  up fills its bounded send queue and is closed 4000, to resume by replay.

With a :class:`~threadline.server.presence.PresenceManager`, each answered
subscription holds the connection's device present in its session (whose
``presence`` changes it forwards), and ``presence`` messages set the device's
status. The socket's liveness is the transport's: ``threadline serve`` has
uvicorn ping every 5 s and drop a peer silent for 5 s more.

The connection ends on the client's close or disconnect, or after the close
the protocol decided (4000 slow consumer, 4001 token expired, 4002 draining,
44xx) has been sent; if the client does not read even that within
``close_timeout``, the connection is dropped. Every task it started is
cancelled and awaited before the ASGI call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from ..auth import AuthError, Claims
from ..exceptions import (
    InvalidEvent,
    OffsetGone,
    ProtocolError,
    SessionRuleError,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.actors import Actor
from ..protocol.codes import Close, CloseCode
from ..protocol.connection import (
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_MESSAGES,
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_TOKEN_GRACE,
    ServerProtocol,
    State,
)
from ..protocol.events import EventDraft
from ..protocol.frames import SUBPROTOCOL, JSONObject
from ..protocol.messages import (
    Cursor,
    Hello,
    Publish,
    Refresh,
    SetPresence,
    Subscribe,
    Unsubscribe,
)
from ..protocol.offsets import Offset
from .access import actor_of, reach_session
from .http import Receive, Scope, Send
from .hub import Hub
from .presence import PresenceManager
from .session_http import MAX_BATCH_EVENTS
from .sessions import Published, SessionInfo, SessionManager
from .stream_codec import status_of
from .subscription import Subscription

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_PUBLISHES",
    "WebSocketHandler",
    "WebSocketLimits",
    "WebSocketStats",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PUBLISHES: Final = 64
"""Publishes one connection may have in flight; past it the server stops
reading the connection until one is answered (backpressure, no error)."""

DEFAULT_CLOSE_TIMEOUT: Final = 10.0
"""Seconds a decided close may wait for the client to read what precedes it."""

_INTERNAL_ERROR: Final = 1011
_MAX_REACHED: Final = 1024  # sessions whose reach check a connection caches
_ids = itertools.count(1)

Verify = Callable[[str], Awaitable[Claims]]


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """The per-connection limits, each with its documented default."""

    hello_timeout: float = DEFAULT_HELLO_TIMEOUT
    token_grace: float = DEFAULT_TOKEN_GRACE
    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    max_queue_messages: int = DEFAULT_MAX_QUEUE_MESSAGES
    max_publishes: int = DEFAULT_MAX_PUBLISHES
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT


@dataclass(slots=True)
class WebSocketStats:
    """Counters of this process's WebSocket connections (for tests and metrics)."""

    open: int = 0
    """Connections open now."""
    opened: int = 0
    """Connections accepted since start."""
    frames_sent: int = 0
    """Text frames sent."""
    peak_queued_bytes: int = 0
    """The most bytes any connection's send queue held."""
    closes: dict[int, int] = field(default_factory=dict)
    """Closes the server decided, by code (a client that no longer reads may
    never receive its close)."""


class WebSocketHandler:
    """The ASGI handler of ``/v1/ws`` and the registry of its connections.

    Args:
        sessions: The session layer.
        verify: Verifies a bearer token into claims (raises ``AuthError``).
        draining: Set when the server drains: new connections close 4002.
        limits: Per-connection limits.
        presence: Presence and membership; without it ``presence`` messages
            are answered ``error not_supported``.
    """

    def __init__(
        self,
        sessions: SessionManager,
        verify: Verify,
        draining: asyncio.Event,
        limits: WebSocketLimits | None = None,
        presence: PresenceManager | None = None,
    ) -> None:
        self.sessions = sessions
        self.presence = presence
        self.verify = verify
        self.draining = draining
        self.limits = limits or WebSocketLimits()
        self.hub = Hub(sessions, read_bytes=max(1, self.limits.max_queue_bytes // 4))
        self.stats = WebSocketStats()
        self.connections: set[WebSocketConnection] = set()
        self._idle = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if SUBPROTOCOL not in scope.get("subprotocols", ()):
            # Refused before the handshake: the client gets an HTTP 403.
            await send({"type": "websocket.close", "code": 1002})
            return
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        connection = WebSocketConnection(self, receive, send)
        self.connections.add(connection)
        self.stats.open += 1
        self.stats.opened += 1
        try:
            if self.draining.is_set():
                connection.close(CloseCode.SERVER_RESTARTING, "server restarting")
            await connection.run()
        finally:
            self.connections.discard(connection)
            self.stats.open -= 1
            if not self.connections:
                self._idle.set()

    def drain(self) -> None:
        """Close every connection 4002 after what is already queued for it."""
        for connection in list(self.connections):
            connection.close(CloseCode.SERVER_RESTARTING, "server restarting")

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until no connection is open; False if ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections:
            self._idle.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._idle.wait()
            except TimeoutError:
                return not self.connections
        return True


class WebSocketConnection:
    """One accepted WebSocket: the protocol, its tasks and its subscriptions.

    Created and run by :class:`WebSocketHandler`. Its public methods are for
    its subscriptions and the handler; all run on the event loop.
    """

    def __init__(self, handler: WebSocketHandler, receive: Receive, send: Send) -> None:
        limits = handler.limits
        self.handler = handler
        self.sessions = handler.sessions
        self.hub = handler.hub
        self.presence = handler.presence
        self.limits = limits
        self.receive = receive
        self.send = send
        self.id = next(_ids)
        self.proto = ServerProtocol(
            now=time.time(),
            hello_timeout=limits.hello_timeout,
            token_grace=limits.token_grace,
            max_subscriptions=limits.max_subscriptions,
            max_queue_bytes=limits.max_queue_bytes,
            max_queue_messages=limits.max_queue_messages,
        )
        self.claims: Claims | None = None
        """The verified claims of the latest accepted token (hello or refresh)."""
        self.device: str | None = None
        """The hello's device, or one the server assigned."""
        self.subscriptions: dict[str, Subscription] = {}
        """Current subscriptions (pending ones included), by session."""
        self.tasks: set[asyncio.Task[None]] = set()
        """Tasks started for this connection; all ended before it returns."""
        self._reached: dict[str, SessionInfo] = {}
        self._cursors: dict[str, Offset] = {}
        self._cursor_task: asyncio.Task[None] | None = None
        self._publish_slots = asyncio.Semaphore(limits.max_publishes)
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._abort: int | None = None
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pace_bytes = max(1, limits.max_queue_bytes // 4)
        self._pace_messages = max(1, limits.max_queue_messages // 4)

    # Life

    async def run(self) -> None:
        self._arm_timer()
        reader = asyncio.create_task(self._read())
        writer = self._writer = asyncio.create_task(self._write())
        self._kick()
        try:
            done, _ = await asyncio.wait(
                {reader, writer}, return_when=asyncio.FIRST_COMPLETED
            )
            if writer in done and not writer.cancelled() and not reader.done():
                # The close went out; the server reports the disconnect at once.
                await asyncio.wait({reader}, timeout=self.limits.close_timeout)
        finally:
            self._shut()
            if self._give_up is not None:
                self._give_up.cancel()
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, *self.tasks, return_exceptions=True)

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued (e.g. 4002 when the server drains)."""
        self.proto.close(code, reason)
        self.queued()

    def abort(self, code: int) -> None:
        """Close at once with a code the protocol does not send (1011)."""
        if self._abort is None and not self._closed:
            self._abort = code
            self._shut(code)
            self._kick()

    def queued(self) -> None:
        """Something was queued in the protocol: send it, and watch the bound."""
        proto = self.proto
        stats = self.handler.stats
        if proto.queued_bytes > stats.peak_queued_bytes:
            stats.peak_queued_bytes = proto.queued_bytes
        if proto.state is State.CLOSED and proto.closing is not None:
            self._shut(proto.closing.code)
        self._kick()

    def _kick(self) -> None:
        self._wake.set()

    def _shut(self, code: int | None = None) -> None:
        """The connection is closing: stop every subscription and task once.

        ``code`` is the close decided, if any (not when the client went away).
        """
        if self._closed:
            return
        self._closed = True
        if code is not None:
            closes = self.handler.stats.closes
            closes[code] = closes.get(code, 0) + 1
        if self._timer is not None:
            self._timer.cancel()
        for sub in list(self.subscriptions.values()):
            sub.stop()
        self.subscriptions.clear()
        for task in list(self.tasks):
            task.cancel()
        self._flushed.set()  # release pacers
        writer = self._writer
        if writer is not None and not writer.done():
            # A client that does not even read the close is dropped.
            loop = asyncio.get_running_loop()
            self._give_up = loop.call_later(self.limits.close_timeout, writer.cancel)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro, name=f"threadline-ws-{self.id}-{name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # Timers

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.proto.next_deadline()
        if deadline is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(
                max(0.0, deadline - time.time()), self._on_timer
            )

    def _on_timer(self) -> None:
        self._timer = None
        self.proto.check_timeouts(time.time())
        if self.proto.state is State.CLOSED:
            self.queued()
        else:
            self._arm_timer()  # the wall clock moved differently

    # Writing

    async def _write(self) -> None:
        proto, stats = self.proto, self.handler.stats
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._abort is not None:
                await self._send_close(self._abort, "internal error")
                return
            for item in proto.data_to_send():
                if isinstance(item, Close):
                    await self._send_close(item.code, item.reason)
                    return
                await self.send({"type": "websocket.send", "text": item})
                stats.frames_sent += 1
            self._flushed.set()

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def room(self, *, empty: bool = False) -> None:
        """Wait until the send queue is low enough (or empty) for a chunk of
        catch-up."""
        proto = self.proto
        limit_bytes, limit_messages = (
            (1, 1) if empty else (self._pace_bytes, self._pace_messages)
        )
        while not self._closed and (
            proto.queued_bytes >= limit_bytes or proto.queued_messages >= limit_messages
        ):
            self._flushed.clear()
            await self._flushed.wait()

    # Reading

    async def _read(self) -> None:
        proto = self.proto
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive" or self._closed:
                continue
            text = message.get("text")
            if text is not None:
                proto.receive_text(text, now=time.time())
            else:
                proto.receive_binary(message.get("bytes") or b"", now=time.time())
            try:
                for event in proto.events_received():
                    if proto.state is State.CLOSED:
                        break
                    await self._handle(event)
            except Exception:
                logger.exception("! connection %d: handling a message failed", self.id)
                self.abort(_INTERNAL_ERROR)
            # A publish answers later, from its own task: wake the writer only
            # for what is queued now.
            if proto.has_output or proto.state is State.CLOSED:
                self.queued()

    async def _handle(self, event: object) -> None:
        if isinstance(event, Hello):
            await self._on_hello(event)
        elif isinstance(event, Subscribe):
            sub = self.subscriptions[event.session] = Subscription(self, event.session)
            sub.task = self._spawn(sub.run(event), "subscribe")
        elif isinstance(event, Unsubscribe):
            stopped = self.subscriptions.pop(event.session, None)
            if stopped is not None:
                stopped.stop()
        elif isinstance(event, Publish):
            await self._on_publish(event)
        elif isinstance(event, Cursor):
            await self._on_cursor(event)
        elif isinstance(event, Refresh):
            await self._on_refresh(event)
        elif isinstance(event, SetPresence):
            await self._on_presence(event)

    async def _on_hello(self, hello: Hello) -> None:
        try:
            claims = await self.handler.verify(hello.token)
        except AuthError as exc:
            self.proto.close(CloseCode.UNAUTHORIZED, str(exc))
            return
        self.claims = claims
        self.device = hello.device or f"ws-{secrets.token_hex(6)}"
        self.proto.accept(expires_at=claims.exp)
        self._arm_timer()

    async def _on_refresh(self, refresh: Refresh) -> None:
        current = self._claims()
        try:
            claims = await self.handler.verify(refresh.token)
        except AuthError as exc:
            self.proto.close(CloseCode.UNAUTHORIZED, str(exc))
            return
        if (claims.tenant, claims.sub, claims.role) != (
            current.tenant,
            current.sub,
            current.role,
        ):
            self.proto.close(CloseCode.FORBIDDEN, "refresh for another identity")
            return
        self.claims = claims
        self._reached.clear()
        self.proto.accept(expires_at=claims.exp)
        self._arm_timer()
        for session, sub in list(self.subscriptions.items()):
            if sub.answered and not claims.may_access_session(session):
                self.end_subscription(sub, "forbidden")

    def actor(self) -> Actor:
        """Who this connection is: the token's identity and the device."""
        return actor_of(self._claims(), self.device)

    def _claims(self) -> Claims:
        claims = self.claims
        if claims is None:  # the protocol passes nothing on before a hello
            raise RuntimeError("no hello was accepted")
        return claims

    async def reach(self, session: str) -> SessionInfo:
        """The session, if the connection's token reaches it (cached until a
        refresh)."""
        info = self._reached.get(session)
        if info is None:
            info = await reach_session(self.sessions, self._claims(), session)
            if len(self._reached) >= _MAX_REACHED:
                self._reached.clear()  # bounded: a client may touch many sessions
            self._reached[session] = info
        return info

    def answer_error(self, exc: Exception, rid: str | None) -> None:
        """Answer a request (``rid``), or report a failure, with ``error``."""
        code, message, details = error_of(exc)
        self.proto.send_error(code, message, rid=rid, details=details)
        self.queued()

    # Subscriptions

    def end_subscription(
        self,
        sub: Subscription,
        reason: str,
        earliest: Offset | None = None,
        tail: Offset | None = None,
    ) -> None:
        """End a subscription from the server's side with ``gone``."""
        if self.subscriptions.get(sub.session) is not sub:
            return
        del self.subscriptions[sub.session]
        sub.stop()
        self.proto.send_gone(
            sub.session,
            reason,  # type: ignore[arg-type]
            earliest=None if earliest is None else str(earliest),
            tail=None if tail is None else str(tail),
        )
        self.queued()

    # Publishing and cursors

    async def _on_publish(self, message: Publish) -> None:
        claims = self._claims()
        try:
            await self.reach(message.session)
            if len(message.events) > MAX_BATCH_EVENTS:
                raise ProtocolError(
                    f"at most {MAX_BATCH_EVENTS} events per publish", "batch_too_large"
                )
            drafts = [EventDraft.parse(event) for event in message.events]
            expected = (
                None
                if message.expected_offset is None
                else Offset.parse(message.expected_offset)
            )
        except ThreadlineError as exc:
            self.answer_error(exc, message.rid)
            return
        # Backpressure: past the limit, stop reading until a publish is answered.
        await self._publish_slots.acquire()
        # Tasks start in the order created, and a publish queues its commit
        # before it first waits: publishes commit in the order received.
        publish = functools.partial(
            self.sessions.publish,
            claims.tenant,
            message.session,
            actor_of(claims, self.device),
            drafts,
            caps=claims.caps,
            expected_offset=expected,
        )
        self._spawn(self._publish(message.rid, publish), "publish")

    async def _publish(
        self, rid: str, publish: Callable[[], Awaitable[list[Published]]]
    ) -> None:
        try:
            published = await publish()
        except Exception as exc:
            if not isinstance(exc, ThreadlineError):
                logger.exception("! connection %d: publish failed", self.id)
            self.answer_error(exc, rid)
        else:
            self.proto.send_published(rid, [str(p.offset) for p in published])
            self.queued()
        finally:
            self._publish_slots.release()

    async def _on_cursor(self, message: Cursor) -> None:
        try:
            await self.reach(message.session)
            offset = Offset.parse(message.offset)
        except ThreadlineError as exc:
            self.answer_error(exc, None)
            return
        # Coalesced: only the latest cursor per session is written.
        current = self._cursors.get(message.session)
        self._cursors[message.session] = (
            offset if current is None else max(current, offset)
        )
        if self._cursor_task is None or self._cursor_task.done():
            self._cursor_task = self._spawn(self._move_cursors(), "cursor")

    async def _on_presence(self, message: SetPresence) -> None:
        presence = self.presence
        if presence is None:
            self.proto.send_error("not_supported", "presence is off on this server")
            return
        try:
            await self.reach(message.session)
            await presence.set_status(
                self._claims().tenant, message.session, self.actor(), message.status
            )
        except ThreadlineError as exc:
            self.answer_error(exc, None)

    async def _move_cursors(self) -> None:
        claims = self._claims()
        while self._cursors:
            session = next(iter(self._cursors))
            offset = self._cursors.pop(session)
            try:
                await self.sessions.set_cursor(
                    claims.tenant, session, claims.sub, offset, staff=claims.is_staff
                )
            except ThreadlineError as exc:
                self.answer_error(exc, None)


def error_of(exc: Exception) -> tuple[str, str, JSONObject]:
    """The ``error`` message's code, text and details for an exception.

    The codes are the HTTP API's; ``details.status`` is the HTTP status the
    same failure gets there, plus the context the HTTP body carries.
    """
    if not isinstance(exc, ThreadlineError):
        return "internal_error", "internal error", {"status": 500}
    details: JSONObject = {}
    if isinstance(exc, AuthError):
        status = exc.status
    elif isinstance(exc, SessionRuleError):
        status = exc.status
        expected = getattr(exc, "expected", None)
        if expected is not None:
            details["expected"] = expected
    elif isinstance(exc, TailMismatch):
        status = 412
        details["offset"] = str(exc.tail)
    elif isinstance(exc, InvalidEvent):
        status = 400
        if exc.field is not None:
            details["field"] = exc.field
    else:
        status, _ = status_of(exc)
        if isinstance(exc, OffsetGone):
            details["earliest"] = str(exc.earliest)
            details["tail"] = str(exc.tail)
    details["status"] = status
    return exc.code, str(exc), details
