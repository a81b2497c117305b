"""The read side of ``/v1/stream``: HEAD, and GET as catch-up, long-poll or SSE.

GET at the tail is a hot path: an SSE frame is encoded once per append and
shared by every reader at the same position (:meth:`StreamReads._frame`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import orjson

from ..exceptions import InvalidOffset, ProtocolError, ThreadlineError
from ..protocol.offsets import NOW, START, Offset, parse_offset_param
from ..protocol.sse import encode_control, encode_data
from ..protocol.streams import compute_cursor, is_json, make_etag, sse_encoding
from ..storage.base import LogKey, ReadResult
from .http import Receive, Send, send_response
from .stream_base import CACHEABLE, FRAME_CACHE, StreamBase
from .stream_codec import StreamRequest, join_records, wait_disconnect

__all__ = ["StreamReads"]


class StreamReads(StreamBase):
    """HEAD and GET under ``/v1/stream/``."""

    # HEAD

    async def _head(self, request: StreamRequest, key: LogKey, send: Send) -> None:
        info = await self.store.head(key)
        headers = self._headers(request.scope)
        headers += self._meta_headers(info)
        headers.append((b"etag", make_etag(START, info.tail, info.closed).encode()))
        self._cache(headers, b"no-store")
        await send_response(send, 200, headers, head=True)

    # GET

    async def _get(
        self, request: StreamRequest, key: LogKey, receive: Receive, send: Send
    ) -> None:
        offset_text = request.single("offset")
        live = request.single("live")
        if offset_text is not None and (
            not offset_text or "," in offset_text or " " in offset_text
        ):
            raise InvalidOffset(f"malformed offset {offset_text!r}")
        if live not in (None, "long-poll", "sse"):
            raise ProtocolError(f"unknown live mode {live!r}", "invalid_live")
        if live is not None and offset_text is None:
            raise ProtocolError(f"live={live} needs an offset", "offset_required")
        offset = parse_offset_param(offset_text)
        self.store.touch(key)
        if live == "sse":
            await self._sse(request, key, offset, receive, send)
        elif live == "long-poll":
            await self._long_poll(request, key, offset, receive, send)
        else:
            await self._catch_up(request, key, offset, send)

    async def _catch_up(
        self, request: StreamRequest, key: LogKey, offset: Offset | str, send: Send
    ) -> None:
        if offset == NOW:
            info = await self.store.head(key)
            headers = self._headers(request.scope)
            headers += [
                (b"content-type", info.config.content_type.encode("latin-1")),
                (b"stream-next-offset", str(info.tail).encode()),
                (b"stream-up-to-date", b"true"),
            ]
            if info.closed:
                headers.append((b"stream-closed", b"true"))
            self._cache(headers, b"no-store")
            body = b"[]" if is_json(info.config.content_type) else b""
            await send_response(send, 200, headers, body)
            return
        after = offset if isinstance(offset, Offset) else None
        result = await self.store.read(
            key, after, max_bytes=self.config.read_chunk_bytes
        )
        info = result.info
        etag = make_etag(
            offset if after is not None else START, result.next_offset, result.closed
        )
        headers = self._headers(request.scope)
        headers += [
            (b"content-type", info.config.content_type.encode("latin-1")),
            (b"stream-next-offset", str(result.next_offset).encode()),
            (b"etag", etag.encode()),
        ]
        if result.up_to_date:
            headers.append((b"stream-up-to-date", b"true"))
        if result.closed:
            headers.append((b"stream-closed", b"true"))
        self._cache(headers, self._cache_scope + b", " + CACHEABLE)
        if_none_match = request.header(b"if-none-match")
        if if_none_match is not None and etag in [
            t.strip() for t in if_none_match.split(",")
        ]:
            await send_response(send, 304, headers)
            return
        body = join_records(info.config.content_type, [r.data for r in result.records])
        await send_response(send, 200, headers, body)

    def _cursor(self, request: StreamRequest) -> bytes:
        echoed = request.single("cursor")
        jitter = random.randint(1, 3600) if echoed is not None else 0
        return compute_cursor(time.time(), echoed, jitter).encode()

    async def _resolve(self, key: LogKey, offset: Offset | str) -> Offset | None:
        if offset == NOW:
            return (await self.store.head(key)).tail
        return offset if isinstance(offset, Offset) else None

    async def _long_poll(
        self,
        request: StreamRequest,
        key: LogKey,
        offset: Offset | str,
        receive: Receive,
        send: Send,
    ) -> None:
        after = await self._resolve(key, offset)
        chunk = self.config.read_chunk_bytes
        result = await self.store.read(key, after, max_bytes=chunk)
        if not result.records and not result.info.closed and not self.draining.is_set():
            # A drain wakes every store waiter, so two tasks suffice here.
            disconnect = asyncio.ensure_future(wait_disconnect(receive))
            wait = asyncio.ensure_future(
                self.store.wait(key, result.next_offset, self.config.long_poll_timeout)
            )
            try:
                await asyncio.wait(
                    {disconnect, wait}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                disconnect.cancel()
                wait.cancel()
            if disconnect.done() and not disconnect.cancelled():
                return
            result = await self.store.read(key, after, max_bytes=chunk)
        info = result.info
        headers = self._headers(request.scope)
        headers += [
            (b"content-type", info.config.content_type.encode("latin-1")),
            (b"stream-next-offset", str(result.next_offset).encode()),
        ]
        if result.up_to_date:
            headers.append((b"stream-up-to-date", b"true"))
        if result.closed:
            headers.append((b"stream-closed", b"true"))
        else:
            headers.append((b"stream-cursor", self._cursor(request)))
        if not result.records:
            self._cache(headers, b"no-store")
            await send_response(send, 204, headers)
            return
        etag = make_etag(
            after if after is not None else START, result.next_offset, result.closed
        )
        headers.append((b"etag", etag.encode()))
        self._cache(headers, self._cache_scope + b", " + CACHEABLE)
        body = join_records(info.config.content_type, [r.data for r in result.records])
        await send_response(send, 200, headers, body)

    async def _sse(
        self,
        request: StreamRequest,
        key: LogKey,
        offset: Offset | str,
        receive: Receive,
        send: Send,
    ) -> None:
        after = await self._resolve(key, offset)
        first = await self.store.read(
            key, after, max_bytes=self.config.read_chunk_bytes
        )
        content_type = first.info.config.content_type
        encoding = sse_encoding(content_type)
        headers = self._headers(request.scope)
        headers += [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        if encoding:
            headers.append((b"stream-sse-data-encoding", encoding.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        stream = asyncio.ensure_future(
            self._sse_loop(request, key, after, first, encoding, send)
        )
        disconnect = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await asyncio.wait(
                {stream, disconnect}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stream.cancel()
            disconnect.cancel()
        if stream.done() and not stream.cancelled():
            error = stream.exception()
            if error is not None and not isinstance(error, ThreadlineError):
                raise error
            # Ended: closed, drained, reconnect interval, or the stream went away.
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _sse_loop(
        self,
        request: StreamRequest,
        key: LogKey,
        after: Offset | None,
        result: ReadResult,
        encoding: str | None,
        send: Send,
    ) -> None:
        interval = self.config.sse_reconnect_interval
        deadline = time.monotonic() + interval * random.uniform(0.9, 1.1)
        keepalive = self.config.long_poll_timeout
        chunk = self.config.read_chunk_bytes
        sent_up_to_date = False
        send_more = _body_sender(send)
        while True:
            if result.records:
                message = self._frame(request, key, after, result, encoding)
                after = result.next_offset
                await send_more(message)
                sent_up_to_date = result.up_to_date
                if result.closed:
                    return
                if not result.up_to_date:
                    result = await self.store.read(key, after, max_bytes=chunk)
                    continue
            elif result.closed or not sent_up_to_date:
                await send_more(self._control(request, result))
                sent_up_to_date = True
                if result.closed:
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            woke = await self.store.wait(
                key, result.next_offset, min(keepalive, remaining)
            )
            result = await self.store.read(key, after, max_bytes=chunk)
            if self.draining.is_set():
                # The last word before a restart: where to resume.
                if result.records:
                    await send_more(self._frame(request, key, after, result, encoding))
                else:
                    await send_more(self._control(request, result))
                return
            if not woke and not result.records and not result.closed:
                # Idle keep-alive: repeat the position so proxies see traffic.
                await send_more(self._control(request, result))

    def _frame(
        self,
        request: StreamRequest,
        key: LogKey,
        after: Offset | None,
        result: ReadResult,
        encoding: str | None,
    ) -> bytes:
        """A data event and its control event, encoded once for every reader.

        Live readers at the same position get the same bytes: the frame is
        cached by (log, range, state, cursor), so fan-out costs one encoding
        per append instead of one per reader.
        """
        cursor = None if result.closed else self._cursor(request)
        cache_key = (
            key,
            after,
            result.next_offset,
            result.up_to_date,
            result.closed,
            cursor,
        )
        frame = self._frames.get(cache_key)
        if frame is None:
            content_type = result.info.config.content_type
            payload = join_records(content_type, [r.data for r in result.records])
            frame = encode_data(payload, encoding) + self._control(
                request, result, cursor
            )
            if len(self._frames) >= FRAME_CACHE:
                del self._frames[next(iter(self._frames))]
            self._frames[cache_key] = frame
        return frame

    def _control(
        self, request: StreamRequest, result: ReadResult, cursor: bytes | None = None
    ) -> bytes:
        control: dict[str, object] = {"streamNextOffset": str(result.next_offset)}
        if result.closed:
            control["streamClosed"] = True
        else:
            control["streamCursor"] = (cursor or self._cursor(request)).decode()
        if result.up_to_date:
            control["upToDate"] = True
        return encode_control(orjson.dumps(control))


def _body_sender(send: Send) -> Callable[[bytes], Awaitable[None]]:
    async def send_more(body: bytes) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})

    return send_more
