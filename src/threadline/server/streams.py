"""The Durable Streams protocol at ``/v1/stream/*``, as raw ASGI (the hot path).

Thin over :mod:`threadline.protocol.streams` (header rules) and the log store.
Streams live in their own namespace (log names prefixed ``stream:``), so no
path here can reach a session log.

This module routes a request to its method; the methods live in
:mod:`~threadline.server.stream_writes` (PUT, POST) and
:mod:`~threadline.server.stream_reads` (HEAD, GET: catch-up, long-poll, SSE),
over the shared state and helpers of :mod:`~threadline.server.stream_base`.
"""

from __future__ import annotations

from ..exceptions import ThreadlineError
from ..storage.base import LogKey
from .http import BodyTooLarge, Receive, Scope, Send, send_response
from .stream_base import (  # the constants lived here before the split
    ALLOW_HEADERS as ALLOW_HEADERS,
    CACHEABLE as CACHEABLE,
    DISCARD_LIMIT as DISCARD_LIMIT,
    EXPOSE as EXPOSE,
    FRAME_CACHE as FRAME_CACHE,
    MAX_NAME as MAX_NAME,
    NAMESPACE as NAMESPACE,
    PREFIX as PREFIX,
)
from .stream_codec import StreamRequest, status_of
from .stream_reads import StreamReads
from .stream_writes import StreamWrites

__all__ = ["PREFIX", "StreamHandler"]


class StreamHandler(StreamWrites, StreamReads):
    """ASGI handler for every method under ``/v1/stream/``."""

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

    async def _options(self, scope: Scope, send: Send) -> None:
        headers = self._headers(scope)
        headers += [
            (b"access-control-allow-methods", b"GET, HEAD, PUT, POST, DELETE, OPTIONS"),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]
        await send_response(send, 204, headers)
