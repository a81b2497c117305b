"""A console subscribed to the waiting queue sees a new escalation within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import threadline
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token
from threadline.protocol.queue import QUEUE_SESSION

SECRET = "e2e-queue-secret-0123456789abcdef012345"


def token(sub: str, role: str) -> str:
    return create_token(SECRET, sub=sub, role=role, sessions=["**"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    store = f"sqlite:///{tmp_path}/queue.db"
    with serve_in_thread(store=store, auth=True, secret=SECRET) as (server, _):
        yield server


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_console_sees_an_escalation_within_a_second(
    server: ServerThread, transport: str
) -> None:
    """List, subscribe from the listed offset, escalate: queue.added arrives
    live within 1 s, and a reconnecting console resumes without a gap."""
    headers = {"authorization": f"Bearer {token('agent_7', 'agent')}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        listed = (await http.get("/v1/sessions?waiting=agent", headers=headers)).json()
    assert listed["sessions"] == []
    console = threadline.connect(
        server.url,
        token("agent_7", "agent"),
        transport=transport,  # type: ignore[arg-type]
    )
    ai = threadline.connect(server.url, token("bot", "ai"))
    async with console, ai:
        await ai.create_session("order-9")
        async with console.session(QUEUE_SESSION).subscribe(listed["offset"]) as events:
            sent = time.monotonic()
            await ai.session("order-9").publish(
                "control.request", {"request_id": "q1", "mode": "warm"}
            )
            event = await asyncio.wait_for(anext(aiter(events)), 5_000 * MS)
            latency = time.monotonic() - sent
    assert event.type == "queue.added"
    assert event.data["session"] == "order-9"
    assert latency < 1.0, f"queue.added took {latency:.3f} s"
