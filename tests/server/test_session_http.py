"""The session HTTP API: create, publish, read, state, cursors, my sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import SECRET
from tests.server.harness import asgi_client
from threadline.auth import create_token
from threadline.server import Config, create_app
from threadline.server.limits import RateLimiter


def token(sub: str, role: str, sessions: list[str] | None = None, **extra: Any) -> str:
    globs = sessions if sessions is not None else ["**"]
    return create_token(SECRET, sub=sub, role=role, sessions=globs, **extra)


def auth(sub: str, role: str, sessions: list[str] | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token(sub, role, sessions)}"}


CUSTOMER = auth("cust_42", "customer", ["order-1"])
OTHER_CUSTOMER = auth("cust_99", "customer", ["order-1"])
AI = auth("bot", "ai")
SERVICE = auth("svc", "service")


def message(event_id: str, text: str, role: str = "user") -> dict[str, Any]:
    return {
        "type": "message",
        "id": event_id,
        "data": {
            "message_id": f"m-{event_id}",
            "role": role,
            "parts": [{"type": "text", "text": text}],
        },
    }


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        yield client


async def create(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/sessions", json={"id": "order-1"}, headers=CUSTOMER
    )
    assert response.status_code == 201, response.text


async def test_customer_creates_own_session(client: httpx.AsyncClient) -> None:
    """A customer creating a session becomes its customer; again is 200."""
    await create(client)
    again = await client.post("/v1/sessions", json={"id": "order-1"}, headers=CUSTOMER)
    assert again.status_code == 200
    assert again.json()["customer"] == "cust_42"


async def test_publish_and_read_back(client: httpx.AsyncClient) -> None:
    """Published events come back in order with offsets and the verified actor."""
    await create(client)
    published = await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    assert published.status_code == 200, published.text
    offset = published.json()["offset"]
    read = await client.get("/v1/sessions/order-1/events?offset=-1", headers=CUSTOMER)
    [event] = read.json()
    assert event["offset"] == offset == read.headers["stream-next-offset"]
    assert event["actor"]["id"] == "cust_42" and event["actor"]["role"] == "customer"
    assert read.headers["stream-up-to-date"] == "true"


async def test_payload_actor_is_ignored(client: httpx.AsyncClient) -> None:
    """Whatever actor the payload claims, the stored actor is the token's."""
    await create(client)
    forged = {**message("c1", "hi"), "actor": {"id": "agent_7", "role": "agent"}}
    await client.post("/v1/sessions/order-1/events", json=forged, headers=CUSTOMER)
    read = await client.get("/v1/sessions/order-1/events", headers=SERVICE)
    assert read.json()[0]["actor"]["id"] == "cust_42"


async def test_staff_event_is_invisible_to_the_customer(
    client: httpx.AsyncClient,
) -> None:
    """A customer's reads, offsets and state never show a staff note."""
    await create(client)
    await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    before = await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)
    note = {"type": "note", "id": "n1", "data": {"text": "secret whisper"}}
    staff = await client.post("/v1/sessions/order-1/events", json=note, headers=AI)
    assert staff.status_code == 200, staff.text
    after = await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)
    assert after.content == before.content
    assert after.headers["etag"] == before.headers["etag"]
    assert after.headers["stream-next-offset"] == before.headers["stream-next-offset"]
    state = await client.get("/v1/sessions/order-1", headers=CUSTOMER)
    assert state.json()["offset"] == before.headers["stream-next-offset"]
    assert b"secret" not in state.content


async def test_retry_returns_original_offset(client: httpx.AsyncClient) -> None:
    """A retried event id answers with the original offset, marked duplicate."""
    await create(client)
    first = await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    again = await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    assert again.json()["events"][0] == {**first.json()["events"][0], "duplicate": True}
    conflict = await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "other"), headers=CUSTOMER
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "id_conflict"


async def test_batch_with_expected_offset(client: httpx.AsyncClient) -> None:
    """A batch publishes all events; a stale expected_offset is 412."""
    await create(client)
    body = {"events": [message("c1", "a"), message("c2", "b")]}
    ok = await client.post("/v1/sessions/order-1/events", json=body, headers=CUSTOMER)
    assert [e["id"] for e in ok.json()["events"]] == ["c1", "c2"]
    stale = {
        "events": [message("c3", "c")],
        "expected_offset": ok.json()["events"][0]["offset"],
    }
    refused = await client.post(
        "/v1/sessions/order-1/events", json=stale, headers=CUSTOMER
    )
    assert refused.status_code == 412
    assert refused.json()["error"]["code"] == "tail_mismatch"


async def test_other_customer_learns_nothing(client: httpx.AsyncClient) -> None:
    """Another customer gets 404 for a session that is not theirs, even with a glob."""
    await create(client)
    for request in (
        client.get("/v1/sessions/order-1", headers=OTHER_CUSTOMER),
        client.get("/v1/sessions/order-1/events", headers=OTHER_CUSTOMER),
        client.post(
            "/v1/sessions/order-1/events",
            json=message("x", "hi"),
            headers=OTHER_CUSTOMER,
        ),
    ):
        response = await request
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "session_not_found"


async def test_auth_failures(client: httpx.AsyncClient) -> None:
    """No token, a forged token, or a token without the session glob are refused."""
    await create(client)
    url = "/v1/sessions/order-1/events"
    assert (await client.get(url)).status_code == 401
    forged = create_token("another-secret-0123456789abcdef01", sub="x", role="service")
    response = await client.get(url, headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    narrow = auth("bot", "ai", ["other-*"])
    assert (await client.get(url, headers=narrow)).status_code == 403


async def test_invalid_events_are_400_with_a_code(client: httpx.AsyncClient) -> None:
    """Malformed drafts get 400 with a machine-readable code and change nothing."""
    await create(client)
    url = "/v1/sessions/order-1/events"
    for body in (
        {"type": "message", "id": "x"},
        {"type": "nope", "id": "y", "data": {}},
    ):
        response = await client.post(url, json=body, headers=CUSTOMER)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"]
    bad_json = await client.post(url, content=b"{", headers=CUSTOMER)
    assert bad_json.status_code == 400
    assert (await client.get(url, headers=CUSTOMER)).json() == []


async def test_cursor_moves_forward_and_my_sessions_counts_unread(
    client: httpx.AsyncClient,
) -> None:
    """my-sessions lists the session with unread messages after the cursor."""
    await create(client)
    await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    reply = await client.post(
        "/v1/sessions/order-1/events",
        json=message("a1", "hello", "assistant"),
        headers=AI,
    )
    assert reply.status_code == 200, reply.text
    mine = await client.get("/v1/me/sessions", headers=CUSTOMER)
    [listed] = mine.json()["sessions"]
    assert listed["session"]["id"] == "order-1"
    assert listed["unread"] == 1
    read = await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)
    last = read.headers["stream-next-offset"]
    moved = await client.put(
        "/v1/sessions/order-1/cursor", json={"offset": last}, headers=CUSTOMER
    )
    assert moved.json()["offset"] == last
    [listed] = (await client.get("/v1/me/sessions", headers=CUSTOMER)).json()[
        "sessions"
    ]
    assert listed["unread"] == 0


async def test_staff_message_never_counts_as_unread_for_the_customer(
    client: httpx.AsyncClient,
) -> None:
    """A staff-only message changes nothing a customer sees: unread, offset, ETag."""
    await create(client)
    before = (await client.get("/v1/me/sessions", headers=CUSTOMER)).json()
    events_before = await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)
    staff_message = {**message("a1", "internal", "assistant"), "visibility": "staff"}
    posted = await client.post(
        "/v1/sessions/order-1/events", json=staff_message, headers=AI
    )
    assert posted.status_code == 200, posted.text
    after = (await client.get("/v1/me/sessions", headers=CUSTOMER)).json()
    events_after = await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)
    assert after == before
    assert events_after.headers["etag"] == events_before.headers["etag"]
    staff_view = (await client.get("/v1/me/sessions", headers=SERVICE)).json()
    assert staff_view["sessions"] == []  # the service never joined


async def test_publish_rate_is_limited_with_retry_after() -> None:
    """Past the burst a customer gets 429 with Retry-After, and nothing is stored."""
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    # Time stands still: no token comes back however long the burst takes.
    app.sessions.limiter = RateLimiter(clock=lambda: 1000.0)
    async with asgi_client(app) as client:
        await create(client)
        url = "/v1/sessions/order-1/events"
        burst = {
            "events": [{**message(f"c{i}", "x"), "type": "x.tick"} for i in range(100)]
        }
        assert (await client.post(url, json=burst, headers=CUSTOMER)).status_code == 200
        refused = await client.post(url, json=message("late", "x"), headers=CUSTOMER)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        events = (await client.get(url, headers=CUSTOMER)).json()
        assert len(events) == 100


async def test_ticket_opens_one_session_read_only(client: httpx.AsyncClient) -> None:
    """A ticket reads its session without a header; it cannot publish or read others."""
    await create(client)
    await client.post(
        "/v1/sessions/order-1/events", json=message("c1", "hi"), headers=CUSTOMER
    )
    minted = await client.post("/v1/sessions/order-1/tickets", headers=CUSTOMER)
    assert minted.status_code == 200
    ticket = minted.json()["ticket"]
    read = await client.get(f"/v1/sessions/order-1/events?ticket={ticket}")
    assert [e["id"] for e in read.json()] == ["c1"]
    forged = await client.get(f"/v1/sessions/order-1/events?ticket={ticket[:-3]}xyz")
    assert forged.status_code == 401
    publish = await client.post(
        f"/v1/sessions/order-1/events?ticket={ticket}", json=message("c2", "x")
    )
    assert publish.status_code == 401


async def test_customer_state_offsets_are_customer_offsets(
    client: httpx.AsyncClient,
) -> None:
    """An open message's start_offset in a customer's state is in the customer view."""
    await create(client)
    note = {"type": "note", "id": "n1", "data": {"text": "first, staff only"}}
    await client.post("/v1/sessions/order-1/events", json=note, headers=AI)
    start = {
        "type": "message.start",
        "id": "s1",
        "data": {"message_id": "m1", "role": "assistant"},
    }
    await client.post("/v1/sessions/order-1/events", json=start, headers=AI)
    events = (await client.get("/v1/sessions/order-1/events", headers=CUSTOMER)).json()
    state = (await client.get("/v1/sessions/order-1", headers=CUSTOMER)).json()
    [open_message] = state["messages"]
    assert open_message["start_offset"] == events[0]["offset"]
    assert all("start_offset" not in run for run in state["runs"])


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    """The served OpenAPI document lists exactly the session routes."""
    document = (await client.get("/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/events",
        "/v1/sessions/{session_id}/cursor",
        "/v1/sessions/{session_id}/presence",
        "/v1/sessions/{session_id}/tickets",
        "/v1/me/sessions",
        "/v1/audit/key",
        "/v1/sessions/{session_id}/audit/head",
        "/v1/sessions/{session_id}/audit",
    }


async def test_cors_allows_listed_origins_only() -> None:
    """Preflights and responses carry CORS headers for allowed origins only."""
    app = create_app(
        Config(
            store="memory://",
            auth=True,
            secret=SECRET,
            cors_origins=("https://shop.example",),
        )
    )
    async with asgi_client(app) as client:
        preflight = await client.options(
            "/v1/sessions/order-1/events",
            headers={
                "origin": "https://shop.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert (
            preflight.headers["access-control-allow-origin"] == "https://shop.example"
        )
        other = await client.get(
            "/v1/me/sessions", headers={**CUSTOMER, "origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        ok = await client.get(
            "/v1/me/sessions", headers={**CUSTOMER, "origin": "https://shop.example"}
        )
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        assert (
            "stream-next-offset" in ok.headers["access-control-expose-headers"].lower()
        )


async def test_expired_token_and_role_escalation_write_nothing(
    client: httpx.AsyncClient,
) -> None:
    """An expired token gets 401, a customer posing as staff 403; nothing is written."""
    await create(client)
    url = "/v1/sessions/order-1/events"
    expired = create_token(
        SECRET, sub="cust_42", role="customer", sessions=["order-1"], ttl_seconds=-120
    )
    response = await client.post(
        url, json=message("c1", "hi"), headers={"authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"
    note = {"type": "note", "id": "n1", "data": {"text": "I am staff now"}}
    escalated = await client.post(url, json=note, headers=CUSTOMER)
    assert escalated.status_code == 403
    assert escalated.json()["error"]["code"] == "forbidden"
    staff_only = {**message("c2", "hidden"), "visibility": "staff"}
    assert (
        await client.post(url, json=staff_only, headers=CUSTOMER)
    ).status_code == 403
    assert (await client.get(url, headers=SERVICE)).json() == []


async def test_session_updated_moves_the_customer_and_metadata(
    client: httpx.AsyncClient,
) -> None:
    """A service's session.updated changes the document in the same commit:
    the new customer reaches the session and lists it; the old one does not."""
    await create(client)
    new_customer = auth("cust_77", "customer", ["order-1"])
    update = {
        "type": "session.updated",
        "id": "u1",
        "data": {"customer": "cust_77", "priority": 2, "tags": ["vip"]},
    }
    published = await client.post(
        "/v1/sessions/order-1/events", json=update, headers=SERVICE
    )
    assert published.status_code == 200, published.text
    state = await client.get("/v1/sessions/order-1", headers=new_customer)
    assert state.status_code == 200, state.text
    document = state.json()["session"]
    assert document["customer"] == "cust_77"
    assert document["metadata"]["priority"] == 2
    assert document["metadata"]["tags"] == ["vip"]
    old = await client.get("/v1/sessions/order-1", headers=CUSTOMER)
    assert old.status_code == 404
    mine = await client.get("/v1/me/sessions", headers=new_customer)
    assert [s["session"]["id"] for s in mine.json()["sessions"]] == ["order-1"]
    theirs = await client.get("/v1/me/sessions", headers=CUSTOMER)
    assert theirs.json()["sessions"] == []


async def test_publishing_after_session_closed_is_409(
    client: httpx.AsyncClient,
) -> None:
    """A closed session is read-only: publish answers 409 session_closed."""
    await create(client)
    closed = {"type": "session.closed", "id": "c1", "data": {"reason": "resolved"}}
    response = await client.post(
        "/v1/sessions/order-1/events", json=closed, headers=SERVICE
    )
    assert response.status_code == 200, response.text
    late = await client.post(
        "/v1/sessions/order-1/events", json=message("c9", "hello?"), headers=CUSTOMER
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "session_closed"


async def test_customer_messages_are_accepted_while_the_ai_streams(
    client: httpx.AsyncClient,
) -> None:
    """Double-texting: a customer message in the middle of an AI stream is
    stored and read back between the deltas, and the stream goes on."""
    await create(client)

    def streamed(kind: str, event_id: str, **data: Any) -> dict[str, Any]:
        return {"type": kind, "id": event_id, "data": {"message_id": "a1", **data}}

    start = streamed("message.start", "s", role="assistant")
    assert (
        await client.post("/v1/sessions/order-1/events", json=start, headers=AI)
    ).status_code == 200
    first = streamed(
        "message.delta", "d0", seq=0, part_index=0, part_type="text", text="Let me "
    )
    await client.post("/v1/sessions/order-1/events", json=first, headers=AI)
    interjection = await client.post(
        "/v1/sessions/order-1/events",
        json=message("c1", "wait, also…"),
        headers=CUSTOMER,
    )
    assert interjection.status_code == 200, interjection.text
    second = streamed(
        "message.delta", "d1", seq=1, part_index=0, part_type="text", text="check."
    )
    assert (
        await client.post("/v1/sessions/order-1/events", json=second, headers=AI)
    ).status_code == 200
    read = await client.get("/v1/sessions/order-1/events?offset=-1", headers=CUSTOMER)
    kinds = [(e["type"], e["actor"]["role"]) for e in read.json()]
    assert kinds == [
        ("message.start", "ai"),
        ("message.delta", "ai"),
        ("message", "customer"),
        ("message.delta", "ai"),
    ]
