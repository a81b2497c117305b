"""Fixtures: ``threadline demo``'s app on a real uvicorn (port 0), in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from tests.utils import MS
from threadline.demo.app import DemoApp, DemoSettings


@dataclass
class DemoServer:
    """The demo's app, served on ``url``."""

    app: DemoApp
    url: str


def serve_demo(**settings: object) -> Iterator[DemoServer]:
    """Bind port 0 first (the AI needs the URL), then run uvicorn in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = DemoApp(DemoSettings(url=url, **settings))  # type: ignore[arg-type]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ws="websockets-sansio",
            ws_per_message_deflate=False,
        )
    )

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="uvicorn-demo", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10_000 * MS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo server did not start")
        time.sleep(5 * MS)
    try:
        yield DemoServer(app, url)
    finally:
        server.should_exit = True
        thread.join(10_000 * MS)
        assert not thread.is_alive(), "the demo server did not stop"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    """The demo on a SQLite file (its embedded default), AI at a test pace."""
    yield from serve_demo(store=f"sqlite:///{tmp_path}/demo.db", pace=0.0005)
