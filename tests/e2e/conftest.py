"""Fixtures: a real server on port 0 over a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.harness import (
    ServerThread,
    WaitCounter,
    serve_in_thread,
    sqlite_available,
    sqlite_url,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerThread, WaitCounter]]:
    """uvicorn in a thread on port 0, SQLite store, auth off; with its waiter count."""
    if not sqlite_available():
        pytest.skip("threadline.storage.sqlite cannot be imported yet")
    with serve_in_thread(
        store=sqlite_url(tmp_path / "e2e.db"), long_poll_timeout=10.0
    ) as pair:
        yield pair
