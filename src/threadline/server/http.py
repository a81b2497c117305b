"""Small raw-ASGI helpers shared by the hot-path handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

__all__ = [
    "ASGIApp",
    "BodyTooLarge",
    "Headers",
    "Receive",
    "Scope",
    "Send",
    "header_map",
    "read_body",
    "error_body",
    "send_response",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class BodyTooLarge(Exception):
    """The request body passed the configured maximum (internal signal for 413)."""


def header_map(scope: Scope) -> dict[bytes, bytes]:
    """Request headers by lower-cased name; repeated headers are comma-joined."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in headers:
            headers[name] = headers[name] + b"," + value
        else:
            headers[name] = value
    return headers


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    """Read the whole request body, refusing early past ``limit`` bytes.

    Raises:
        BodyTooLarge: the declared length or the bytes received pass the limit;
            the rest of the body is not read.
    """
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_response(
    send: Send, status: int, headers: Headers, body: bytes = b"", *, head: bool = False
) -> None:
    """Send a complete response (no body for HEAD, 204 and 304)."""
    if status in (204, 304) or head:
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """The JSON error body every 4xx/5xx carries: ``{"error": {"code", "message"}}``."""
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})
