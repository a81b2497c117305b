"""The supervisor: reads staff events, whispers staff-only notes, barges in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import SECRET
from tests.server.harness import asgi_client
from threadline.auth import create_token
from threadline.server import Config, create_app


def auth(sub: str, role: str, sessions: list[str], **extra: Any) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=sessions, **extra)
    return {"authorization": f"Bearer {token}"}


CUSTOMER = auth("cust_42", "customer", ["order-1"])
AI = auth("bot", "ai", ["**"])
SUPERVISOR = auth("sup_1", "supervisor", ["**"])
BARGER = auth("sup_2", "supervisor", ["**"], caps=["barge"])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        created = await client.post(
            "/v1/sessions", json={"id": "order-1"}, headers=CUSTOMER
        )
        assert created.status_code == 201, created.text
        yield client


async def publish(
    client: httpx.AsyncClient, headers: dict[str, str], event: dict[str, Any]
) -> httpx.Response:
    return await client.post("/v1/sessions/order-1/events", json=event, headers=headers)


async def types(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    read = await client.get("/v1/sessions/order-1/events?offset=-1", headers=headers)
    assert read.status_code == 200, read.text
    return [event["type"] for event in read.json()]


async def test_whisper_reaches_staff_and_never_the_customer(
    client: httpx.AsyncClient,
) -> None:
    """A supervisor's note is staff-only; one marked `all` is refused, 400."""
    note = {"type": "note", "id": "n1", "data": {"text": "offer the refund"}}
    assert (await publish(client, SUPERVISOR, note)).status_code == 200
    loud = {**note, "id": "n2", "visibility": "all"}
    refused = await publish(client, SUPERVISOR, loud)
    assert refused.status_code == 400
    assert "note" in await types(client, AI)
    assert "note" in await types(client, SUPERVISOR)
    assert "note" not in await types(client, CUSTOMER)


async def test_supervisor_barges_in_only_with_the_cap(
    client: httpx.AsyncClient,
) -> None:
    """control.accept without a request: 403 without `barge`, the floor with it."""
    barge = {"type": "control.accept", "id": "b1", "data": {"request_id": "barge"}}
    refused = await publish(client, SUPERVISOR, barge)
    assert refused.status_code == 403, refused.text
    taken = await publish(client, BARGER, barge)
    assert taken.status_code == 200, taken.text
    state = await client.get("/v1/sessions/order-1", headers=CUSTOMER)
    assert state.json()["controller"] == {"id": "sup_2", "role": "supervisor"}
    answer = {
        "type": "message",
        "id": "a1",
        "data": {
            "message_id": "m1",
            "role": "assistant",
            "parts": [{"type": "text", "text": "hi"}],
        },
    }
    ai_refused = await publish(client, AI, answer)
    assert ai_refused.status_code == 409
    assert ai_refused.json()["error"]["code"] == "not_in_control"
