"""The demo AI end to end: a real demo server on port 0 (SQLite), driven
through the Python SDK with tokens from the demo's sign-in.

Every step waits on an event it observes; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import threadline
from tests.demo.conftest import DemoServer, serve_demo
from tests.utils import MS
from threadline.client import Subscription
from threadline.protocol.events import Event

TIMEOUT = 15_000 * MS


def sign_in(url: str, role: str, name: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/demo/api/sign-in", json={"role": role, "name": name})
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


async def until(events: Subscription, predicate: Callable[[Event], bool]) -> Event:
    """Read ``events`` until one matches ``predicate``; return it."""
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if predicate(event):
                return event
    raise AssertionError("the subscription ended first")


async def reply(
    events: Subscription, seen: list[Event] | None = None
) -> tuple[str, Event]:
    """Read the AI's next streamed reply to its end: its text and its end
    (every event read goes to ``seen``)."""
    text: dict[str, list[str]] = {}
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if seen is not None:
                seen.append(event)
            data = event.data
            if event.type == "message.start" and event.actor.role == "ai":
                text[data["message_id"]] = []
            elif event.type == "message.delta" and data["message_id"] in text:
                text[data["message_id"]].append(data.get("text", ""))
            elif event.type == "message.end" and data["message_id"] in text:
                return "".join(text[data["message_id"]]), event
    raise AssertionError("the subscription ended first")


async def staff_events(url: str, token: str, session_id: str) -> list[Event]:
    async with threadline.connect(url, token) as client:
        page = await client.session(session_id).read("-1")
    return page.events


@pytest.fixture
def slow_demo(tmp_path: Path) -> Iterator[DemoServer]:
    """The demo with the AI at a pace a test can interrupt (10 ms a token)."""
    yield from serve_demo(store=f"sqlite:///{tmp_path}/demo.db", pace=0.01)


async def test_demo_ai_tells_the_order_story_then_escalates_a_big_refund(demo):
    """The AI looks the order up (staff tool events), explains the split and
    proposes a resolution; a refund over its limit escalates warm with a staff
    summary note, and the session waits in the queue. The customer sees the
    answers and the request, never the note or the tools."""
    customer = sign_in(demo.url, "customer", "Dana Whitfield")
    agent = sign_in(demo.url, "agent", "Sam Rivera")
    session_id = "order-story"
    async with threadline.connect(demo.url, customer["token"]) as client:
        await client.create_session(
            session_id, metadata={"attributes": {"customer_name": "Dana Whitfield"}}
        )
        session = client.session(session_id)
        async with session.subscribe("-1") as events:
            await session.send_message("Hi! Where is my order #1234?")
            text, end = await reply(events)
            assert end.data["status"] == "complete"
            assert "Thanks, Dana!" in text
            assert "Stormline waterproof jacket" in text
            assert "delivered" in text and "stuck" in text
            assert "reship" in text and "refund" in text

            await session.send_message("Can I get a refund for the jacket?")
            seen: list[Event] = []
            text, end = await reply(events, seen)
            assert end.data["status"] == "complete"
            assert "$189.00" in text and "colleague" in text
            [request] = [e for e in seen if e.type == "control.request"]
            assert request.data["mode"] == "warm"
        mine = (await session.read("-1")).events
    assert not [e for e in mine if e.visibility == "staff"]
    assert not [e for e in mine if e.type in ("note", "tool.call", "tool.result")]

    staff = await staff_events(demo.url, agent["token"], session_id)
    calls = [e.data["tool_name"] for e in staff if e.type == "tool.call"]
    assert calls == ["lookup_order", "propose_resolution", "check_refund_policy"]
    results = [e for e in staff if e.type == "tool.result"]
    assert results[0].data["output"]["warehouse_hold"]["item"] == (
        "Stormline waterproof jacket"
    )
    [note] = [e for e in staff if e.type == "note"]
    assert note.actor.id == "demo-ai"
    assert "refund of $189.00" in note.data["text"]
    [request_event] = [e for e in staff if e.type == "control.request"]
    assert request_event.data["reason"] == "refund_over_limit"
    async with httpx.AsyncClient() as http:
        waiting = (
            await http.get(
                f"{demo.url}/v1/sessions",
                params={"waiting": "agent"},
                headers={"authorization": f"Bearer {agent['token']}"},
            )
        ).json()
    assert [entry["session"] for entry in waiting["sessions"]] == [session_id]


async def test_demo_ai_answers_again_after_the_handback(demo):
    """A human takes over and answers; the AI cannot speak; after the handback
    the AI continues, knowing what the human did."""
    customer = sign_in(demo.url, "customer", "Dana")
    agent = sign_in(demo.url, "agent", "Sam Rivera")
    session_id = "order-handback"
    async with (
        threadline.connect(demo.url, customer["token"]) as client,
        threadline.connect(demo.url, agent["token"]) as staff,
    ):
        await client.create_session(session_id)
        session = client.session(session_id)
        desk = staff.session(session_id)
        async with session.subscribe("-1") as events:
            await session.send_message("I want to talk to a human")
            seen: list[Event] = []
            await reply(events, seen)
            [request] = [e for e in seen if e.type == "control.request"]
            await desk.publish(
                "control.accept", {"request_id": request.data["request_id"]}
            )
            await desk.send_message("Hi Dana, Sam here. I've approved your refund.")
            await until(
                events,
                lambda e: e.type == "message" and e.actor.id == "agent-sam-rivera",
            )
            await desk.publish("control.release", {"to": "demo-ai"})
            await session.send_message("Thanks!")
            text, end = await reply(events)
    assert end.data["status"] == "complete"
    assert "Sam has approved the refund" in text


async def test_demo_ai_honours_the_stop_button(slow_demo):
    """A run.cancel from the customer stops the answer in flight: cancelled."""
    customer = sign_in(slow_demo.url, "customer", "Dana")
    async with threadline.connect(slow_demo.url, customer["token"]) as client:
        await client.create_session("order-stop")
        session = client.session("order-stop")
        async with session.subscribe("-1") as events:
            await session.send_message("Where is my order #1234?")
            start = await until(
                events, lambda e: e.type == "message.delta" and e.actor.role == "ai"
            )
            state = await session.state()
            [run] = state["runs"]
            await session.publish("run.cancel", {"run_id": run["run_id"]})
            end = await until(
                events,
                lambda e: (
                    e.type == "message.end"
                    and e.data["message_id"] == start.data["message_id"]
                ),
            )
    assert end.data["status"] == "cancelled"


async def test_demo_device_switch_finds_the_answer_in_flight(slow_demo):
    """Signing in with the same name elsewhere is the same customer: my
    sessions lists the conversation with an answer in flight, and a compact
    read continues it where it was."""
    first = sign_in(slow_demo.url, "customer", "Dana")
    async with threadline.connect(slow_demo.url, first["token"]) as client:
        await client.create_session("order-switch")
        session = client.session("order-switch")
        async with session.subscribe("-1") as events:
            await session.send_message("Where is my order #1234?")
            await until(
                events, lambda e: e.type == "message.delta" and e.actor.role == "ai"
            )
    phone = sign_in(slow_demo.url, "customer", "dana")
    assert phone["sub"] == first["sub"]
    async with threadline.connect(
        slow_demo.url, phone["token"], device="phone"
    ) as other:
        [listing] = await other.my_sessions()
        assert listing["session"]["id"] == "order-switch"
        session = other.session("order-switch")
        async with session.subscribe("-1", view="compact") as events:
            start = await until(
                events, lambda e: e.type == "message.start" and e.actor.role == "ai"
            )
            assert start.data["parts"], "the answer so far comes first"
            text, end = await reply_after(events, start)
    assert end.data["status"] == "complete"
    assert "Which would you prefer?" in text


async def reply_after(events: Subscription, start: Event) -> tuple[str, Event]:
    """The rest of a reply whose compacted start was read: all its text, its end."""
    message_id = start.data["message_id"]
    text = [str(part.get("text", "")) for part in start.data["parts"]]
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if event.data.get("message_id") != message_id:
                continue
            if event.type == "message.delta":
                text.append(event.data.get("text", ""))
            elif event.type == "message.end":
                return "".join(text), event
    raise AssertionError("the subscription ended first")


async def test_demo_stops_promptly_while_the_ai_answers(tmp_path: Path) -> None:
    """Stopping the demo mid-answer does not wait for the AI's reply to end
    over connections the server already closed: it stops within seconds (the
    lease sweep ends the reply at the next start)."""
    served = serve_demo(store=f"sqlite:///{tmp_path}/demo.db", pace=0.05)
    demo = next(served)
    customer = sign_in(demo.url, "customer", "Dana")
    async with threadline.connect(demo.url, customer["token"]) as client:
        await client.create_session("order-quit")
        session = client.session("order-quit")
        async with session.subscribe("-1") as events:
            await session.send_message("Where is my order #1234?")
            await until(
                events, lambda e: e.type == "message.delta" and e.actor.role == "ai"
            )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.to_thread(served.close)  # stops the server (asserts it did)
    assert loop.time() - started < 8.0  # not the client's 30 s timeout
