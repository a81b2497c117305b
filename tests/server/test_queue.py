"""The waiting queue: a staff-only, server-written log per tenant, and its list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import SECRET
from tests.server.harness import asgi_client
from threadline.auth import create_token
from threadline.exceptions import Forbidden, ProtocolError
from threadline.protocol.actors import SERVER, Actor
from threadline.protocol.events import EventDraft
from threadline.protocol.queue import QUEUE_SESSION, SESSIONS_FEED
from threadline.server import Config, create_app
from threadline.server.sessions import SessionManager
from threadline.storage.base import LogStore

Opener = Callable[[], Awaitable[LogStore]]
TENANT = "acme"
AI = Actor("bot", "ai")
AGENT = Actor("agent_7", "agent", "Sam")


def request(event_id: str, mode: str = "warm") -> EventDraft:
    return EventDraft(
        "control.request",
        event_id,
        {"request_id": f"q-{event_id}", "mode": mode, "reason": "refund limit"},
    )


async def queue_events(sessions: SessionManager) -> list[dict[str, Any]]:
    read = await sessions.read(TENANT, QUEUE_SESSION, staff=True, after=None)
    return [
        e.to_json() for e in SessionManager.parse_events([r.data for r in read.records])
    ]


async def test_escalation_enters_and_acceptance_leaves_the_queue(
    opener: Opener,
) -> None:
    """A warm request logs queue.added (customer, metadata, cause), lists the
    session; an accept logs queue.removed and empties the list, each durably."""
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, "s1", customer="cust_1", metadata={"tags": ["vip"]})
    [published] = await sessions.publish(TENANT, "s1", AI, [request("r1")])
    [added] = await queue_events(sessions)
    assert added["type"] == "queue.added" and added["visibility"] == "staff"
    assert added["actor"]["role"] == "server"
    assert added["data"] == {
        "session": "s1",
        "reason": "requested",
        "cause": str(published.offset),
        "request_id": "q-r1",
        "mode": "warm",
        "customer": "cust_1",
        "metadata": {"tags": ["vip"]},
    }
    sessions = SessionManager(await opener())  # the list is in the store
    listed, offset = await sessions.waiting(TENANT)
    assert [entry["session"] for entry in listed] == ["s1"]
    assert str(offset) == added["offset"] == listed[0]["offset"]
    accept = EventDraft("control.accept", "a1", {"request_id": "q-r1"})
    await sessions.publish(TENANT, "s1", AGENT, [accept])
    _, removed = await queue_events(sessions)
    assert removed["type"] == "queue.removed"
    assert removed["data"]["reason"] == "accepted"
    assert removed["prev_hash"] == added["hash"]
    listed, offset = await sessions.waiting(TENANT)
    assert listed == [] and str(offset) == removed["offset"]


async def test_a_session_without_a_controller_waits_from_creation(
    opener: Opener,
) -> None:
    """Created with an empty floor, a session is listed at once."""
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, "s2", customer=None, controller_role=None)
    listed, _ = await sessions.waiting(TENANT)
    assert [(e["session"], e["reason"]) for e in listed] == [("s2", "released")]


async def test_waiting_lists_oldest_first_and_closing_removes(opener: Opener) -> None:
    """The list is in queue order; a closed session leaves it."""
    sessions = SessionManager(await opener())
    for sid in ("b", "a"):
        await sessions.create(TENANT, sid, customer=None)
        await sessions.publish(TENANT, sid, AI, [request(f"r-{sid}", "cold")])
    listed, _ = await sessions.waiting(TENANT)
    assert [e["session"] for e in listed] == ["b", "a"]
    closed = EventDraft("session.closed", "c1", {})
    await sessions.publish(TENANT, "b", Actor("svc", "service"), [closed])
    listed, _ = await sessions.waiting(TENANT)
    assert [e["session"] for e in listed] == ["a"]


async def test_only_the_server_writes_the_queue(opener: Opener) -> None:
    """Nobody creates a threadline.* session or publishes into the queue."""
    sessions = SessionManager(await opener())
    with pytest.raises(ProtocolError) as caught:
        await sessions.create(TENANT, QUEUE_SESSION, customer=None)
    assert caught.value.code == "reserved_session_id"
    await sessions.ensure_queue(TENANT)
    note = EventDraft("note", "n1", {"text": "hi"})
    with pytest.raises(Forbidden):
        await sessions.publish(TENANT, QUEUE_SESSION, Actor("svc", "service"), [note])
    await sessions.publish(TENANT, QUEUE_SESSION, SERVER, [note])  # the server may


def bearer(sub: str, role: str) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=["**"])
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        yield client


async def test_staff_list_and_read_the_queue_over_http(
    client: httpx.AsyncClient,
) -> None:
    """GET /v1/sessions?waiting=agent lists; the queue reads like a session."""
    ai = bearer("bot", "ai")
    created = await client.post("/v1/sessions", json={"id": "s1"}, headers=ai)
    assert created.status_code == 201, created.text
    escalate = {
        "type": "control.request",
        "id": "r1",
        "data": {"request_id": "q1", "mode": "warm"},
    }
    published = await client.post("/v1/sessions/s1/events", json=escalate, headers=ai)
    assert published.status_code == 200, published.text
    agent = bearer("agent_7", "agent")
    listed = await client.get("/v1/sessions?waiting=agent", headers=agent)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["queue"] == QUEUE_SESSION
    assert [entry["session"] for entry in body["sessions"]] == ["s1"]
    read = await client.get(
        f"/v1/sessions/{QUEUE_SESSION}/events?offset=-1", headers=agent
    )
    assert read.status_code == 200, read.text
    assert [e["type"] for e in read.json()] == ["queue.added"]
    assert read.headers["stream-next-offset"] == body["offset"]
    state = await client.get(f"/v1/sessions/{QUEUE_SESSION}", headers=agent)
    assert [e["session"] for e in state.json()["waiting"]] == ["s1"]


@pytest.mark.parametrize("role", ["customer", "ai"])
async def test_the_queue_is_not_for_customers_or_the_ai(
    client: httpx.AsyncClient, role: str
) -> None:
    """Listing or reading the queue without the right is 403, and a bad
    listing query is 400."""
    headers = bearer("x", role)
    listed = await client.get("/v1/sessions?waiting=agent", headers=headers)
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "forbidden"
    read = await client.get(
        f"/v1/sessions/{QUEUE_SESSION}/events?offset=-1", headers=headers
    )
    assert read.status_code == 403
    bad = await client.get("/v1/sessions", headers=bearer("a", "agent"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_query"


async def test_creating_a_reserved_session_id_is_400(client: httpx.AsyncClient) -> None:
    """threadline.* ids are the server's."""
    created = await client.post(
        "/v1/sessions", json={"id": "threadline.mine"}, headers=bearer("svc", "service")
    )
    assert created.status_code == 400
    assert created.json()["error"]["code"] == "reserved_session_id"


async def test_every_new_session_is_announced_in_the_feed(opener: Opener) -> None:
    """session.created in the creation commit, once, in creation order; an
    ensure of an existing session announces nothing."""
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, "a", customer="cust_1", metadata={"tags": ["x"]})
    await sessions.create(TENANT, "b", customer=None, controller_role=None)
    await sessions.create(TENANT, "a", customer="cust_1")
    sessions = SessionManager(await opener())
    read = await sessions.read(TENANT, SESSIONS_FEED, staff=True, after=None)
    events = SessionManager.parse_events([r.data for r in read.records])
    assert [(e.type, e.data["session"]) for e in events] == [
        ("session.created", "a"),
        ("session.created", "b"),
    ]
    assert events[0].data["customer"] == "cust_1"
    assert events[0].data["controller_role"] == "ai"
    assert events[1].data["controller_role"] is None
    assert all(e.visibility == "staff" and e.actor.role == "server" for e in events)


@pytest.mark.parametrize(("role", "status"), [("customer", 403), ("ai", 200)])
async def test_the_feed_is_for_staff(
    client: httpx.AsyncClient, role: str, status: int
) -> None:
    """Every staff role reads the feed; a customer gets 403."""
    created = await client.post(
        "/v1/sessions", json={"id": "s9"}, headers=bearer("svc", "service")
    )
    assert created.status_code == 201
    read = await client.get(
        f"/v1/sessions/{SESSIONS_FEED}/events?offset=-1", headers=bearer("x", role)
    )
    assert read.status_code == status, read.text
    if status == 200:
        assert [e["data"]["session"] for e in read.json()] == ["s9"]
