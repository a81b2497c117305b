"""Fixtures: a real server on port 0 (auth on), workers of it, and the people
around them (a customer, an observer with a service token, a human agent)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

import threadline
from tests.client.conftest import SECRET, token
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.agent import Worker
from threadline.client import Client, ExponentialBackoff, Subscription
from threadline.protocol.events import Event
from threadline.server import Config

MakeWorker = Callable[..., Any]
MakeClient = Callable[..., Any]

TIMEOUT = 5_000 * MS


def presence_served() -> bool:
    """Whether this server build has presence (``Config.presence``)."""
    return "presence" in {f.name for f in dataclasses.fields(Config)}


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """uvicorn on a free port, memory store, auth on, presence off."""
    with serve_in_thread(auth=True, secret=SECRET) as (server, _):
        yield server


@pytest.fixture
def presence_server() -> Iterator[ServerThread]:
    """As ``server``, with presence on and a short presence grace (50 ms)."""
    if not presence_served():
        pytest.skip(
            "the server has no presence yet (WebSocket presence is not_supported)"
        )
    with serve_in_thread(
        auth=True, secret=SECRET, presence=True, presence_grace=50 * MS
    ) as (server, _):
        yield server


@pytest.fixture
async def make_client(server: ServerThread) -> AsyncIterator[MakeClient]:
    """Connect clients of ``server`` (or ``url=``); closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(
            sub: str = "svc", role: str = "service", **options: Any
        ) -> Client:
            url = options.pop("url", server.url)
            options.setdefault("timeout", TIMEOUT)
            options.setdefault("backoff", ExponentialBackoff(5 * MS, 50 * MS))
            client = threadline.connect(url, token(sub, role), **options)
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def make_worker(server: ServerThread) -> AsyncIterator[MakeWorker]:
    """Start workers of ``server`` (or ``url=``) as the AI ``bot``; closed after."""
    async with AsyncExitStack() as stack:

        async def make(respond: Any, **options: Any) -> Worker:
            url = options.pop("url", server.url)
            sub = options.pop("sub", "bot")
            options.setdefault("device", "agent-1")
            options.setdefault("timeout", TIMEOUT)
            options.setdefault("backoff", ExponentialBackoff(5 * MS, 50 * MS))
            options.setdefault("discover", False)
            worker = Worker(url, token(sub, "ai"), respond, **options)
            return await stack.enter_async_context(worker)

        yield make


@pytest.fixture
async def http(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client of the server, to check the log over the wire."""
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


async def staff_log(http: httpx.AsyncClient, session: str) -> list[dict[str, Any]]:
    """Every event of ``session`` in the staff view, over plain HTTP."""
    response = await http.get(
        f"/v1/sessions/{session}/events",
        params={"offset": "-1"},
        headers={"authorization": f"Bearer {token()}"},
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def state_of(http: httpx.AsyncClient, session: str) -> dict[str, Any]:
    """The session's state snapshot (staff view)."""
    response = await http.get(
        f"/v1/sessions/{session}", headers={"authorization": f"Bearer {token()}"}
    )
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def until(
    events: Subscription, predicate: Callable[[Event], bool], timeout: float = TIMEOUT
) -> Event:
    """Read ``events`` until one matches ``predicate``; return it."""
    async with asyncio.timeout(timeout):
        async for event in events:
            if predicate(event):
                return event
    raise AssertionError("the subscription ended first")


def of_type(kind: str, **data: Any) -> Callable[[Event], bool]:
    """A predicate: an event of type ``kind`` whose data holds ``data``."""
    return lambda e: e.type == kind and all(e.data.get(k) == v for k, v in data.items())
