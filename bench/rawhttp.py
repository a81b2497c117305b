"""A minimal, fast HTTP/1.1 client for the load generator.

Requests are hand-built bytes written to a keep-alive connection; responses
are parsed with ``httptools`` (llhttp) inside an ``asyncio.Protocol``, so the
per-request cost stays a few microseconds of Python. One request is in flight
per connection. A connection can also be switched into streaming mode, where
the decoded (de-chunked) body bytes go to a sink callback instead of being
buffered: this is how the SSE readers consume ``live=sse`` responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

BodySink = Callable[[bytes], None]


class HttpError(Exception):
    """The server answered with an unexpected status or broke the connection."""


@dataclass(slots=True)
class Response:
    """A fully received response (headers are lower-cased)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def build_request(
    method: str,
    path: str,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """Return the wire bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpConnection(asyncio.Protocol):
    """One client connection; call :meth:`request` or :meth:`stream`."""

    def __init__(self, want_headers: bool = True) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._want_headers = want_headers
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._done: asyncio.Future[Response] | None = None
        self._head: asyncio.Future[Response] | None = None
        self._sink: BodySink | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (uvloop's is not an ``asyncio.Transport`` subclass)."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed bytes to llhttp, which calls the ``on_*`` callbacks below."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whatever is pending and mark the connection closed."""
        self._fail(HttpError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- llhttp callbacks ------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        """Collect one header (only when the caller wants headers)."""
        if self._want_headers:
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        """Resolve the head future of a streaming request."""
        head = self._head
        if head is not None and not head.done():
            head.set_result(self._response(b""))

    def on_body(self, body: bytes) -> None:
        """Buffer the body, or hand it to the streaming sink."""
        if self._sink is not None:
            self._sink(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        """Resolve the pending request with the complete response."""
        done = self._done
        self._done = None
        if done is not None and not done.done():
            done.set_result(self._response(b"".join(self._body)))
        self._headers = {}
        self._body = []

    # -- API ---------------------------------------------------------------------

    def _response(self, body: bytes) -> Response:
        return Response(self._parser.get_status_code(), self._headers, body)

    def _fail(self, exc: Exception) -> None:
        for fut in (self._done, self._head):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        self._done = self._head = None

    def request(self, raw: bytes) -> asyncio.Future[Response]:
        """Send a pre-built request; the future resolves to its response."""
        if self._transport is None or self._transport.is_closing():
            raise HttpError("connection is closed")
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._done = fut
        self._transport.write(raw)
        return fut

    async def stream(self, raw: bytes, sink: BodySink) -> Response:
        """Send a request whose body is consumed incrementally by ``sink``.

        Returns the response head once headers arrive; ``closed`` resolves
        when the server ends the connection.
        """
        if self._transport is None or self._transport.is_closing():
            raise HttpError("connection is closed")
        loop = asyncio.get_running_loop()
        self._sink = sink
        self._head = loop.create_future()
        self._done = loop.create_future()
        self._done.add_done_callback(_consume)
        self._transport.write(raw)
        return await self._head

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._transport is not None:
            self._transport.close()


def _consume(fut: asyncio.Future[Response]) -> None:
    if not fut.cancelled():
        fut.exception()


async def connect(host: str, port: int, want_headers: bool = True) -> HttpConnection:
    """Open a TCP connection (TCP_NODELAY is the asyncio default)."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: HttpConnection(want_headers), host, port
    )
    return proto


class Client:
    """Convenience wrapper: one connection, simple ``call`` for setup steps."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.authority = f"{host}:{port}"
        self._conn: HttpConnection | None = None

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request and return the full response, reconnecting once."""
        raw = build_request(method, path, self.authority, headers, body)
        retries = (0,) if method == "POST" else (0, 1)  # never replay an append
        for attempt in retries:
            if self._conn is None or self._conn.closed.done():
                self._conn = await connect(self.host, self.port)
            try:
                resp = await self._conn.request(raw)
            except HttpError:
                self._conn = None
                if attempt == retries[-1]:
                    raise
                continue
            if resp.headers.get("connection", "").lower() == "close":
                self._conn.close()
                self._conn = None
            return resp
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the underlying connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
