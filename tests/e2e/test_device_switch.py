"""Device switch: a new device with no local state finds the conversation."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest

from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token
from threadline.protocol.sse import SSEDecoder, SSEEvent

SECRET = "e2e-secret-0123456789abcdef0123456789"


def bearer(sub: str, role: str, sessions: list[str]) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=sessions)
    return {"authorization": f"Bearer {token}"}


PHONE = {**bearer("cust_42", "customer", ["order-*"]), "threadline-device": "phone"}
LAPTOP = {**bearer("cust_42", "customer", ["order-*"]), "threadline-device": "laptop"}
AI = bearer("bot", "ai", ["**"])


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


@pytest.fixture
def server(tmp_path: Any) -> Iterator[ServerThread]:
    store = f"sqlite:///{tmp_path}/e2e.db"
    with serve_in_thread(store=store, auth=True, secret=SECRET) as (server, _):
        yield server


async def sse(response: httpx.Response) -> AsyncGenerator[SSEEvent, None]:
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.receive_data(chunk):
            yield event


async def test_new_device_finds_session_and_gets_the_answer_in_flight(
    server: ServerThread,
) -> None:
    """The laptop, knowing nothing, lists the session, replays it, and follows live."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5_000 * MS) as http:
        created = await http.post(
            "/v1/sessions", json={"id": "order-1234"}, headers=PHONE
        )
        assert created.status_code == 201
        ask = {
            "type": "message",
            "id": "q1",
            "data": {
                "message_id": "q1",
                "role": "user",
                "parts": [{"type": "text", "text": "Where is my order?"}],
            },
        }
        assert (
            await http.post("/v1/sessions/order-1234/events", json=ask, headers=PHONE)
        ).is_success
        start = {
            "type": "message.start",
            "id": "s1",
            "data": {"message_id": "m1", "role": "assistant"},
        }
        batch = {"events": [start, delta(0, "Part of it "), delta(1, "shipped, ")]}
        assert (
            await http.post("/v1/sessions/order-1234/events", json=batch, headers=AI)
        ).is_success

        # The laptop has no local state: it asks the server.
        mine = (await http.get("/v1/me/sessions", headers=LAPTOP)).json()["sessions"]
        [found] = mine
        assert found["session"]["id"] == "order-1234"
        assert found["in_flight"] is True
        state = (await http.get("/v1/sessions/order-1234", headers=LAPTOP)).json()
        [open_message] = state["messages"]
        assert open_message["parts"] == [
            {"type": "text", "text": "Part of it shipped, "}
        ]

        texts: list[str] = []
        url = "/v1/sessions/order-1234/events?offset=-1&live=sse"
        async with http.stream("GET", url, headers=LAPTOP) as response:
            async with contextlib.aclosing(sse(response)) as events:
                async for event in events:
                    envelope = json.loads(event.data)
                    if envelope["type"] == "message.delta":
                        texts.append(envelope["data"]["text"])
                        if len(texts) == 2:  # caught up: the answer continues
                            more = {"events": [delta(2, "part is stuck.")]}
                            posted = await http.post(
                                "/v1/sessions/order-1234/events", json=more, headers=AI
                            )
                            assert posted.is_success
                        if len(texts) == 3:
                            break
    assert "".join(texts) == "Part of it shipped, part is stuck."
