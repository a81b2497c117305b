"""A minimal, fast WebSocket client for the load generator (RFC 6455, text only).

The handshake and the frames are written by hand on an ``asyncio.Protocol``,
like the HTTP client in ``rawhttp.py``: no extension is offered (so nothing
is compressed), the subprotocol is ``threadline.v1``, and each complete
message's payload goes to a callback as ``bytes`` together with the
``perf_counter_ns()`` of the read that completed it. The payload is never
decoded to ``str`` here: the benchmark scans it with ``bytes`` searches and a
regular expression, which keeps the per-event cost of a reader low.

Pings are answered with pongs (uvicorn pings every 20 s). Client frames are
masked as the RFC requires, with websockets' C ``apply_mask``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from typing import cast

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the wheel ships the C extension
    from websockets.utils import apply_mask

SUBPROTOCOL = "threadline.v1"
OnMessage = Callable[[bytes, int], None]

_TEXT, _BINARY, _CONT, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class WsError(Exception):
    """The handshake failed or the connection broke."""


class WsConnection(asyncio.Protocol):
    """One client WebSocket. Use :func:`connect`, then :meth:`send_text`.

    Args:
        on_message: Called with each complete text message and the
            ``perf_counter_ns()`` at which its last bytes were read.
    """

    def __init__(self, on_message: OnMessage, authority: str) -> None:
        self.on_message = on_message
        self._authority = authority
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._open = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()
        """Resolves to the close code (1006 when the TCP connection just ended)."""
        self.frames_received = 0
        self.bytes_received = 0

    # asyncio.Protocol methods

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self._transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /v1/ws HTTP/1.1\r\nHost: {self._authority}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        self._transport.write(request.encode("latin-1"))

    def data_received(self, data: bytes) -> None:
        """Parse frames; hand each complete text message to the callback."""
        now = time.perf_counter_ns()
        self.bytes_received += len(data)
        buf = self._buf
        buf += data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            if not head.startswith("HTTP/1.1 101") or SUBPROTOCOL not in head:
                self._fail(WsError(f"handshake refused: {head.splitlines()[0]}"))
                return
            self._open = True
            if not self.opened.done():
                self.opened.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head_size = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head_size = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head_size = 10
            if b1 & 0x80:
                self._fail(WsError("the server masked a frame"))
                return
            end = pos + head_size + length
            if end > size:
                break
            payload = bytes(buf[pos + head_size : end])
            pos = end
            self._frame(b0, payload, now)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        """Mark the connection closed (1006 unless a close frame came first)."""
        self._fail(WsError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(1006)

    # Public methods

    def send_text(self, text: bytes) -> None:
        """Send one text message (already UTF-8)."""
        self._send(_TEXT, text)

    def close(self, code: int = 1000) -> None:
        """Send a close frame; the server answers and ends the TCP connection."""
        if self._transport is not None and not self._transport.is_closing():
            self._send(_CLOSE, struct.pack("!H", code))

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self._transport is not None:
            self._transport.abort()

    # Private methods

    def _frame(self, b0: int, payload: bytes, now: int) -> None:
        opcode = b0 & 0x0F
        if opcode == _TEXT or opcode == _CONT:
            if not b0 & 0x80:  # fragmented: keep until the final frame
                self._fragments.append(payload)
                return
            if self._fragments:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._fragments = []
            self.frames_received += 1
            self.on_message(payload, now)
        elif opcode == _PING:
            self._send(_PONG, payload)
        elif opcode == _CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if not self.closed.done():
                self.closed.set_result(code)
            if self._transport is not None and not self._transport.is_closing():
                self._send(_CLOSE, payload[:2])
                self._transport.close()
        elif opcode == _BINARY:
            self._fail(WsError("binary frame"))

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise WsError("connection is closed")
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        mask = os.urandom(4)
        transport.write(head + mask + apply_mask(payload, mask))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self._transport is not None:
            self._transport.close()


async def connect(
    host: str, port: int, on_message: OnMessage, timeout: float = 10.0
) -> WsConnection:
    """Open a WebSocket to ``/v1/ws`` with subprotocol ``threadline.v1``.

    Raises:
        WsError: the server refused the upgrade.
        OSError, TimeoutError: the TCP connection failed.
    """
    loop = asyncio.get_running_loop()
    authority = f"{host}:{port}"
    async with asyncio.timeout(timeout):
        _, proto = await loop.create_connection(
            lambda: WsConnection(on_message, authority), host, port
        )
        await proto.opened
    return proto
