"""Session SSE over a real server: one event per log event, resume, visibility."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx

from tests.server.conftest import SECRET
from tests.server.harness import ServerThread, WaitCounter
from tests.utils import MS, wait_for
from threadline.auth import create_token
from threadline.protocol.sse import SSEDecoder, SSEEvent

Serve = Callable[..., tuple[ServerThread, WaitCounter]]


def headers(sub: str, role: str) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=["**"])
    return {"authorization": f"Bearer {token}"}


CUSTOMER = headers("cust_42", "customer")
AI = headers("bot", "ai")


async def sse_events(response: httpx.Response) -> AsyncGenerator[SSEEvent, None]:
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.receive_data(chunk):
            yield event


def delta(seq: int, text: str) -> dict[str, Any]:
    return {
        "type": "message.delta",
        "id": f"d{seq}",
        "data": {
            "message_id": "m1",
            "seq": seq,
            "part_index": 0,
            "part_type": "text",
            "text": text,
        },
    }


START = {
    "type": "message.start",
    "id": "s1",
    "data": {"message_id": "m1", "role": "assistant"},
}


async def setup(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/sessions", json={"id": "order-1"}, headers=CUSTOMER
    )
    assert created.status_code == 201, created.text


async def publish(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    response = await client.post(
        "/v1/sessions/order-1/events", json={"events": list(events)}, headers=AI
    )
    assert response.status_code == 200, response.text


async def test_sse_resumes_from_last_event_id_without_gap_or_duplicate(
    serve: Serve,
) -> None:
    """A tab closed mid-stream gets exactly the missing deltas on reconnect."""
    server, _ = serve(auth=True, secret=SECRET)
    async with httpx.AsyncClient(base_url=server.url, timeout=5_000 * MS) as client:
        await setup(client)
        await publish(client, START, delta(0, "Your "), delta(1, "order "))
        url = "/v1/sessions/order-1/events?offset=-1&live=sse"
        seen: list[str] = []
        async with client.stream("GET", url, headers=CUSTOMER) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async with contextlib.aclosing(sse_events(response)) as events:
                async for event in events:
                    assert event.event == "message" and event.id
                    seen.append(event.id)
                    if len(seen) == 3:
                        break  # the tab closes here
        await publish(client, delta(2, "ships "), delta(3, "today."))
        resumed: list[dict[str, Any]] = []
        resume = {**CUSTOMER, "last-event-id": seen[-1]}
        async with client.stream("GET", url, headers=resume) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                async for event in events:
                    resumed.append(json.loads(event.data))
                    if len(resumed) == 2:
                        break
    assert [e["data"]["seq"] for e in resumed] == [2, 3]
    assert resumed[0]["offset"] > seen[-1]


async def test_sse_never_delivers_staff_events_to_a_customer(serve: Serve) -> None:
    """A customer's SSE skips staff notes; its ids stay dense."""
    server, waits = serve(auth=True, secret=SECRET)
    async with httpx.AsyncClient(base_url=server.url, timeout=5_000 * MS) as client:
        await setup(client)
        received: list[dict[str, Any]] = []
        url = "/v1/sessions/order-1/events?offset=-1&live=sse"
        async with client.stream("GET", url, headers=CUSTOMER) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                await wait_for(lambda: waits.active >= 1, 5_000 * MS)
                await publish(
                    client, {"type": "note", "id": "n1", "data": {"text": "psst"}}
                )
                await publish(client, START)
                async for event in events:
                    received.append(json.loads(event.data))
                    break
    assert [e["type"] for e in received] == ["message.start"]
    assert received[0]["offset"].endswith("_0000000000000001")
