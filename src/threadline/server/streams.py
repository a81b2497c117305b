"""The Durable Streams protocol at ``/v1/stream/*``, as raw ASGI (the hot path).

Thin over :mod:`threadline.protocol.streams` (header rules) and the log store.
Streams live in their own namespace (log names prefixed ``stream:``), so no
path here can reach a session log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import orjson

from ..auth import AuthError, Claims, Keyset, verify_token
from ..auth.jwks import JWKSClient
from ..exceptions import (
    InvalidOffset,
    ProtocolError,
    ThreadlineError,
)
from ..protocol.offsets import NOW, START, Offset, parse_offset_param
from ..protocol.sse import encode_control, encode_data
from ..protocol.streams import (
    compute_cursor,
    format_expires_at,
    is_json,
    make_etag,
    parse_expires_at,
    parse_producer,
    parse_sub_offset,
    parse_ttl,
    sse_encoding,
)
from ..storage.base import (
    AppendRequest,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    LogStore,
    ReadResult,
)
from .config import Config
from .http import (
    BodyTooLarge,
    Headers,
    Receive,
    Scope,
    Send,
    error_body,
    read_body,
    send_response,
)
from .stream_codec import (
    StreamRequest,
    declared_length,
    is_true,
    join_records,
    split_records,
    status_of,
    wait_disconnect,
)

__all__ = ["PREFIX", "StreamHandler"]

logger = logging.getLogger(__name__)

PREFIX = "/v1/stream/"
NAMESPACE = "stream:"
MAX_NAME = 1024
EXPOSE = (
    b"Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, "
    b"Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, "
    b"Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, "
    b"Content-Type"
)
ALLOW_HEADERS = (
    b"Authorization, Content-Type, If-None-Match, Last-Event-ID, Stream-Seq, "
    b"Stream-TTL, Stream-Expires-At, Stream-Closed, Stream-Forked-From, "
    b"Stream-Fork-Offset, Stream-Fork-Sub-Offset, Producer-Id, Producer-Epoch, "
    b"Producer-Seq"
)
CACHEABLE = b"max-age=60, stale-while-revalidate=300"
FRAME_CACHE = 256
"""Encoded SSE frames kept for readers at the same position (fan-out)."""
DISCARD_LIMIT = 64 * 1024 * 1024
"""Bytes of a refused (413) body read and dropped before the connection closes."""


class StreamHandler:
    """ASGI handler for every method under ``/v1/stream/``."""

    def __init__(
        self,
        config: Config,
        store: LogStore,
        draining: asyncio.Event,
        *,
        keyset: Keyset | None = None,
        jwks: JWKSClient | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.draining = draining
        self.keyset = keyset
        self.jwks = jwks
        if config.auth and keyset is None:
            raise ValueError("auth is on but no keyset is given")
        self._base_headers: Headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"cross-origin-resource-policy", b"cross-origin"),
            (b"access-control-expose-headers", EXPOSE),
        ]
        if config.auth:
            self._base_headers.append((b"vary", b"Authorization, Origin"))
        self._any_origin = "*" in config.cors_origins
        if self._any_origin:
            self._base_headers.append((b"access-control-allow-origin", b"*"))
        self._cache_scope = b"private" if config.auth else b"public"
        self._frames: dict[tuple[object, ...], bytes] = {}

    # Headers

    def _headers(self, scope: Scope) -> Headers:
        if self._any_origin:
            return list(self._base_headers)
        headers = list(self._base_headers)
        for name, value in scope["headers"]:
            if name == b"origin":
                if value.decode("latin-1") in self.config.cors_origins:
                    headers.append((b"access-control-allow-origin", value))
                    if not self.config.auth:
                        headers.append((b"vary", b"Origin"))
                break
        return headers

    def _cache(self, headers: Headers, value: bytes) -> None:
        headers.append((b"cache-control", value))

    async def _error(
        self,
        send: Send,
        scope: Scope,
        status: int,
        code: str,
        message: str,
        extra: Headers | None = None,
        head: bool = False,
    ) -> None:
        headers = self._headers(scope)
        headers.append((b"content-type", b"application/json"))
        headers.append((b"cache-control", b"no-store"))
        if extra:
            headers.extend(extra)
        await send_response(send, status, headers, error_body(code, message), head=head)

    # Entry point

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        name = path[len(PREFIX) :]
        method = scope["method"]
        if method == "OPTIONS":
            await self._options(scope, send)
            return
        if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 for c in name):
            await self._error(send, scope, 400, "invalid_name", "invalid stream name")
            return
        request = StreamRequest(scope, name)
        head = method == "HEAD"
        try:
            claims = await self._authenticate(request)
            key = LogKey(
                claims.tenant if claims else self.config.tenant, NAMESPACE + name
            )
            if method in ("GET", "HEAD"):
                self._authorize(claims, name, write=False)
            elif method in ("PUT", "POST", "DELETE"):
                self._authorize(claims, name, write=True)
            else:
                await self._error(
                    send,
                    scope,
                    405,
                    "method_not_allowed",
                    f"{method} is not supported",
                    [(b"allow", b"GET, HEAD, PUT, POST, DELETE, OPTIONS")],
                )
                return
            if method == "GET":
                await self._get(request, key, receive, send)
            elif method == "HEAD":
                await self._head(request, key, send)
            elif method == "PUT":
                await self._put(request, key, claims, receive, send)
            elif method == "POST":
                await self._post(request, key, receive, send)
            else:
                await self.store.delete(key)
                await send_response(send, 204, self._headers(scope))
        except BodyTooLarge:
            await self._refuse_body(scope, receive, send)
        except ThreadlineError as exc:
            status, extra = status_of(exc)
            await self._error(send, scope, status, exc.code, str(exc), extra, head=head)

    async def _refuse_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413 at once, then discard what the client still sends, never buffering it.

        Closing while the client is still writing would reset the connection
        before it reads the 413, so the rest of the body is read and dropped,
        up to a bound, then the connection closes.
        """
        headers = self._headers(scope)
        headers += [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
        ]
        limit = self.config.max_body_bytes
        body = error_body("body_too_large", f"request body exceeds {limit} bytes")
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        discarded = 0
        while discarded < DISCARD_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                break
            discarded += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b""})

    # Auth

    async def _authenticate(self, request: StreamRequest) -> Claims | None:
        if self.keyset is None:
            return None
        value = request.header(b"authorization")
        if value is None or not value[:7].lower() == "bearer ":
            raise AuthError("missing bearer token", "missing_token")
        if self.jwks is not None:
            return await self.jwks.verify(value[7:].strip())
        return verify_token(value[7:].strip(), self.keyset)

    def _authorize(self, claims: Claims | None, name: str, *, write: bool) -> None:
        if claims is None:
            return
        allowed = (
            claims.may_write_stream(name) if write else claims.may_read_stream(name)
        )
        if not allowed:
            verb = "write" if write else "read"
            raise AuthError(f"token may not {verb} stream {name!r}", "forbidden", 403)

    # OPTIONS

    async def _options(self, scope: Scope, send: Send) -> None:
        headers = self._headers(scope)
        headers += [
            (b"access-control-allow-methods", b"GET, HEAD, PUT, POST, DELETE, OPTIONS"),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]
        await send_response(send, 204, headers)

    # PUT: create or ensure

    async def _put(
        self,
        request: StreamRequest,
        key: LogKey,
        claims: Claims | None,
        receive: Receive,
        send: Send,
    ) -> None:
        ttl_value = request.header(b"stream-ttl")
        expires_value = request.header(b"stream-expires-at")
        if ttl_value is not None and expires_value is not None:
            raise ProtocolError(
                "send Stream-TTL or Stream-Expires-At, not both", "invalid_expiry"
            )
        ttl = parse_ttl(ttl_value) if ttl_value is not None else None
        expires_at = (
            parse_expires_at(expires_value) if expires_value is not None else None
        )
        closed = is_true(request.header(b"stream-closed"))
        content_type = request.header(b"content-type")
        fork = self._fork_spec(request, key, claims)
        body = await read_body(
            receive, self.config.max_body_bytes, declared_length(request)
        )
        if fork is None:
            content_type = content_type or "application/octet-stream"
            config: LogConfig | None = LogConfig(content_type, ttl, expires_at)
        else:
            config = LogConfig(content_type or "", ttl, expires_at)
        records = split_records(content_type, body, allow_empty=True)
        info, created = await self.store.create(
            key, config, records=records, closed=closed, fork=fork
        )
        headers = self._headers(request.scope)
        headers += self._meta_headers(info)
        if created:
            headers.append((b"location", self._location(request).encode("latin-1")))
        await send_response(send, 201 if created else 200, headers)

    def _fork_spec(
        self, request: StreamRequest, key: LogKey, claims: Claims | None
    ) -> ForkSpec | None:
        source = request.header(b"stream-forked-from")
        offset_value = request.header(b"stream-fork-offset")
        sub_value = request.header(b"stream-fork-sub-offset")
        if source is None:
            if offset_value is not None or sub_value is not None:
                raise ProtocolError(
                    "fork headers need Stream-Forked-From", "invalid_fork"
                )
            return None
        source_path = urlsplit(source.strip()).path
        if not source_path.startswith(PREFIX) or len(source_path) == len(PREFIX):
            raise ProtocolError(
                f"Stream-Forked-From must be a path under {PREFIX}", "invalid_fork"
            )
        source_name = source_path[len(PREFIX) :]
        self._authorize(claims, source_name, write=False)
        offset = None if offset_value is None else Offset.parse(offset_value.strip())
        sub_offset = 0 if sub_value is None else parse_sub_offset(sub_value)
        if sub_offset and offset is None:
            raise ProtocolError(
                "Stream-Fork-Sub-Offset needs Stream-Fork-Offset", "invalid_fork"
            )
        return ForkSpec(LogKey(key.tenant, NAMESPACE + source_name), offset, sub_offset)

    def _location(self, request: StreamRequest) -> str:
        scope = request.scope
        host = request.header(b"host")
        if host is None:
            server = scope.get("server") or ("localhost", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"

    def _meta_headers(self, info: LogInfo) -> Headers:
        headers: Headers = [
            (b"content-type", info.config.content_type.encode("latin-1")),
            (b"stream-next-offset", str(info.tail).encode()),
        ]
        if info.config.ttl is not None:
            headers.append((b"stream-ttl", str(info.config.ttl).encode()))
        if info.config.expires_at is not None:
            headers.append(
                (
                    b"stream-expires-at",
                    format_expires_at(info.config.expires_at).encode(),
                )
            )
        if info.closed:
            headers.append((b"stream-closed", b"true"))
        return headers

    # POST: append / close

    async def _post(
        self, request: StreamRequest, key: LogKey, receive: Receive, send: Send
    ) -> None:
        close = is_true(request.header(b"stream-closed"))
        content_type = request.header(b"content-type")
        claim = parse_producer(
            request.header(b"producer-id"),
            request.header(b"producer-epoch"),
            request.header(b"producer-seq"),
        )
        stream_seq = request.header(b"stream-seq")
        body = await read_body(
            receive, self.config.max_body_bytes, declared_length(request)
        )
        if not body and not close:
            raise ProtocolError(
                "an append needs a body (or Stream-Closed: true)", "empty_body"
            )
        if body and content_type is None:
            raise ProtocolError(
                "an append with a body needs a Content-Type", "content_type_required"
            )
        records = split_records(content_type, body, allow_empty=False) if body else []
        result = await self.store.append(  # an append refreshes the TTL itself
            key,
            AppendRequest(
                records=records,
                content_type=content_type,
                close=close,
                producer=claim,
                stream_seq=stream_seq,
            ),
        )
        headers = self._headers(request.scope)
        headers.append((b"stream-next-offset", str(result.tail).encode()))
        if result.closed:
            headers.append((b"stream-closed", b"true"))
        status = 204
        if claim is not None:
            headers.append((b"producer-epoch", str(claim.epoch).encode()))
            headers.append((b"producer-seq", str(result.producer_seq).encode()))
            status = 200 if result.count else 204
        await send_response(send, status, headers)

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
