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

This module is the ASGI entry (:class:`WebSocketHandler`) and the limits; a
connection's reader, writer and timers are in :mod:`.ws_connection`, what it
does with each message (hello, refresh, publish, cursor, presence) in
:mod:`.ws_messages`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from ..auth import Claims
from ..protocol.codes import CloseCode
from ..protocol.connection import (
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_MESSAGES,
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_TOKEN_GRACE,
)
from ..protocol.frames import SUBPROTOCOL
from .http import Receive, Scope, Send
from .hub import Hub
from .presence import PresenceManager
from .sessions import SessionManager
from .ws_connection import WebSocketConnection as WebSocketConnection
from .ws_messages import error_of as error_of

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_PUBLISHES",
    "WebSocketHandler",
    "WebSocketLimits",
    "WebSocketStats",
]

DEFAULT_MAX_PUBLISHES: Final = 64
"""Publishes one connection may have in flight; past it the server stops
reading the connection until one is answered (backpressure, no error)."""

DEFAULT_CLOSE_TIMEOUT: Final = 10.0
"""Seconds a decided close may wait for the client to read what precedes it."""

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
