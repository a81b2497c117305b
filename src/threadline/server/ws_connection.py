"""One ``/v1/ws`` connection: its reader, writer, timers and close.

The asyncio layer around one
:class:`~threadline.protocol.connection.ServerProtocol` (:mod:`.websocket`
describes the whole transport). The reader feeds frames to the protocol and
acts on its events in order: it starts and stops subscriptions, and hands the
other messages to the handlers of :class:`~.ws_messages.ConnectionMessages`;
the writer sends what the protocol queued; a timer enforces its deadlines
(hello, token expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from ..auth import Claims
from ..protocol.codes import Close
from ..protocol.connection import ServerProtocol, State
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
from .http import Receive, Send
from .sessions import SessionInfo
from .subscription import Subscription
from .ws_messages import ConnectionMessages

if TYPE_CHECKING:
    from .websocket import WebSocketHandler

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("threadline.server.websocket")  # the transport's logger

_INTERNAL_ERROR: Final = 1011
_ids = itertools.count(1)


class WebSocketConnection(ConnectionMessages):
    """One accepted WebSocket: the protocol, its tasks and its subscriptions.

    Created and run by :class:`~.websocket.WebSocketHandler`. Its public methods are for
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
