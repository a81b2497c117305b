"""The write side of ``/v1/stream``: PUT (create, fork) and POST (append, close).

Also the 413 answer to a body past the limit, which only writes carry.
DELETE is one store call and stays in
:meth:`threadline.server.streams.StreamHandler.__call__`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..auth import Claims
from ..exceptions import ProtocolError
from ..protocol.offsets import Offset
from ..protocol.streams import (
    parse_expires_at,
    parse_producer,
    parse_sub_offset,
    parse_ttl,
)
from ..storage.base import AppendRequest, ForkSpec, LogConfig, LogKey
from .http import Receive, Scope, Send, error_body, read_body, send_response
from .stream_base import DISCARD_LIMIT, NAMESPACE, PREFIX, StreamBase
from .stream_codec import StreamRequest, declared_length, is_true, split_records

__all__ = ["StreamWrites"]


class StreamWrites(StreamBase):
    """PUT and POST under ``/v1/stream/``, and the 413 for an oversized body."""

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

    # 413

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
