"""Fixtures: ``app`` → ``client`` in-process, and ``live`` servers on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.harness import (
    ServerThread,
    WaitCounter,
    asgi_client,
    serve_in_thread,
    sqlite_available,
    sqlite_url,
)
from threadline.server import Config, create_app
from threadline.server.app import Application
from threadline.storage.base import LogStore
from threadline.storage.memory import MemoryLogStore
from threadline.storage.sqlite import SQLiteLogStore

SECRET = "test-secret-0123456789abcdef0123456789"
MAX_BODY = 4096


@pytest.fixture
def app() -> Application:
    """The app on a memory store, auth off, with a small body limit."""
    return create_app(Config(store="memory://", auth=False, max_body_bytes=MAX_BODY))


@pytest.fixture
async def client(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` (lifespan run around the test)."""
    async with asgi_client(app) as client:
        yield client


@pytest.fixture
def auth_app() -> Application:
    """The app on a memory store with auth on."""
    return create_app(Config(store="memory://", auth=True, secret=SECRET))


@pytest.fixture
async def auth_client(auth_app: Application) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``auth_app`` (no token set)."""
    async with asgi_client(auth_app) as client:
        yield client


@pytest.fixture(params=["memory", "sqlite"])
def serve(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., tuple[ServerThread, WaitCounter]]]:
    """Start uvicorn servers on port 0 with ``Config`` overrides; stopped after.

    Parametrized over the memory and SQLite stores.
    """
    if request.param == "sqlite" and not sqlite_available():
        pytest.skip("threadline.storage.sqlite cannot be imported yet")
    with ExitStack() as stack:
        count = 0

        def start(**overrides: Any) -> tuple[ServerThread, WaitCounter]:
            nonlocal count
            count += 1
            if request.param == "sqlite":
                overrides.setdefault("store", sqlite_url(tmp_path / f"live{count}.db"))
            return stack.enter_context(serve_in_thread(**overrides))

        yield start


Opener = Callable[[], Awaitable[LogStore]]
"""Opens a store; calling it again restarts it over the same data."""


@pytest.fixture(params=["memory", "sqlite"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Opener]:
    """Open the store (memory or SQLite); calling again restarts it on the same data."""
    stores: list[LogStore] = []
    memory = MemoryLogStore()

    async def open_store() -> LogStore:
        for running in stores:
            await running.stop()
        stores.clear()
        store: LogStore
        if request.param == "memory":
            store = memory
        else:
            store = SQLiteLogStore(str(tmp_path / "s.db"))
        await store.start()
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        await store.stop()
