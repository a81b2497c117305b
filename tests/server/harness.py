"""Servers for tests: in-process ASGI, uvicorn in a thread, ``threadline serve``.

Also a minimal SSE reader and a raw HTTP/1.1 exchange, independent of the
server's own encoders, so tests check the wire and not the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.utils import MS, wait_for
from threadline.server import Config, create_app
from threadline.server.app import Application
from threadline.storage import LogStore, open_log_store

__all__ = [
    "MS",
    "Event",
    "RawConnection",
    "ServerProcess",
    "ServerThread",
    "WaitCounter",
    "asgi_client",
    "call_asgi",
    "count_waits",
    "lifespan",
    "serve_args",
    "serve_in_thread",
    "server_process",
    "sqlite_available",
    "sqlite_url",
    "sse_events",
    "wait_for",
]


def sqlite_available() -> bool:
    """Whether the SQLite log store has landed."""
    try:
        from threadline.storage.sqlite import SQLiteLogStore  # noqa: F401
    except ImportError:
        return False
    return True


# Store instrumentation


@dataclass
class WaitCounter:
    """How many ``store.wait`` calls are in progress (server-side waiters)."""

    active: int = 0
    started: int = 0


def count_waits(store: LogStore) -> WaitCounter:
    """Wrap ``store.wait`` on this instance to count waiters (a recording double)."""
    counter = WaitCounter()
    inner = store.wait

    async def wait(*args: Any, **kwargs: Any) -> bool:
        counter.active += 1
        counter.started += 1
        try:
            return await inner(*args, **kwargs)
        finally:
            counter.active -= 1

    store.wait = wait  # type: ignore[method-assign]
    return counter


# In-process


@contextlib.asynccontextmanager
async def lifespan(app: Application) -> AsyncIterator[Application]:
    """Run the ASGI lifespan of ``app``: store started inside, stopped after."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))
    try:
        await inbox.put({"type": "lifespan.startup"})
        message = await outbox.get()
        assert message["type"] == "lifespan.startup.complete", message
        yield app
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5_000 * MS)


@contextlib.asynccontextmanager
async def asgi_client(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process, lifespan included."""
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            yield client


@dataclass
class ASGIResult:
    """What a raw ASGI call sent back."""

    status: int
    headers: dict[str, str]
    body: bytes


async def call_asgi(
    app: Application,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    receive: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    observe: Callable[[dict[str, Any]], None] | None = None,
) -> ASGIResult:
    """Call the app with a hand-built scope (``path`` used verbatim, not normalized)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    messages: list[dict[str, Any]] = []

    async def empty() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if observe is not None:
            observe(message)
        messages.append(message)

    await app(scope, receive or empty, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    body = b"".join(m.get("body", b"") for m in messages[1:])
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return ASGIResult(start["status"], names, body)


# uvicorn in a thread


def bind_free_port() -> tuple[socket.socket, str]:
    """A socket bound to a free port of 127.0.0.1, and its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def uvicorn_config(app: Any, *, graceful: int = 1) -> uvicorn.Config:
    """uvicorn as the commands run it (WebSocket implementation, no deflate)."""
    return uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful,
        ws="websockets-sansio",  # as threadline serve runs it
        ws_per_message_deflate=False,
    )


def start_in_thread(
    server: uvicorn.Server,
    sock: socket.socket,
    *,
    ready: Callable[[], bool] = lambda: True,
    timeout: float = 10_000 * MS,
    name: str = "uvicorn",
) -> threading.Thread:
    """Run ``server`` on ``sock`` in a thread; return once it listens and
    ``ready()`` holds (a condition, polled, with a deadline)."""

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not (server.started and ready()):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(5 * MS)
    return thread


def stop_thread(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Stop a server started by :func:`start_in_thread`, and wait for it."""
    server.should_exit = True
    thread.join(10_000 * MS)
    assert not thread.is_alive(), f"{thread.name} did not stop"


@dataclass
class ServerThread:
    """A real uvicorn serving ``app`` on a free port, in a background thread."""

    app: Application
    url: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        sock, self.url = bind_free_port()
        self.server = uvicorn.Server(uvicorn_config(self.app))
        self.thread = start_in_thread(self.server, sock)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            stop_thread(self.server, self.thread)


@contextlib.contextmanager
def serve_in_thread(**overrides: Any) -> Iterator[tuple[ServerThread, WaitCounter]]:
    """Start a server (memory store, auth off unless overridden); count its waiters.

    Presence is off unless ``presence=True``: it logs ``participant.joined``
    when a subscriber connects, which transport tests that count events exactly
    do not expect (``tests/server/test_presence*.py`` turn it on).
    """
    options: dict[str, Any] = {"store": "memory://", "auth": False, "presence": False}
    options.update(overrides)
    config = Config(**options)
    store = open_log_store(config.store)
    counter = count_waits(store)
    server = ServerThread(create_app(config, store=store))
    try:
        server.start()
        yield server, counter
    finally:
        server.stop()


# threadline serve as a subprocess


_LISTENING = re.compile(r"threadline: listening on (http://\S+)")


@dataclass
class ServerProcess:
    """``threadline serve`` in a subprocess; stdout and stderr merged and recorded."""

    args: list[str]
    env: dict[str, str] | None = None
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _listening: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> None:
        if self.env is None:
            env = {k: v for k, v in os.environ.items() if k != "THREADLINE_SECRET"}
        else:
            env = dict(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "threadline", "serve", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = _LISTENING.search(line)
            if match and not self.url:
                self.url = match[1]
                self._listening.set()
        self._listening.set()  # EOF: wake anyone waiting

    async def started(self, timeout: float = 15_000 * MS) -> str:
        """Wait for the listening line; return the base URL."""
        await asyncio.to_thread(self._listening.wait, timeout)
        if not self.url:
            raise AssertionError(f"server did not start:\n{self.output}")
        return self.url

    def wait_started(self, timeout: float = 15_000 * MS) -> str:
        self._listening.wait(timeout)
        if not self.url:
            raise AssertionError(f"server did not start:\n{self.output}")
        return self.url

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its return code."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def close(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve_args(store: str, *extra: str) -> list[str]:
    """Arguments for ``threadline serve`` on a free port."""
    return ["--store", store, "--host", "127.0.0.1", "--port", "0", *extra]


def sqlite_url(path: Path) -> str:
    """``sqlite:////abs/path`` for a file."""
    return f"sqlite:///{path.resolve()}"


# SSE and raw HTTP


@dataclass
class Event:
    """One SSE event as read off the wire."""

    event: str
    data: str


async def sse_events(response: httpx.Response) -> AsyncGenerator[Event, None]:
    """Decode an SSE response into events (``data:`` lines joined with LF)."""
    name = ""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or name:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            name = value
        elif field_name == "data":
            data.append(value)


@dataclass
class RawResponse:
    """A response read with :func:`raw_exchange`."""

    status: int
    headers: dict[str, str]


class RawConnection:
    """One persistent HTTP/1.1 connection over plain sockets (exact request timing)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        return cls(reader, writer)

    async def send(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> None:
        """Write a body-less request and wait until the kernel has it."""
        lines = [f"{method} {target} HTTP/1.1", "Host: test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def response(self, *, head: bool = False) -> RawResponse:
        """Read a response head; skip its Content-Length body (none for HEAD)."""
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length and not head:
            await self.reader.readexactly(length)
        return RawResponse(int(status_line.split()[1]), headers)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def server_process(
    args: list[str], env: dict[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Run ``threadline serve ARGS`` until the block ends (then SIGKILL if still up)."""
    process = ServerProcess(args, env)
    process.start()
    try:
        await process.started()
        yield process
    finally:
        await asyncio.to_thread(process.close)
