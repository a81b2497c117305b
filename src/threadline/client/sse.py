"""The HTTP transport: session SSE for subscriptions, ``POST`` for publishes.

The fallback where a WebSocket cannot pass (some proxies), and what the CLI
uses for a one-off publish. Each subscription is one SSE response, resumed
from the last offset delivered whenever it ends (the server closes every
response after about a minute, with a ``resume`` control event) or drops.
Publishes to one session go one request at a time, in order: pipelined
message deltas that pile up behind a request in flight travel together in
the next one (one batch, up to 500 events).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import orjson

from ..exceptions import (
    AuthError,
    ConnectionClosedOK,
    InvalidState,
    ProtocolError,
    SessionNotFound,
    ThreadlineError,
    Timeout,
)
from ..protocol.events import Event
from ..protocol.frames import JSONObject
from ..protocol.offsets import NOW, START
from ..protocol.sse import SSEDecoder
from .backoff import Backoff
from .transports import HTTPAPI, Disconnected, Sink, Transport, event_from

__all__ = ["SSETransport"]

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS: Final = 500
"""Most events merged into one publish request (the server's batch limit)."""
MAX_BATCH_BYTES: Final = 512 * 1024
"""Most JSON merged into one publish request (half the server's body limit)."""
READ_TIMEOUT: Final = 45.0
"""An SSE response silent this long is dead (the server sends a heartbeat every
15 s)."""


def session_path(session: str, suffix: str = "") -> str:
    """The API path of a session (ids are URL-safe but quoted anyway)."""
    return f"/v1/sessions/{quote(session, safe='')}{suffix}"


@dataclass(slots=True)
class _Position:
    last: str  # the last offset delivered, or where to start


@dataclass(slots=True)
class _Pending:
    events: Sequence[JSONObject]
    expected_offset: str | None
    merge: bool
    future: asyncio.Future[list[str]]
    size: int


class SSETransport(Transport):
    """Subscriptions over session SSE, publishes over ``POST``.

    Args:
        api: The HTTP API (token, retries, error mapping).
        backoff: Waits between reconnects of an SSE response.
        timeout: How long :meth:`subscribe` waits for the first response.
    """

    def __init__(self, api: HTTPAPI, *, backoff: Backoff, timeout: float) -> None:
        self.api = api
        self.backoff = backoff
        self.timeout = timeout
        self.connections = 0
        """How many SSE responses were opened so far."""
        self.requests = 0
        """How many publish requests were sent so far (merged ones count once)."""
        self._readers: dict[str, tuple[Sink, asyncio.Task[None]]] = {}
        self._queues: dict[str, deque[_Pending]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    # Subscriptions

    async def subscribe(self, sink: Sink) -> None:
        if self._closing:
            raise InvalidState("the client is closed")
        if sink.session in self._readers:
            raise InvalidState(f"already subscribed to {sink.session!r} on this client")
        start = sink.resume_offset()
        if start == NOW:  # resolve it, so that a reconnect resumes from it
            state = await self.api.request("GET", session_path(sink.session))
            start = str(state["offset"])
        opened = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._read(sink, start, opened), name=f"threadline-sse-{sink.session}"
        )
        self._readers[sink.session] = (sink, task)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(opened)
        except BaseException as exc:
            await self.unsubscribe(sink)
            if isinstance(exc, TimeoutError):
                raise Timeout(f"no answer to subscribe {sink.session!r}") from exc
            raise

    async def unsubscribe(self, sink: Sink) -> None:
        entry = self._readers.get(sink.session)
        if entry is not None and entry[0] is sink:
            del self._readers[sink.session]
            entry[1].cancel()
            await asyncio.wait([entry[1]])  # its CancelledError is not ours

    async def _read(self, sink: Sink, start: str, opened: asyncio.Future[None]) -> None:
        """Read one subscription, reconnecting, until it ends or fails."""
        position = _Position(start)
        failures = 0
        refreshed = False
        params = {"live": "sse"}
        if sink.view != "raw":
            params["view"] = sink.view
        try:
            while True:
                token = self.api.tokens.token
                try:
                    async with self.api.stream(
                        session_path(sink.session, "/events"),
                        {**params, "offset": position.last},
                        read_timeout=READ_TIMEOUT,
                    ) as chunks:
                        self.connections += 1
                        if not opened.done():
                            opened.set_result(None)
                        failures, refreshed = 0, False
                        self.backoff.reset()
                        if await self._stream(sink, chunks, position):
                            return
                    # The server ended the response (it does every minute or
                    # so): resume, after a short jittered pause in case it is
                    # draining.
                    await asyncio.sleep(self.backoff.compute(0))
                    continue
                except Disconnected as exc:
                    error: ThreadlineError = exc
                except AuthError:
                    if not refreshed and await self.api.tokens.refresh(token):
                        refreshed = True
                        continue
                    raise
                failures += 1
                delay = self.backoff.compute(failures)
                if isinstance(error, Disconnected) and error.retry_after is not None:
                    delay = max(delay, error.retry_after)
                logger.info(
                    "! SSE %s dropped (%s); retrying in %.3fs",
                    sink.session,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
        except ThreadlineError as exc:
            if not opened.done():
                opened.set_exception(exc)
            else:
                sink.finish(exc)
            self._readers.pop(sink.session, None)

    async def _stream(self, sink: Sink, chunks: Any, position: _Position) -> bool:
        """Deliver one response's events; whether the subscription ended
        (session closed or gone). ``position`` follows what was delivered."""
        decoder = SSEDecoder()
        last = position.last
        async for chunk in chunks:
            fresh: list[Event] = []
            ended = False
            for message in decoder.receive_data(chunk):
                if message.event == "message" and message.id is not None:
                    event = event_from(_loads(message.data))
                    offset = str(event.offset)
                    if last == START or offset > last:  # drop what was delivered
                        fresh.append(event)
                        last = offset
                elif message.event == "presence":
                    change = _loads(message.data)
                    if isinstance(change, dict) and isinstance(
                        change.get("actor"), dict
                    ):
                        sink.set_presence(change["actor"], str(change.get("status")))
                elif message.event == "control":
                    control = _loads(message.data)
                    kind = control.get("type") if isinstance(control, dict) else None
                    if kind == "gone":
                        await sink.deliver(fresh)
                        sink.finish(
                            SessionNotFound(f"session {sink.session!r} is gone")
                        )
                        return True
                    if kind == "closed":
                        ended = True
                    elif kind == "resume":
                        offset = control.get("offset")
                        if isinstance(offset, str) and (last == START or offset > last):
                            last = offset
            if fresh:
                await sink.deliver(fresh)
            position.last = last
            if ended:
                sink.finish(None)
                return True
        return False

    # Publishes

    def submit(
        self,
        session: str,
        events: Sequence[JSONObject],
        *,
        expected_offset: str | None = None,
        merge: bool = False,
    ) -> asyncio.Future[list[str]]:
        if self._closing:
            raise InvalidState("the client is closed")
        future = asyncio.get_running_loop().create_future()
        size = sum(len(orjson.dumps(event)) for event in events) if merge else 0
        queue = self._queues.setdefault(session, deque())
        queue.append(_Pending(events, expected_offset, merge, future, size))
        if session not in self._workers:
            self._workers[session] = asyncio.create_task(
                self._publish(session, queue), name=f"threadline-publish-{session}"
            )
        return future

    async def _publish(self, session: str, queue: deque[_Pending]) -> None:
        """Send a session's queued publishes, one request at a time, in order."""
        try:
            while queue:
                batch = [queue.popleft()]
                if batch[0].merge:
                    count, size = len(batch[0].events), batch[0].size
                    while (
                        queue
                        and queue[0].merge
                        and count + len(queue[0].events) <= MAX_BATCH_EVENTS
                        and size + queue[0].size <= MAX_BATCH_BYTES
                    ):
                        count += len(queue[0].events)
                        size += queue[0].size
                        batch.append(queue.popleft())
                body: dict[str, Any] = {"events": [e for p in batch for e in p.events]}
                if batch[0].expected_offset is not None:
                    body["expected_offset"] = batch[0].expected_offset
                self.requests += 1
                try:
                    answer = await self.api.request(
                        "POST", session_path(session, "/events"), body=body
                    )
                    offsets = [str(item["offset"]) for item in answer["events"]]
                except asyncio.CancelledError:
                    _fail(batch, ConnectionClosedOK(1000, "the client is closed"))
                    raise
                except (KeyError, TypeError) as exc:
                    _fail(batch, ProtocolError(f"malformed publish answer: {exc!r}"))
                except ThreadlineError as exc:
                    _fail(batch, exc)
                else:
                    for pending in batch:
                        count = len(pending.events)
                        if not pending.future.done():
                            pending.future.set_result(offsets[:count])
                        offsets = offsets[count:]
        finally:
            del self._workers[session]
            if not queue:
                self._queues.pop(session, None)

    async def aclose(self) -> None:
        self._closing = True
        for sink, task in list(self._readers.values()):
            task.cancel()
            await asyncio.wait([task])  # its CancelledError is not ours
            sink.finish(None)
        self._readers.clear()
        for task in list(self._workers.values()):
            task.cancel()
            await asyncio.wait([task])  # its CancelledError is not ours
        closed = ConnectionClosedOK(1000, "the client is closed")
        for queue in self._queues.values():
            _fail(list(queue), closed)
        self._queues.clear()


def _fail(batch: list[_Pending], error: ThreadlineError) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
            pending.future.exception()  # retrieved: nobody may be waiting


def _loads(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"SSE data is not JSON: {exc}") from exc
