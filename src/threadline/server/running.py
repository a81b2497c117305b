"""Run an app on uvicorn the way ``threadline serve`` and ``threadline demo`` do.

One place for what both commands need: binding the socket (so port 0 and a
clear error come before anything starts), uvloop and httptools, the
``websockets-sansio`` WebSocket implementation with pings (presence drops a
peer that vanished), a SIGTERM that drains (WebSockets closed ``4002`` after
what is queued, long-polls answered) and exits 0, and start-up objects frozen
out of the garbage collector.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn

__all__ = ["Drainable", "bind", "run_uvicorn"]


class _Closing(Protocol):
    async def wait_closed(self, timeout: float) -> Any: ...


class Drainable(Protocol):
    """An app with a graceful stop: :class:`~threadline.server.app.Application`
    or the demo's app."""

    @property
    def websockets(self) -> _Closing: ...

    def drain(self) -> None: ...


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: a free one), not listening yet.

    Raises:
        OSError: the address cannot be bound.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_uvicorn(
    app: Drainable,
    sock: socket.socket,
    *,
    log_level: str,
    drain_timeout: float,
    access_log: bool = False,
    ws_deflate: bool = False,
    on_started: Callable[[], None] = lambda: None,
) -> bool:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM; whether it started.

    Args:
        drain_timeout: Seconds a stop waits for requests in flight (open
            WebSockets get at most 5 of them to close ``4002``).
        ws_deflate: permessage-deflate; it costs ~30 % of fan-out throughput
            (docs/benchmarks.md) and deltas are tiny, so it is off by default.
        on_started: Called once the socket listens (to print the URLs).
    """
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=ws_deflate,
        # Presence: a peer that vanished without closing is dropped within
        # 10 s, then its device's grace period runs (docs/topics/presence.md).
        ws_ping_interval=5.0,
        ws_ping_timeout=5.0,
        lifespan="on",
        access_log=access_log,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, int(round(drain_timeout))),
        timeout_keep_alive=30,
        server_header=False,
        proxy_headers=False,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM and sig in self._captured_signals:
                # A drained SIGTERM is a clean stop: exit 0, not "killed by signal".
                self._captured_signals.remove(sig)
            loop = getattr(self, "_threadline_loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(app.drain)

        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn closes open WebSockets 1012 at once: close them 4002 first,
            # after what is queued for them (drain() already ran on SIGTERM).
            app.drain()
            await app.websockets.wait_closed(min(5.0, drain_timeout))
            await super().shutdown(sockets=sockets)

        async def startup(self, sockets: Any = None) -> None:
            self._threadline_loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)
            if self.started:
                on_started()

    server = Server(config)
    # Objects from imports and start-up never die: keep them out of every
    # collection (full collections walked ~42k of them: 30-55 ms pauses under
    # load, the p99 tail of the session benchmarks).
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])
    return bool(server.started)
