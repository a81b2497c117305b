"""Fixtures: a real server on port 0 (auth on) → clients of it, over each transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

import threadline
from tests.client.proxy import Proxy, proxy_to
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token
from threadline.client import Client, ExponentialBackoff

SECRET = "client-test-secret-0123456789abcdef0123"

MakeClient = Callable[..., Any]


def token(sub: str = "svc", role: str = "service", **claims: Any) -> str:
    """A token for the test server, reaching every session by default."""
    claims.setdefault("sessions", ["**"])
    return create_token(SECRET, sub=sub, role=role, **claims)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """uvicorn on a free port, memory store, auth on with :data:`SECRET`."""
    with serve_in_thread(auth=True, secret=SECRET) as (server, _):
        yield server


async def has_websocket(url: str) -> bool:
    """Whether the server at ``url`` serves ``/v1/ws`` (it is being built)."""
    try:
        async with ws_connect(
            url.replace("http://", "ws://") + "/v1/ws",
            subprotocols=[Subprotocol("threadline.v1")],
            open_timeout=2_000 * MS,
        ):
            return True
    except (InvalidStatus, OSError):
        return False


@pytest.fixture(params=["ws", "sse"])
async def transport(request: pytest.FixtureRequest, server: ServerThread) -> str:
    """Each transport; ``ws`` is skipped while the server has no ``/v1/ws``."""
    if request.param == "ws" and not await has_websocket(server.url):
        pytest.skip("the server has no /v1/ws yet")
    name: str = request.param
    return name


@pytest.fixture
async def proxy(server: ServerThread) -> AsyncIterator[Proxy]:
    """A TCP proxy in front of the server, to cut, refuse or hold connections."""
    async with proxy_to(server.url) as proxy:
        yield proxy


@pytest.fixture
async def make_client(
    server: ServerThread, transport: str
) -> AsyncIterator[MakeClient]:
    """Connect clients of the server (or ``url=``) over ``transport``; closed after."""
    async with AsyncExitStack() as stack:

        async def make(
            sub: str = "svc", role: str = "service", **options: Any
        ) -> Client:
            url = options.pop("url", server.url)
            options.setdefault("transport", transport)
            options.setdefault("timeout", 5_000 * MS)
            options.setdefault("backoff", ExponentialBackoff(5 * MS, 50 * MS))
            the_token = options.pop("token", None) or token(sub, role)
            client = threadline.connect(url, the_token, **options)
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def http(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client of the server, to check the SDK against the wire."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5_000 * MS) as client:
        yield client


async def stored(
    http: httpx.AsyncClient, session: str, sub: str = "svc", role: str = "service"
) -> list[dict[str, Any]]:
    """Every event of ``session`` as ``sub`` reads it over plain HTTP."""
    response = await http.get(
        f"/v1/sessions/{session}/events",
        params={"offset": "-1"},
        headers={"authorization": f"Bearer {token(sub, role)}"},
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events
