"""Dead producers: the server ends messages and runs silent for the lease."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import threadline
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.server.sessions import SessionManager
from threadline.server.sweeper import LeaseSweeper, sweep_interval
from threadline.storage.base import LogStore

Opener = Callable[[], Awaitable[LogStore]]
AI = Actor("bot", "ai")
T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def start(message_id: str, run_id: str | None = None) -> EventDraft:
    data = {"message_id": message_id, "role": "assistant"}
    if run_id is not None:
        data["run_id"] = run_id
    return EventDraft("message.start", f"s-{message_id}", data)


async def test_sweep_ends_silent_work_in_every_tenant_after_a_restart(
    opener: Opener,
) -> None:
    """Past the lease, open messages and runs end error/producer_lost, in
    each tenant, even when the server restarted in between; live ones stay."""
    clock = Clock()
    sessions = SessionManager(await opener(), clock=clock)
    for tenant in ("acme", "zed"):
        await sessions.create(tenant, "s1", customer=None)
        run = EventDraft("run.start", "r", {"run_id": "run-1"})
        await sessions.publish(tenant, "s1", AI, [run, start("m1", "run-1")])
    await sessions.create("acme", "s2", customer=None)
    await sessions.publish("acme", "s2", AI, [start("m2")])
    assert await sessions.sweep(30.0) == 0
    clock.now += 20
    await sessions.publish("acme", "s2", AI, [start("m3")])  # s2 stays alive
    clock.now += 15
    sessions = SessionManager(await opener(), clock=clock)
    assert await sessions.sweep(30.0) == 3
    for tenant in ("acme", "zed"):
        read = await sessions.read(tenant, "s1", staff=True, after=None)
        events = SessionManager.parse_events([r.data for r in read.records])
        ends = [(e.type, e.data["status"], e.data["reason"]) for e in events[2:]]
        assert ends == [
            ("message.end", "error", "producer_lost"),
            ("run.end", "error", "producer_lost"),
        ]
        assert all(e.actor.role == "server" for e in events[2:])
    snapshot = await sessions.snapshot("acme", "s2", staff=True)
    assert [m["message_id"] for m in snapshot["messages"]] == ["m3"]
    # m2 was silent too: only m3, which spoke 15 s ago, is still open.
    assert await sessions.sweep(30.0) == 0
    clock.now += 30
    assert await sessions.sweep(30.0) == 1
    assert await sessions.store.index.tenants("open") == []


def test_sweep_interval_is_a_tenth_of_the_lease_within_bounds() -> None:
    """Ended between lease and lease + interval; never too busy nor too late."""
    assert sweep_interval(30.0) == 3.0
    assert sweep_interval(0.2) == 0.1
    assert sweep_interval(600.0) == 5.0
    with pytest.raises(ValueError):
        LeaseSweeper(None, 0)  # type: ignore[arg-type]


SECRET = "sweeper-secret-0123456789abcdef0123456"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    store = f"sqlite:///{tmp_path}/sweep.db"
    with serve_in_thread(store=store, auth=True, secret=SECRET, lease=0.3) as pair:
        yield pair[0]


async def test_a_dead_producer_is_ended_live(server: ServerThread) -> None:
    """A subscriber sees the server end a message its producer abandoned."""
    token = create_token(SECRET, sub="bot", role="ai", sessions=["**"])
    async with threadline.connect(server.url, token) as client:
        await client.create_session("s1")
        session = client.session("s1")
        async with session.subscribe() as events:
            await session.publish(
                "message.start", {"message_id": "m1", "role": "assistant"}
            )
            async with asyncio.timeout(5_000 * MS):
                async for event in events:
                    if event.type == "message.end":
                        break
    assert event.actor.role == "server"
    assert (event.data["status"], event.data["reason"]) == ("error", "producer_lost")
