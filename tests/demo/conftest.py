"""Fixtures: ``threadline demo``'s app on a real uvicorn (port 0), in a thread."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from tests.server.harness import (
    bind_free_port,
    start_in_thread,
    stop_thread,
    uvicorn_config,
)
from threadline.demo.app import DemoApp, DemoSettings


@dataclass
class DemoServer:
    """The demo's app, served on ``url``."""

    app: DemoApp
    url: str


def serve_demo(**settings: object) -> Generator[DemoServer, None, None]:
    """Bind port 0 first (the AI needs the URL), then run uvicorn in a thread."""
    sock, url = bind_free_port()
    app = DemoApp(DemoSettings(url=url, **settings))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn_config(app))
    thread = start_in_thread(server, sock, name="uvicorn-demo")
    try:
        yield DemoServer(app, url)
    finally:
        stop_thread(server, thread)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    """The demo on a SQLite file (its embedded default), AI at a test pace."""
    yield from serve_demo(store=f"sqlite:///{tmp_path}/demo.db", pace=0.0005)
