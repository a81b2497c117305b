"""A TCP proxy for fault injection: cut connections, refuse new ones, hold replies.

It runs in the test's event loop in front of a real server (STYLE X6: cut the
connection mid-stream instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Coroutine
from typing import Any

__all__ = ["Proxy", "proxy_to"]


class Proxy:
    """Forwards TCP connections from ``url`` to ``host:port``."""

    def __init__(self, host: str, port: int, *, upstream_rcvbuf: int = 0) -> None:
        self.host = host
        self.port = port
        self.upstream_rcvbuf = upstream_rcvbuf
        """SO_RCVBUF of connections to the server (0: the system's autotuning);
        small, a held proxy makes the server's writes block soon."""
        self.url = ""
        self.accepted = 0
        """Connections accepted (and forwarded) so far."""
        self.refused = 0
        """Connections refused while :meth:`refuse` was in force."""
        self.replies = 0
        """Chunks forwarded from the server to the client."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Faults

    def cut(self) -> None:
        """Drop every open connection at once (RST, no close handshake)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def refuse(self) -> None:
        """Close new connections on arrival until :meth:`accept`."""
        self._refusing = True

    def accept(self) -> None:
        """Forward new connections again."""
        self._refusing = False

    def hold(self) -> None:
        """Stop forwarding what the server sends (requests still pass)."""
        self._flowing.clear()

    def release(self) -> None:
        """Forward what the server sent, and keep forwarding."""
        self._flowing.set()

    # Forwarding

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._refusing:
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.upstream_rcvbuf:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, self.upstream_rcvbuf
                )
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        upstream = self._spawn(self._pipe(reader, up_writer, held=False))
        downstream = self._spawn(self._pipe(up_reader, writer, held=True))
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, held: bool
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                if held:
                    await self._flowing.wait()
                    if writer.transport.is_closing():
                        return
                    self.replies += 1
                writer.write(data)
                await writer.drain()


@contextlib.asynccontextmanager
async def proxy_to(url: str, *, upstream_rcvbuf: int = 0) -> AsyncIterator[Proxy]:
    """A started proxy in front of the server at ``url``."""
    host, port = url.removeprefix("http://").split(":")
    proxy = Proxy(host, int(port), upstream_rcvbuf=upstream_rcvbuf)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
