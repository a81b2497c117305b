"""The WebSocket transport: one connection per client, every subscription on it.

A thin asyncio driver of the sans-I/O
:class:`~threadline.protocol.client_protocol.ClientProtocol`, which does the
remembering: each subscription's last offset, the publishes not answered
yet. After a retryable close the driver reconnects with backoff and the
protocol says ``hello``, resubscribes from those offsets and resends those
publishes with the same ids, so nothing is lost, duplicated or stored twice.

One task reads (feeding frames to the protocol and handing what it parsed to
the subscriptions and publishers) and one writes (sending what the protocol
queued, packed into as few frames as fit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from ..exceptions import (
    AuthError,
    ConnectionClosedError,
    ConnectionClosedOK,
    Forbidden,
    InvalidState,
    OffsetGone,
    ProtocolError,
    SessionNotFound,
    ThreadlineError,
    Timeout,
)
from ..protocol.client_protocol import ClientProtocol
from ..protocol.codes import Close, CloseCode
from ..protocol.frames import JSONObject
from ..protocol.messages import (
    ErrorMessage,
    Events,
    Gone,
    Presence,
    Published,
    ServerMessage,
    Subscribed,
)
from ..protocol.offsets import ZERO, Offset
from .backoff import Backoff
from .tokens import Tokens
from .transports import Disconnected, Sink, Transport, WebSocket, error_from, event_from

__all__ = ["WebSocketTransport"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT: Final = 5.0


class WebSocketTransport(Transport):
    """Subscriptions and publishes over one WebSocket ``/v1/ws``.

    The connection opens on first use and reopens by itself after any
    retryable close (4000–4099, a drop, a restarting server), with backoff. A
    4001 (token expired) first asks the token provider for a new token; so
    does one 4401, since a token may expire between two connections.

    A subscription whose queue is full stops the reading task: every
    subscription and publish on the connection waits (the server paces the
    connection, or closes it 4000 and the client resumes by replay). Give a
    slow consumer its own :class:`Client` if the others must not wait for it.

    Args:
        url: ``ws(s)://host:port/v1/ws``.
        tokens: The token for ``hello``, and its refresh hook.
        device: This tab's or install's stable id.
        backoff: Waits between reconnects.
        timeout: How long :meth:`subscribe` waits for ``subscribed``.
    """

    def __init__(
        self,
        url: str,
        tokens: Tokens,
        *,
        device: str | None,
        backoff: Backoff,
        timeout: float,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.backoff = backoff
        self.timeout = timeout
        self.protocol = ClientProtocol(tokens.token, device=device)
        """The sans-I/O state: subscriptions' offsets, unanswered publishes."""
        self.connections = 0
        """How many connections were opened so far (the first one included)."""
        self._sinks: dict[str, Sink] = {}  # session → sink
        self._sink_rids: dict[str, str] = {}  # subscribe rid → session
        self._subscribing: dict[str, asyncio.Future[None]] = {}  # rid → answer
        self._publishes: dict[str, asyncio.Future[list[str]]] = {}  # rid → answer
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._error: ThreadlineError | None = None
        self.debug = logger.isEnabledFor(logging.DEBUG)

    # Transport methods

    async def subscribe(self, sink: Sink) -> None:
        self._start()
        if sink.session in self._sinks:
            raise InvalidState(f"already subscribed to {sink.session!r} on this client")
        rid = self.protocol.subscribe(sink.session, sink.resume_offset(), sink.view)
        self._sinks[sink.session] = sink
        self._sink_rids[rid] = sink.session
        answer = asyncio.get_running_loop().create_future()
        self._subscribing[rid] = answer
        self._wake.set()
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(answer)
        except BaseException as exc:
            self._subscribing.pop(rid, None)
            await self.unsubscribe(sink)
            if isinstance(exc, TimeoutError):
                raise Timeout(f"no answer to subscribe {sink.session!r}") from exc
            raise

    async def unsubscribe(self, sink: Sink) -> None:
        if self._sinks.get(sink.session) is sink:
            del self._sinks[sink.session]
            self._sink_rids = {
                r: s for r, s in self._sink_rids.items() if s != sink.session
            }
            self.protocol.unsubscribe(sink.session)
            self._wake.set()

    def submit(
        self,
        session: str,
        events: Sequence[JSONObject],
        *,
        expected_offset: str | None = None,
        merge: bool = False,
    ) -> asyncio.Future[list[str]]:
        # One publish per call even with ``merge``: the writer packs what
        # waits into frames anyway, and each keeps its own answer.
        self._start()
        rid = self.protocol.publish(session, events, expected_offset=expected_offset)
        future = asyncio.get_running_loop().create_future()
        self._publishes[rid] = future
        self._wake.set()
        return future

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        task = self._task
        if task is not None:
            self.protocol.close()
            self._wake.set()
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                await asyncio.wait([task])  # its CancelledError is not ours
        self._end(None)

    def on_token(self, token: str) -> None:
        try:
            self.protocol.refresh(token)
        except ValueError as exc:
            logger.warning("! cannot send the new token: %s", exc)
            return
        self._wake.set()

    # The connection loop

    def _start(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise InvalidState("the client is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadline-ws")

    async def _run(self) -> None:
        failures = 0
        retried_auth = False
        try:
            while not self._closing:
                try:
                    websocket = await WebSocket.open(
                        self.url, open_timeout=self.timeout, headers={}
                    )
                except Disconnected as exc:
                    failures += 1
                    delay = self.backoff.compute(failures)
                    logger.info("! cannot connect (%s); retrying in %.3fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                except ThreadlineError as exc:
                    self._end(exc)
                    return
                failures = 0
                self.backoff.reset()
                self.connections += 1
                token = self.protocol.token
                answered = await self._serve(websocket)
                if self._closing:
                    return
                code, reason = websocket.close_code, websocket.close_reason
                logger.info("x connection closed: %s %s", code, reason)
                if answered:
                    retried_auth = False
                if code == CloseCode.TOKEN_EXPIRED or (
                    code == CloseCode.UNAUTHORIZED and not retried_auth
                ):
                    try:
                        fresh = await self.tokens.refresh(token)
                    except AuthError as exc:
                        self.protocol.receive_close(code, reason)
                        self._end(exc)
                        return
                    if code == CloseCode.UNAUTHORIZED and fresh:
                        # Try the new token once, keeping what is pending.
                        retried_auth = True
                        code = CloseCode.TOKEN_EXPIRED
                if not self.protocol.receive_close(code, reason):
                    self._end(_close_error(code, reason))
                    return
                await asyncio.sleep(self.backoff.compute(0))
        except Exception as exc:  # a bug: fail loudly rather than hang everyone
            logger.exception("! WebSocket transport failed")
            self._end(ConnectionClosedError(None, f"transport failed: {exc!r}"))

    async def _serve(self, websocket: WebSocket) -> bool:
        """Run one connection until it closes; whether the server said anything."""
        answered = False
        self.protocol.connect()
        self._wake.set()
        writer = asyncio.create_task(
            self._write(websocket), name="threadline-ws-writer"
        )
        try:
            while True:
                message = await websocket.recv()
                if message is None:
                    break
                if isinstance(message, bytes):
                    await websocket.close(CloseCode.PROTOCOL_ERROR, "binary frame")
                    break
                if self.debug:
                    logger.debug("< %.200s", message)
                answered = True
                self.protocol.receive_text(message)
                await self._dispatch(self.protocol.events_received())
                self._wake.set()
        finally:
            writer.cancel()
            await asyncio.wait([writer])  # its CancelledError is not ours
            await websocket.close()
        return answered

    async def _write(self, websocket: WebSocket) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for item in self.protocol.data_to_send():
                if isinstance(item, Close):
                    await websocket.close(item.code, item.reason)
                    return
                if self.debug:
                    logger.debug("> %.200s", item)
                await websocket.send(item)

    # What the server said

    async def _dispatch(self, messages: list[ServerMessage]) -> None:
        for message in messages:
            if isinstance(message, Events):
                await self._deliver(message)
            elif isinstance(message, Published):
                publish = self._publishes.pop(message.rid, None)
                if publish is not None and not publish.done():
                    publish.set_result(list(message.offsets))
            elif isinstance(message, Subscribed):
                sink = self._sinks.get(message.session)
                if sink is not None:
                    sink.set_state(message.state)
                answer = self._subscribing.pop(message.rid, None)
                if answer is not None and not answer.done():
                    answer.set_result(None)
            elif isinstance(message, ErrorMessage):
                self._receive_error(message)
            elif isinstance(message, Gone):
                self._finish_sink(message.session, _gone_error(message))
            elif isinstance(message, Presence):
                sink = self._sinks.get(message.session)
                if sink is not None:
                    sink.set_presence(message.actor, message.status)

    async def _deliver(self, message: Events) -> None:
        sink = self._sinks.get(message.session)
        if sink is None:
            return
        try:
            events = [event_from(obj) for obj in message.events]
        except ProtocolError as exc:
            await self.unsubscribe(sink)
            sink.finish(exc)
            return
        await sink.deliver(events)

    def _receive_error(self, message: ErrorMessage) -> None:
        status = (message.details or {}).get("status")
        error = error_from(
            message.code,
            message.message,
            status=status if isinstance(status, int) else None,
            details=message.details,
        )
        rid = message.rid
        if rid is not None and rid in self._publishes:
            publish = self._publishes.pop(rid)
            if not publish.done():
                publish.set_exception(error)
        elif rid is not None and rid in self._sink_rids:
            # The protocol dropped the subscription: a first subscribe or a
            # resubscribe after a reconnect that the server refused.
            answer = self._subscribing.pop(rid, None)
            if answer is not None and not answer.done():
                answer.set_exception(error)
            self._finish_sink(self._sink_rids[rid], error)
        else:
            logger.warning("! server error: %s %s", message.code, message.message)

    def _finish_sink(self, session: str, error: ThreadlineError) -> None:
        sink = self._sinks.pop(session, None)
        self._sink_rids = {r: s for r, s in self._sink_rids.items() if s != session}
        if sink is not None:
            sink.finish(error)

    def _end(self, error: ThreadlineError | None) -> None:
        """Stop for good: fail what waits, end every subscription."""
        if error is not None:
            self._error = error
            logger.warning("! WebSocket transport stopped: %s", error)
        failure = error or ConnectionClosedOK(1000, "the client is closed")
        futures: list[asyncio.Future[Any]] = [
            *self._publishes.values(),
            *self._subscribing.values(),
        ]
        for future in futures:
            if not future.done():
                future.set_exception(failure)
                future.exception()  # retrieved: nobody may be waiting
        self._publishes.clear()
        self._subscribing.clear()
        sinks, self._sinks = self._sinks, {}
        self._sink_rids.clear()
        for sink in sinks.values():
            sink.finish(error)


def _close_error(code: int, reason: str) -> ThreadlineError:
    if code == CloseCode.UNAUTHORIZED:
        return AuthError(reason or "token refused (close 4401)", "unauthorized", 401)
    if code == CloseCode.FORBIDDEN:
        return AuthError(reason or "forbidden (close 4403)", "forbidden", 403)
    if code == CloseCode.NORMAL_CLOSURE:
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


def _gone_error(message: Gone) -> ThreadlineError:
    if message.reason == "offset_gone":
        earliest = Offset.parse(message.earliest) if message.earliest else ZERO
        tail = Offset.parse(message.tail) if message.tail else ZERO
        return OffsetGone(earliest, tail)
    if message.reason == "forbidden":
        error: ThreadlineError = Forbidden("the subscription is no longer allowed")
        return error
    return SessionNotFound(f"session {message.session!r} was deleted")
