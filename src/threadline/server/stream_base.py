"""What every ``/v1/stream`` method shares: constants, state, headers, errors, auth.

:class:`StreamBase` holds the handler's state (config, store, CORS headers,
the SSE frame cache) and the helpers both sides use. The write side
(:mod:`threadline.server.stream_writes`) and the read side
(:mod:`threadline.server.stream_reads`) extend it, and
:class:`threadline.server.streams.StreamHandler` joins them; the methods are
plain inherited methods, so the hot path has no extra indirection.
"""

from __future__ import annotations

import asyncio

from ..auth import AuthError, Claims, Keyset, verify_token
from ..auth.jwks import JWKSClient
from ..protocol.streams import format_expires_at
from ..storage.base import LogInfo, LogStore
from .config import Config
from .http import Headers, Scope, Send, error_body, send_response
from .stream_codec import StreamRequest

__all__ = [
    "ALLOW_HEADERS",
    "CACHEABLE",
    "DISCARD_LIMIT",
    "EXPOSE",
    "FRAME_CACHE",
    "MAX_NAME",
    "NAMESPACE",
    "PREFIX",
    "StreamBase",
]

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


class StreamBase:
    """The handler's state and the helpers both the read and write sides use."""

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
