"""Presence over the transports: WebSocket ``presence``, session SSE
``event: presence``, ``POST …/presence`` and the state snapshot, with the
membership events they log."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.server.conftest import SECRET
from tests.server.harness import (
    ServerThread,
    WaitCounter,
    asgi_client,
    serve_args,
    server_process,
)
from tests.server.test_websocket import (
    CUSTOMER,
    SESSION,
    Peer,
    create_session,
    peer,
    subscribe,
    token,
)
from tests.utils import MS
from threadline.protocol.sse import SSEDecoder, SSEEvent
from threadline.server import Config, create_app

Serve = Callable[..., tuple[ServerThread, WaitCounter]]

AGENT = token("agent_7", "agent", name="Sam")
SUPERVISOR = token("sup_1", "supervisor")
GRACE = 0.3


def live(serve: Serve, **overrides: Any) -> ServerThread:
    overrides.setdefault("presence_grace", GRACE)
    server, _ = serve(auth=True, secret=SECRET, presence=True, **overrides)
    return server


def bearer(tok: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tok}", **extra}


async def presence_of(client: Peer, timeout: float = 5000 * MS) -> tuple[str, str, str]:
    """The next ``presence`` message as (participant, device, status)."""
    message = await client.take("presence", timeout)
    assert message["session"] == SESSION
    actor = message["actor"]
    return actor["id"], actor.get("device", ""), message["status"]


async def membership(server: ServerThread) -> list[tuple[str, str, str]]:
    """(type, participant, visibility) of the membership events, staff view."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as http:
        response = await http.get(
            f"/v1/sessions/{SESSION}/events", headers=bearer(AGENT)
        )
    assert response.status_code == 200, response.text
    return [
        (e["type"], e["data"]["participant"]["id"], e["visibility"])
        for e in response.json()
        if e["type"].startswith("participant.")
    ]


@contextlib.asynccontextmanager
async def sse(
    server: ServerThread, tok: str, raw: list[bytes] | None = None, **headers: str
) -> AsyncIterator[AsyncIterator[SSEEvent]]:
    """A session SSE stream, decoded (the bytes go to ``raw`` too)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as http:
        url = f"/v1/sessions/{SESSION}/events?offset=-1&live=sse"
        async with http.stream("GET", url, headers=bearer(tok, **headers)) as response:
            assert response.status_code == 200

            async def events() -> AsyncIterator[SSEEvent]:
                decoder = SSEDecoder()
                async for chunk in response.aiter_bytes():
                    if raw is not None:
                        raw.append(chunk)
                    for event in decoder.receive_data(chunk):
                        yield event

            yield events()


async def next_presence(events: AsyncIterator[SSEEvent]) -> tuple[SSEEvent, Any]:
    """The next ``event: presence`` of an SSE stream, and its data."""
    async for event in events:
        if event.event == "presence":
            return event, json.loads(event.data)
    raise AssertionError("the stream ended")


# WebSocket


async def test_ws_subscriber_hears_a_device_arrive_change_status_and_leave(
    serve: Serve,
) -> None:
    """Another device's arrival, status and departure (after the grace period)
    reach a subscriber as presence messages; its participant joins and leaves
    the log."""
    server = live(serve)
    await create_session(server)
    async with peer(server, AGENT, device="console") as agent:
        await agent.send(subscribe("-1"))
        await agent.expect("subscribed")
        async with peer(server, CUSTOMER, device="tab-1") as customer:
            await customer.send(subscribe("-1"))
            subscribed = await customer.expect("subscribed")
            assert await presence_of(agent) == ("cust_42", "tab-1", "active")
            await customer.send(
                {"type": "presence", "session": SESSION, "status": "typing"}
            )
            assert await presence_of(agent) == ("cust_42", "tab-1", "typing")
        assert await presence_of(agent) == ("cust_42", "tab-1", "offline")
    listed = subscribed["state"]["presence"]
    assert [(p["actor"]["id"], p["status"]) for p in listed] == [("agent_7", "active")]
    assert await membership(server) == [
        ("participant.joined", "agent_7", "all"),
        ("participant.joined", "cust_42", "all"),
        ("participant.left", "cust_42", "all"),
    ]


async def test_ws_reload_within_grace_sends_no_presence(serve: Serve) -> None:
    """A device that reconnects within the grace period is never reported
    offline, and its participant neither leaves nor joins again."""
    server = live(serve, presence_grace=30.0)
    await create_session(server)
    async with peer(server, AGENT, device="console") as agent:
        await agent.send(subscribe("-1"))
        await agent.expect("subscribed")
        for _ in range(2):  # a reload
            async with peer(server, CUSTOMER, device="tab-1") as customer:
                await customer.send(subscribe("-1"))
                await customer.expect("subscribed")
        async with peer(server, CUSTOMER, device="tab-1") as customer:
            await customer.send(
                subscribe("-1"),
                {"type": "presence", "session": SESSION, "status": "typing"},
            )
            await customer.expect("subscribed")
            assert await presence_of(agent) == ("cust_42", "tab-1", "active")
            assert await presence_of(agent) == ("cust_42", "tab-1", "typing")
    customer_joins = [m for m in await membership(server) if m[1] == "cust_42"]
    assert customer_joins == [("participant.joined", "cust_42", "all")]


async def test_ws_customer_never_hears_of_a_supervisor(serve: Serve) -> None:
    """A supervisor's presence and membership reach staff, never a customer."""
    server = live(serve)
    await create_session(server)
    async with (
        peer(server, CUSTOMER, device="tab-1") as customer,
        peer(server, AGENT, device="console") as agent,
    ):
        for client in (customer, agent):
            await client.send(subscribe("-1"))
            await client.expect("subscribed")
        assert await presence_of(customer) == ("agent_7", "console", "active")
        async with peer(server, SUPERVISOR, device="desk") as supervisor:
            await supervisor.send(subscribe("-1"))
            await supervisor.expect("subscribed")
            assert await presence_of(agent) == ("sup_1", "desk", "active")
            async with peer(server, CUSTOMER, device="phone") as phone:
                await phone.send(subscribe("-1"))
                state = (await phone.expect("subscribed"))["state"]
                await phone.send(
                    {"type": "presence", "session": SESSION, "status": "idle"}
                )
                # The customer's next presence is the phone's: no supervisor.
                assert await presence_of(customer) == ("cust_42", "phone", "active")
                assert await presence_of(customer) == ("cust_42", "phone", "idle")
        shown = sorted(p["actor"]["id"] for p in state["presence"])
        assert shown == ["agent_7", "cust_42"]
        visible = await customer.events(2)  # the customer's and the agent's joins
    assert "sup_1" not in json.dumps(visible)
    assert ("participant.joined", "sup_1", "staff") in await membership(server)


async def test_ws_presence_for_a_session_out_of_reach_is_an_error(
    serve: Serve,
) -> None:
    """A presence message for a session the token does not reach is answered
    with an error and sets nothing."""
    server = live(serve)
    await create_session(server)
    async with peer(server, CUSTOMER) as customer:
        await customer.send(
            {"type": "presence", "session": "not-mine", "status": "active"}
        )
        error = await customer.expect("error")
    assert error["code"] == "session_not_found" and "rid" not in error


# Session SSE


async def test_sse_stream_holds_its_device_and_carries_presence(
    serve: Serve,
) -> None:
    """An open SSE stream keeps its device present and gets other devices'
    changes as ``event: presence`` without an id; closing it drops the device."""
    server = live(serve)
    await create_session(server)
    raw: list[bytes] = []
    async with peer(server, AGENT, device="console") as agent:
        await agent.send(subscribe("-1"))
        await agent.expect("subscribed")
        device = {"threadline-device": "tab-9"}
        async with sse(server, CUSTOMER, raw, **device) as events:
            assert await presence_of(agent) == ("cust_42", "tab-9", "active")
            _, first = await next_presence(events)
            assert first["actor"]["id"] == "agent_7"  # present before it started
            await agent.send(
                {"type": "presence", "session": SESSION, "status": "typing"}
            )
            _, changed = await next_presence(events)
        assert await presence_of(agent) == ("cust_42", "tab-9", "offline")
    blocks = b"".join(raw).split(b"\n\n")
    shown = [b for b in blocks if b.startswith(b"event: presence\n")]
    assert len(shown) == 2 and not any(b"\nid:" in b for b in shown)
    assert changed == {
        "session": SESSION,
        "actor": {"id": "agent_7", "role": "agent", "name": "Sam", "device": "console"},
        "status": "typing",
    }


async def test_sse_customer_stream_hides_supervisors(serve: Serve) -> None:
    """A customer's SSE stream carries no supervisor presence."""
    server = live(serve)
    await create_session(server)
    async with sse(server, CUSTOMER) as events:
        async with peer(server, SUPERVISOR, device="desk") as supervisor:
            await supervisor.send(subscribe("-1"))
            await supervisor.expect("subscribed")
            async with peer(server, AGENT, device="console") as agent:
                await agent.send(subscribe("-1"))
                await agent.expect("subscribed")
                _, data = await next_presence(events)
    assert data["actor"]["id"] == "agent_7"


# POST …/presence and the state snapshot


async def test_http_presence_keeps_a_device_present_for_the_ttl(
    serve: Serve,
) -> None:
    """A device kept present by POST …/presence drops once the TTL passes
    without another."""
    server = live(serve, presence_ttl=0.6)
    await create_session(server)
    async with (
        peer(server, AGENT, device="console") as agent,
        httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as http,
    ):
        await agent.send(subscribe("-1"))
        await agent.expect("subscribed")
        response = await http.post(
            f"/v1/sessions/{SESSION}/presence",
            json={"status": "idle", "device": "kiosk"},
            headers=bearer(CUSTOMER),
        )
        assert response.status_code == 200, response.text
        assert await presence_of(agent) == ("cust_42", "kiosk", "idle")
        assert await presence_of(agent) == ("cust_42", "kiosk", "offline")
    listed = response.json()["presence"]
    assert [(p["actor"]["id"], p["actor"]["device"]) for p in listed] == [
        ("agent_7", "console"),
        ("cust_42", "kiosk"),
    ]


async def test_http_presence_refuses_a_bad_body() -> None:
    """A body that is not {status, device?} with a known status and a valid
    device is a 400 with a code, and sets nothing."""
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        created = await client.post(
            "/v1/sessions", json={"id": SESSION}, headers=bearer(CUSTOMER)
        )
        assert created.status_code == 201
        url = f"/v1/sessions/{SESSION}/presence"
        cases = [
            ({}, "invalid_presence"),
            ({"status": "dancing"}, "invalid_presence"),
            ({"status": "idle", "extra": 1}, "invalid_presence"),
            ({"status": "idle", "device": "no spaces"}, "invalid_device"),
            ({"status": "idle", "device": 7}, "invalid_device"),
        ]
        for body, code in cases:
            response = await client.post(url, json=body, headers=bearer(CUSTOMER))
            assert response.status_code == 400, body
            assert response.json()["error"]["code"] == code, body
        state = await client.get(f"/v1/sessions/{SESSION}", headers=bearer(CUSTOMER))
    assert state.json()["presence"] == []


async def test_http_state_hides_supervisor_presence_from_customers() -> None:
    """The state snapshot lists devices present; a customer's leaves out
    supervisors. A POST without a device uses the Threadline-Device header,
    else ``http``."""
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        await client.post(
            "/v1/sessions", json={"id": SESSION}, headers=bearer(CUSTOMER)
        )
        url = f"/v1/sessions/{SESSION}/presence"
        for tok, headers in (
            (SUPERVISOR, {}),
            (AGENT, {"threadline-device": "console"}),
        ):
            response = await client.post(
                url, json={"status": "active"}, headers=bearer(tok, **headers)
            )
            assert response.status_code == 200, response.text
        as_customer = await client.get(
            f"/v1/sessions/{SESSION}", headers=bearer(CUSTOMER)
        )
        as_agent = await client.get(f"/v1/sessions/{SESSION}", headers=bearer(AGENT))

    def devices(response: httpx.Response) -> list[tuple[str, str]]:
        listed = response.json()["presence"]
        return [(p["actor"]["id"], p["actor"]["device"]) for p in listed]

    assert devices(as_customer) == [("agent_7", "console")]
    assert devices(as_agent) == [("agent_7", "console"), ("sup_1", "http")]


async def test_http_presence_offline_drops_the_device_and_logs_left() -> None:
    """``status: offline`` drops the device at once; its participant, present
    no more, is logged joined then left."""
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        await client.post(
            "/v1/sessions", json={"id": SESSION}, headers=bearer(CUSTOMER)
        )
        url = f"/v1/sessions/{SESSION}/presence"
        await client.post(url, json={"status": "idle"}, headers=bearer(AGENT))
        gone = await client.post(url, json={"status": "offline"}, headers=bearer(AGENT))
        assert app.presence is not None
        await app.presence.flush()
        read = await client.get(f"/v1/sessions/{SESSION}/events", headers=bearer(AGENT))
    assert gone.status_code == 200 and gone.json() == {"presence": []}
    assert [
        (e["type"], e["actor"]["role"], e["data"]["participant"]["id"])
        for e in read.json()
    ] == [
        ("participant.joined", "server", "agent_7"),
        ("participant.left", "server", "agent_7"),
    ]


async def test_threadline_serve_serves_presence_unless_told_not_to() -> None:
    """``threadline serve`` serves presence by default; ``--no-presence``
    answers ``POST …/presence`` with ``400 not_supported``."""
    statuses = []
    for extra in ((), ("--no-presence",)):
        args = serve_args("memory://", "--secret", SECRET, *extra)
        async with (
            server_process(args) as process,
            httpx.AsyncClient(base_url=process.url, timeout=5000 * MS) as http,
        ):
            created = await http.post(
                "/v1/sessions", json={"id": SESSION}, headers=bearer(CUSTOMER)
            )
            assert created.status_code == 201
            response = await http.post(
                f"/v1/sessions/{SESSION}/presence",
                json={"status": "active"},
                headers=bearer(CUSTOMER),
            )
            statuses.append((response.status_code, response.json()))
    assert statuses[0][0] == 200
    assert statuses[1][0] == 400
    assert statuses[1][1]["error"]["code"] == "not_supported"
