"""PRODUCT.md's scenario, end to end through the Python SDK.

A customer asks about an order that is partly shipped, partly stuck. The AI
worker checks it and starts answering; mid-answer the customer closes the tab
and opens the conversation on another device, where the answer in flight
continues. The AI hits the refund limit and escalates (warm); a human agent
finds the session in the waiting queue with its full history and the AI's
staff note, takes the floor and answers; the AI can no longer speak. A
supervisor watches and whispers to the agent; the customer never learns of
the whisper or the supervisor. The agent hands back; the AI answers with the
whole conversation in mind. The audit export verifies, chain and signature.

Every step waits on an event it observes; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import threadline
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.agent import Context, Worker
from threadline.auth import create_token
from threadline.cli import main as cli
from threadline.client import Client, Subscription
from threadline.exceptions import NotInControl
from threadline.protocol.events import Event

SECRET = "scenario-secret-0123456789abcdef0123456789"
SID = "order-1234"
TIMEOUT = 10_000 * MS
ANSWER = [
    "Let me check order #1234. ",
    "Two of your three items shipped yesterday; ",
    "the third is stuck at our warehouse. ",
    "I can reship it today or refund it.",
]


def token(sub: str, role: str, name: str, **extra: Any) -> str:
    sessions = ["order-*"] if role == "customer" else ["**"]
    return create_token(
        SECRET, sub=sub, role=role, name=name, sessions=sessions, **extra
    )


def bearer(sub: str, role: str, name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token(sub, role, name)}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    store = f"sqlite:///{tmp_path}/scenario.db"
    with serve_in_thread(store=store, auth=True, secret=SECRET, presence=True) as (
        server,
        _,
    ):
        yield server


class Recorded:
    """A subscription whose every event is also kept (as JSON) in ``seen``."""

    def __init__(self, events: Subscription, seen: list[dict[str, Any]]) -> None:
        self.events = events
        self.seen = seen

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for event in self.events:
            self.seen.append(event.to_json())
            yield event


async def until(
    events: Subscription | Recorded, predicate: Callable[[Event], bool]
) -> Event:
    """Read ``events`` until one matches ``predicate``; return it."""
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if predicate(event):
                return event
    raise AssertionError("the subscription ended first")


def is_(kind: str, **data: Any) -> Callable[[Event], bool]:
    return lambda e: e.type == kind and all(e.data.get(k) == v for k, v in data.items())


class OrderAgent:
    """A deterministic AI: answers the order question (holding mid-answer
    until told to go on), escalates refunds, and follows up with context."""

    def __init__(self) -> None:
        self.midway = asyncio.Event()
        self.go_on = asyncio.Event()
        self.contexts: list[Context] = []

    async def respond(self, context: Context) -> AsyncIterator[str]:
        self.contexts.append(context)
        if "refund" in context.text:
            await context.escalate(
                "Customer wants a $250 refund for the stuck item; over my $100 limit.",
                reason="refund_limit",
            )
            yield "That refund needs a colleague: a human agent will join shortly."
            return
        humans = [m for m in context.history if m.actor.role == "agent"]
        if humans:
            yield f"Following up on {humans[-1].actor.name}'s answer: "
            yield f"\u201c{humans[-1].text}\u201d. The reshipment leaves today."
            return
        for i, chunk in enumerate(ANSWER):
            if i == 2:
                self.midway.set()
                await self.go_on.wait()
            yield chunk


async def staff_events(http: httpx.AsyncClient, headers: dict[str, str]) -> list[Any]:
    read = await http.get(f"/v1/sessions/{SID}/events?offset=-1", headers=headers)
    assert read.status_code == 200, read.text
    events: list[Any] = read.json()
    return events


async def test_the_support_scenario(server: ServerThread, tmp_path: Path) -> None:
    """Nothing lost across a tab close; the answer in flight continues on the
    new device; the AI is refused after the human took the floor; the whisper
    and the supervisor reach no customer path; the handback; the audit."""
    agent_ai = OrderAgent()
    customer_token = token("cust_dana", "customer", "Dana")

    def customer(device: str) -> Client:
        return threadline.connect(server.url, customer_token, device=device)

    ai = threadline.connect(server.url, token("bot", "ai", "Assistant"))
    worker = Worker(
        server.url,
        token("bot", "ai", "Assistant"),
        agent_ai.respond,
        device="ai-worker-1",
        discover=False,
        follow_new_sessions=True,
    )
    agent = threadline.connect(server.url, token("agent_sam", "agent", "Sam"))
    supervisor = threadline.connect(
        server.url, token("sup_kim", "supervisor", "Kim"), device="sup-desk"
    )
    http = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)
    customer_headers = bearer("cust_dana", "customer", "Dana")
    sup_headers = bearer("sup_kim", "supervisor", "Kim")

    async with worker, ai, agent, supervisor, http:
        # 1. Dana asks on her laptop; the AI starts answering.
        laptop = customer("laptop")
        async with laptop:
            await laptop.create_session(SID)
            session = laptop.session(SID)
            async with session.subscribe("-1") as first:
                events: Subscription | Recorded = first
                await session.send_message("Where is my order #1234?")
                start = await until(
                    events, lambda e: e.type == "message.start" and e.actor.role == "ai"
                )
                answer_id = start.data["message_id"]
                await asyncio.wait_for(agent_ai.midway.wait(), TIMEOUT)
                seen_on_laptop = ""
                while seen_on_laptop != "".join(ANSWER[:2]):
                    delta = await until(events, is_("message.delta"))
                    seen_on_laptop += delta.data["text"]
        # 2. The tab is closed mid-answer. The phone has no local state.
        phone = customer("phone")
        phone_seen: list[dict[str, Any]] = []
        async with phone:
            [listing] = await phone.my_sessions()
            assert listing["session"]["id"] == SID and listing["in_flight"]
            mobile = phone.session(SID)
            async with mobile.subscribe("-1", view="compact") as subscription:
                events = Recorded(subscription, phone_seen)
                opened = await until(
                    events, lambda e: e.data.get("message_id") == answer_id
                )
                assert opened.type == "message.start"
                so_far = "".join(p.get("text", "") for p in opened.data["parts"])
                assert so_far == seen_on_laptop  # nothing lost across the tab close
                agent_ai.go_on.set()
                text = so_far
                while True:
                    event = await until(
                        events, lambda e: e.data.get("message_id") == answer_id
                    )
                    if event.type == "message.end":
                        break
                    text += event.data["text"]
                assert event.data["status"] == "complete"
                assert text == "".join(ANSWER)  # the answer in flight continued

                # 3. A refund over the limit: the AI escalates, warm.
                await mobile.send_message("Please refund the stuck item, $250.")
                escalated = await until(events, lambda e: e.type == "control.request")
                request_id = escalated.data["request_id"]
                await until(
                    events,
                    lambda e: e.type == "message.end" and e.actor.role == "ai",
                )

                # 4. The agent finds it in the queue, with history and the note.
                agent_headers = bearer("agent_sam", "agent", "Sam")
                waiting = await http.get(
                    "/v1/sessions?waiting=agent", headers=agent_headers
                )
                [entry] = waiting.json()["sessions"]
                assert entry["session"] == SID and entry["request_id"] == request_id
                assert entry["customer"] == "cust_dana"
                history = await staff_events(http, agent_headers)
                notes = [e for e in history if e["type"] == "note"]
                assert notes and "over my $100 limit" in notes[0]["data"]["text"]
                assert notes[0]["actor"]["role"] == "ai"
                desk = agent.session(SID)
                async with desk.subscribe("now") as console:
                    await desk.publish("control.accept", {"request_id": request_id})
                    await until(events, is_("control.accept"))
                    queue = await http.get(
                        "/v1/sessions?waiting=agent", headers=agent_headers
                    )
                    assert queue.json()["sessions"] == []
                    await desk.send_message(
                        "Hi Dana, I'm Sam. I approved the $250 refund.",
                        role="assistant",
                    )
                    human = await until(
                        events,
                        lambda e: e.type == "message" and e.actor.id == "agent_sam",
                    )
                    assert human.actor.name == "Sam"

                    # The AI can no longer speak.
                    with pytest.raises(NotInControl):
                        await ai.session(SID).send_message(
                            "I can help too!", role="assistant"
                        )

                    # 5. The supervisor watches live and whispers to the agent.
                    watch = supervisor.session(SID)
                    async with watch.subscribe("-1"):
                        await watch.publish(
                            "note", {"text": "Offer a $20 voucher as well."}
                        )
                        whisper = await until(
                            console,
                            lambda e: e.type == "note" and e.actor.id == "sup_kim",
                        )
                        assert whisper.visibility == "staff"
                        state = await http.get(
                            f"/v1/sessions/{SID}", headers=customer_headers
                        )
                        assert state.status_code == 200
                        snapshot = state.json()
                        assert "sup_kim" not in str(snapshot)  # participants, presence
                        staff_state = await http.get(
                            f"/v1/sessions/{SID}", headers=sup_headers
                        )
                        assert "sup_kim" in str(staff_state.json()["participants"])

                    # 6. The agent hands back to the AI.
                    await desk.publish("control.release", {"to": "bot"})
                    await until(events, is_("control.release", to="bot"))

                # 7. The AI answers the next message with the whole conversation.
                await mobile.send_message("Thanks! When will it arrive?")
                follow_up = await until(
                    events,
                    lambda e: e.type == "message.end" and e.actor.role == "ai",
                )
                assert follow_up.data["status"] == "complete"

        # The customer learned of no staff event, on any path.
        raw = await staff_events(http, customer_headers)
        compact = await http.get(
            f"/v1/sessions/{SID}/events?offset=-1&view=compact",
            headers=customer_headers,
        )
        for events_seen in (raw, compact.json(), phone_seen):
            assert all(e["visibility"] == "all" for e in events_seen)
            assert not [e for e in events_seen if e["type"] in ("note", "queue.added")]
            assert "sup_kim" not in str(events_seen)
        follow = [
            m
            for m in compact.json()
            if m["type"] == "message" and m["actor"]["id"] == "bot"
        ][-1]
        follow_text = "".join(p.get("text", "") for p in follow["data"]["parts"])
        assert "Sam" in follow_text and "approved the $250 refund" in follow_text
        [listing] = (
            await http.get("/v1/me/sessions", headers=customer_headers)
        ).json()["sessions"]
        visible_by_others = [
            e
            for e in compact.json()
            if e["type"] == "message" and e["actor"]["id"] != "cust_dana"
        ]
        assert listing["unread"] == len(visible_by_others)

        # 8. The audit export shows every transition, and verifies.
        export = await http.get(f"/v1/sessions/{SID}/audit", headers=sup_headers)
        assert export.status_code == 200, export.text
        key = await http.get("/v1/audit/key")
        (tmp_path / "audit.jsonl").write_bytes(export.content)
        (tmp_path / "key.json").write_bytes(key.content)
        status = await asyncio.to_thread(
            cli,
            [
                "audit",
                "verify",
                str(tmp_path / "audit.jsonl"),
                "--key",
                str(tmp_path / "key.json"),
            ],
        )
        assert status == 0
        lines = [
            httpx.Response(200, content=line).json()
            for line in export.content.splitlines()[1:]
        ]
        transitions = [
            (e["type"], e["actor"]["id"], e["actor"]["role"])
            for e in lines
            if e["type"].startswith("control.")
        ]
        assert transitions == [
            ("control.request", "bot", "ai"),
            ("control.accept", "agent_sam", "agent"),
            ("control.release", "agent_sam", "agent"),
        ]
        joined = [e for e in lines if e["type"] == "participant.joined"]
        supervisor_joined = [
            e for e in joined if e["data"]["participant"]["id"] == "sup_kim"
        ]
        assert supervisor_joined and supervisor_joined[0]["visibility"] == "staff"
