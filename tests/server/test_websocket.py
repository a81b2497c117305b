"""The WebSocket transport /v1/ws over a real uvicorn: handshake, subscribe,
publish, pacing, tokens, drain, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.server.conftest import SECRET
from tests.server.harness import ServerThread, WaitCounter, serve_args, server_process
from tests.utils import MS, wait_for
from threadline.auth import create_token
from threadline.server.app import Application

Serve = Callable[..., tuple[ServerThread, WaitCounter]]

SESSION = "order-1"


def token(sub: str = "bot", role: str = "ai", **claims: Any) -> str:
    claims.setdefault("sessions", ["**"])
    return create_token(SECRET, sub=sub, role=role, **claims)


CUSTOMER = token("cust_42", "customer")
AI = token("bot", "ai")


def delta(seq: int, message_id: str = "m1") -> dict[str, Any]:
    return {
        "type": "message.delta",
        "id": f"{message_id}-d{seq}",
        "data": {
            "message_id": message_id,
            "seq": seq,
            "part_index": 0,
            "part_type": "text",
            "text": f"t{seq} ",
        },
    }


def start(message_id: str = "m1") -> dict[str, Any]:
    return {
        "type": "message.start",
        "id": f"{message_id}-start",
        "data": {"message_id": message_id, "role": "assistant"},
    }


def user_message(event_id: str, text: str = "hi") -> dict[str, Any]:
    return {
        "type": "message",
        "id": event_id,
        "data": {
            "message_id": f"m-{event_id}",
            "role": "user",
            "parts": [{"type": "text", "text": text}],
        },
    }


NOTE = {"type": "note", "id": "n1", "data": {"text": "secret whisper"}}


# Client side


@dataclass
class Peer:
    """A test client: sends frames of messages, reads messages one by one."""

    ws: ClientConnection
    frames: int = 0
    backlog: list[dict[str, Any]] = field(default_factory=list)
    aside: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, *messages: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(list(messages)))

    async def recv(self, timeout: float = 2000 * MS) -> dict[str, Any]:
        while not self.backlog:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            self.frames += 1
            items = json.loads(frame)
            assert isinstance(items, list) and items, frame
            self.backlog.extend(items)
        return self.backlog.pop(0)

    async def expect(self, kind: str, timeout: float = 2000 * MS) -> dict[str, Any]:
        """The next message, which must be of type ``kind``."""
        message = await self.recv(timeout)
        assert message["type"] == kind, message
        return message

    async def take(self, kind: str, timeout: float = 2000 * MS) -> dict[str, Any]:
        """The first message of type ``kind``; others are set aside, in order,
        for later calls (messages of different kinds may overtake each other)."""
        for i, message in enumerate(self.aside):
            if message["type"] == kind:
                return self.aside.pop(i)
        while True:
            message = await self.recv(timeout)
            if message["type"] == kind:
                return message
            self.aside.append(message)

    async def events(
        self, count: int, timeout: float = 5000 * MS
    ) -> list[dict[str, Any]]:
        """Exactly ``count`` events (of any session)."""
        events: list[dict[str, Any]] = []
        while len(events) < count:
            message = await self.take("events", timeout)
            events.extend(message["events"])
        assert len(events) == count, [e["offset"] for e in events]
        return events

    async def closed(self, timeout: float = 2000 * MS) -> int:
        """Read until the server closes; its close code."""
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        assert self.ws.close_code is not None
        return self.ws.close_code


def ws_url(server: ServerThread) -> str:
    return server.url.replace("http://", "ws://") + "/v1/ws"


@contextlib.asynccontextmanager
async def peer(
    server: ServerThread,
    tok: str | None = AI,
    *,
    device: str | None = None,
    **options: Any,
) -> AsyncIterator[Peer]:
    """A connection to ``/v1/ws``; says ``hello`` with ``tok`` unless None."""
    options.setdefault("subprotocols", [Subprotocol("threadline.v1")])
    async with connect(
        ws_url(server), max_size=None, open_timeout=2000 * MS, **options
    ) as ws:
        client = Peer(ws)
        if tok is not None:
            hello: dict[str, Any] = {"type": "hello", "token": tok}
            if device is not None:
                hello["device"] = device
            await client.send(hello)
        yield client


def subscribe(
    offset: str = "-1", rid: str = "s1", session: str = SESSION
) -> dict[str, Any]:
    return {
        "type": "subscribe",
        "rid": rid,
        "session": session,
        "offset": offset,
        "view": "raw",
    }


def publish(rid: str, *events: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "publish",
        "rid": rid,
        "session": extra.pop("session", SESSION),
        "events": list(events),
        **extra,
    }


async def create_session(server: ServerThread, session: str = SESSION) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as client:
        response = await client.post(
            "/v1/sessions",
            json={"id": session},
            headers={"authorization": f"Bearer {CUSTOMER}"},
        )
        assert response.status_code == 201, response.text


async def http_publish(server: ServerThread, *events: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as client:
        response = await client.post(
            f"/v1/sessions/{SESSION}/events",
            json={"events": list(events)},
            headers={"authorization": f"Bearer {AI}"},
        )
        assert response.status_code == 200, response.text
        return [e["offset"] for e in response.json()["events"]]


def on_server(server: ServerThread, fn: Callable[[Application], Any]) -> Any:
    """Run ``fn(app)`` on the server's event loop (a coroutine is awaited there)."""
    assert server.server is not None
    loop = server.server.servers[0].get_loop()

    async def call() -> Any:
        result = fn(server.app)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return asyncio.run_coroutine_threadsafe(call(), loop).result(5000 * MS)


def live(serve: Serve, **overrides: Any) -> ServerThread:
    server, _ = serve(auth=True, secret=SECRET, **overrides)
    return server


# Handshake


async def test_ws_refuses_a_connection_without_the_subprotocol(serve: Serve) -> None:
    """A client that does not offer threadline.v1 is refused with HTTP 403."""
    server = live(serve)
    with pytest.raises(InvalidStatus) as caught:
        async with peer(server, None, subprotocols=None):
            pass
    assert caught.value.response.status_code == 403


async def test_ws_accepts_the_subprotocol(serve: Serve) -> None:
    """The server selects threadline.v1 in the handshake."""
    server = live(serve)
    async with peer(server) as client:
        assert client.ws.subprotocol == "threadline.v1"


async def test_ws_closes_4401_when_the_first_message_is_not_hello(
    serve: Serve,
) -> None:
    """A subscribe before any hello closes the connection 4401."""
    server = live(serve)
    async with peer(server, None) as client:
        await client.send(subscribe())
        assert await client.closed() == 4401


async def test_ws_closes_4401_on_a_forged_token(serve: Serve) -> None:
    """A hello whose token is signed with another secret closes 4401."""
    server = live(serve)
    forged = create_token("another-secret-0123456789abcdef-0123", sub="bot", role="ai")
    async with peer(server, forged) as client:
        assert await client.closed() == 4401


async def test_ws_closes_4401_on_an_expired_token(serve: Serve) -> None:
    """A hello whose token expired beyond the leeway closes 4401."""
    server = live(serve)
    expired = token(now=time.time() - 3600, ttl_seconds=60)
    async with peer(server, expired) as client:
        assert await client.closed() == 4401


async def test_ws_closes_4408_without_a_hello_in_time(serve: Serve) -> None:
    """A connection that says nothing is closed 4408 after the hello timeout."""
    server = live(serve, ws_hello_timeout=200 * MS)
    async with peer(server, None) as client:
        assert await client.closed() == 4408


# Subscribing


async def test_ws_subscribe_answers_with_the_resolved_offset_and_state(
    serve: Serve,
) -> None:
    """subscribed carries the rid, a real offset for -1, and the reader's state."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        answer = await client.expect("subscribed")
    assert answer["rid"] == "s1"
    assert answer["session"] == SESSION
    assert answer["offset"].endswith("_0000000000000000")
    assert answer["state"]["session"]["customer"] == "cust_42"
    assert answer["state"]["controller"]["role"] == "ai"
    assert "cursors" in answer["state"]


async def test_ws_subscribe_now_resolves_to_the_tail(serve: Serve) -> None:
    """offset=now answers the tail and sends only events published after it."""
    server = live(serve)
    await create_session(server)
    (first,) = await http_publish(server, start())
    async with peer(server) as client:
        await client.send(subscribe("now"))
        answer = await client.expect("subscribed")
        assert answer["offset"] == first
        (second,) = await http_publish(server, delta(0))
        (event,) = await client.events(1)
    assert event["offset"] == second


async def test_ws_subscriber_gets_history_then_live_events(serve: Serve) -> None:
    """A subscriber from -1 gets the stored events, then each new one, in order."""
    server = live(serve)
    await create_session(server)
    stored = await http_publish(server, start(), delta(0))
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        history = await client.events(2)
        fresh = await http_publish(server, delta(1), delta(2))
        live_events = await client.events(2)
    assert [e["offset"] for e in history] == stored
    assert [e["offset"] for e in live_events] == fresh
    assert live_events[0]["data"]["text"] == "t1 "


async def test_ws_packs_many_events_per_frame_under_load(serve: Serve) -> None:
    """200 events published as fast as possible arrive in fewer frames than events."""
    server = live(serve)
    await create_session(server)
    await http_publish(server, start())
    async with peer(server) as reader, peer(server) as writer:
        await reader.send(subscribe("now"))
        await reader.expect("subscribed")
        frames_before = reader.frames
        await writer.send(*(publish(f"p{i}", delta(i)) for i in range(200)))
        events = await reader.events(200)
    assert [e["data"]["seq"] for e in events] == list(range(200))
    assert reader.frames - frames_before < 200


async def test_ws_resume_from_the_last_offset_has_no_gap_or_duplicate(
    serve: Serve,
) -> None:
    """A reconnect from the last offset received gets exactly the events after it."""
    server = live(serve)
    await create_session(server)
    await http_publish(server, start(), delta(0), delta(1))
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        seen = await client.events(3)
    missed = await http_publish(server, delta(2), delta(3))
    async with peer(server) as client:
        await client.send(subscribe(seen[-1]["offset"]))
        answer = await client.expect("subscribed")
        assert answer["offset"] == seen[-1]["offset"]
        resumed = await client.events(2)
        more = await http_publish(server, delta(4))
        tail = await client.events(1)
    assert [e["offset"] for e in resumed] == missed
    assert [e["offset"] for e in tail] == more


async def test_ws_customer_never_receives_staff_events(serve: Serve) -> None:
    """A staff note reaches the staff subscriber and not the customer's, whose
    offsets have no hole where it was."""
    server = live(serve)
    await create_session(server)
    async with peer(server, CUSTOMER) as customer, peer(server) as staff:
        for client in (customer, staff):
            await client.send(subscribe("-1"))
            await client.expect("subscribed")
        await http_publish(server, NOTE, start())
        staff_events = await staff.events(2)
        (visible,) = await customer.events(1)
    assert [e["type"] for e in staff_events] == ["note", "message.start"]
    assert visible["type"] == "message.start"
    assert visible["offset"].endswith("_0000000000000001")
    assert "secret whisper" not in json.dumps(visible)


async def test_ws_unsubscribe_stops_the_events(serve: Serve) -> None:
    """After unsubscribe, the session's events no longer come."""
    server = live(serve)
    await create_session(server)
    await create_session(server, "order-2")
    async with peer(server) as client:
        await client.send(subscribe("now"), subscribe("now", "s2", "order-2"))
        await client.expect("subscribed")
        await client.expect("subscribed")
        await client.send({"type": "unsubscribe", "session": SESSION})
        await http_publish(server, start())
        await client.send(publish("p1", start("m2"), session="order-2"))
        received = [await client.recv(), await client.recv()]
    kinds = sorted((m["type"], m.get("session")) for m in received)
    assert kinds == [("events", "order-2"), ("published", None)]


async def test_ws_subscribe_to_another_customers_session_is_not_found(
    serve: Serve,
) -> None:
    """A customer subscribing to a session of another customer gets the HTTP
    API's answer: session_not_found."""
    server = live(serve)
    await create_session(server)
    other = token("cust_7", "customer")
    async with peer(server, other) as client:
        await client.send(subscribe())
        error = await client.expect("error")
    assert error["rid"] == "s1"
    assert error["code"] == "session_not_found"
    assert error["details"]["status"] == 404


async def test_ws_subscribe_outside_the_token_globs_is_forbidden(serve: Serve) -> None:
    """A token whose sessions claim does not match gets error forbidden."""
    server = live(serve)
    await create_session(server)
    async with peer(server, token(sessions=["other-*"])) as client:
        await client.send(subscribe())
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("s1", "forbidden")


async def test_ws_subscribe_from_another_generation_is_offset_gone(
    serve: Serve,
) -> None:
    """An offset of another generation is answered offset_gone with the
    earliest and tail offsets."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("0000000000000001_0000000000000005"))
        error = await client.expect("error")
    assert error["code"] == "offset_gone"
    assert {"earliest", "tail"} <= set(error["details"])


async def test_ws_subscription_limit_is_an_error(serve: Serve) -> None:
    """Past the configured number of subscriptions, subscribe gets
    too_many_subscriptions."""
    server = live(serve, ws_max_subscriptions=2)
    for name in ("a", "b", "c"):
        await create_session(server, name)
    async with peer(server) as client:
        await client.send(
            subscribe(rid="1", session="a"),
            subscribe(rid="2", session="b"),
            subscribe(rid="3", session="c"),
        )
        answers = {}
        for _ in range(3):
            message = await client.recv()
            answers[message["rid"]] = message
    assert answers["1"]["type"] == answers["2"]["type"] == "subscribed"
    assert answers["3"]["code"] == "too_many_subscriptions"


async def test_ws_compact_view_folds_history_then_streams_live_deltas(
    serve: Serve,
) -> None:
    """view=compact sends a completed message once and an open one with its parts
    so far, then the open message's new deltas raw."""
    server = live(serve)
    await create_session(server)
    end = {
        "type": "message.end",
        "id": "m1-end",
        "data": {"message_id": "m1", "status": "complete"},
    }
    await http_publish(
        server, start(), delta(0), delta(1), end, start("m2"), delta(0, "m2")
    )
    async with peer(server) as client:
        await client.send({**subscribe(), "view": "compact"})
        await client.expect("subscribed")
        folded = await client.events(2)
        (fresh,) = await http_publish(server, delta(1, "m2"))
        (live_delta,) = await client.events(1)
    assert [e["type"] for e in folded] == ["message", "message.start"]
    assert folded[0]["data"]["parts"] == [{"type": "text", "text": "t0 t1 "}]
    assert folded[1]["data"]["parts"] == [{"type": "text", "text": "t0 "}]
    assert (live_delta["type"], live_delta["offset"]) == ("message.delta", fresh)


async def test_ws_presence_is_not_supported_with_presence_off(serve: Serve) -> None:
    """With presence off, a presence message is answered with error not_supported."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send({"type": "presence", "session": SESSION, "status": "active"})
        error = await client.expect("error")
    assert error["code"] == "not_supported"


# Publishing


async def test_ws_publish_answers_the_offsets_of_its_events(serve: Serve) -> None:
    """published carries the rid and one offset per event, the ones subscribers see."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        await client.send(publish("p1", start(), delta(0)))
        received = [await client.recv() for _ in range(2)]
    (answer,) = [m for m in received if m["type"] == "published"]
    (events,) = [m for m in received if m["type"] == "events"]
    assert answer["rid"] == "p1"
    assert answer["offsets"] == [e["offset"] for e in events["events"]]


async def test_ws_publish_takes_the_actor_from_the_token_and_device(
    serve: Serve,
) -> None:
    """The stored actor is the token's identity and the hello's device, whatever
    the draft claims."""
    server = live(serve)
    await create_session(server)
    forged = {**start(), "actor": {"id": "someone", "role": "service"}}
    async with peer(server, device="tab-7f3a") as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        await client.send(publish("p1", forged))
        await client.take("published")
        events = await client.events(1)
    assert events[0]["actor"] == {"id": "bot", "role": "ai", "device": "tab-7f3a"}


async def test_ws_publish_retry_is_stored_once(serve: Serve) -> None:
    """A publish resent with the same event ids is answered with the original
    offsets and stores nothing new."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(publish("p1", start(), delta(0)))
        first = await client.expect("published")
    async with peer(server) as client:  # a reconnect resends the unanswered publish
        await client.send(publish("p1", start(), delta(0)))
        again = await client.expect("published")
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        events = await client.events(2)
        await client.send(publish("p2", delta(1)))
        await client.take("published")
        (after,) = await client.events(1)
    assert again["offsets"] == first["offsets"]
    assert [e["offset"] for e in events] == first["offsets"]
    assert after["data"]["seq"] == 1


async def test_ws_publish_same_id_other_body_is_id_conflict(serve: Serve) -> None:
    """Reusing an event id with another body is error id_conflict (409)."""
    server = live(serve)
    await create_session(server)
    changed = {**start(), "data": {"message_id": "m1", "role": "system"}}
    async with peer(server) as client:
        await client.send(publish("p1", start()))
        await client.expect("published")
        await client.send(publish("p2", changed))
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("p2", "id_conflict")
    assert error["details"]["status"] == 409


async def test_ws_publish_with_a_stale_expected_offset_is_tail_mismatch(
    serve: Serve,
) -> None:
    """expected_offset that is not the tail is error tail_mismatch with the tail."""
    server = live(serve)
    await create_session(server)
    (tail,) = await http_publish(server, start())
    stale = tail[:-1] + "0"
    async with peer(server) as client:
        await client.send(publish("p1", delta(0), expected_offset=stale))
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("p1", "tail_mismatch")
    assert error["details"] == {"offset": tail, "status": 412}


async def test_ws_publish_refused_by_the_session_rules_keeps_their_code(
    serve: Serve,
) -> None:
    """A delta out of sequence is error delta_gap with the expected seq."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(publish("p1", start(), delta(1)))
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("p1", "delta_gap")
    assert error["details"] == {"expected": 0, "status": 409}


async def test_ws_publish_of_a_malformed_event_is_invalid_event(serve: Serve) -> None:
    """A draft with an unknown type is error invalid_event and nothing is stored."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(publish("p1", {"type": "nope", "id": "x", "data": {}}))
        error = await client.expect("error")
        await client.send(subscribe("now"))
        answer = await client.expect("subscribed")
    assert (error["rid"], error["code"]) == ("p1", "invalid_event")
    assert answer["offset"].endswith("_0000000000000000")


async def test_ws_customer_cannot_publish_staff_notes(serve: Serve) -> None:
    """The rights table holds over WebSocket: a customer's note is forbidden."""
    server = live(serve)
    await create_session(server)
    async with peer(server, CUSTOMER) as client:
        await client.send(publish("p1", NOTE))
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("p1", "forbidden")


async def test_ws_cursor_moves_the_readers_cursor(serve: Serve) -> None:
    """A cursor message moves the caller's cursor, seen in the session state."""
    server = live(serve)
    await create_session(server)
    await http_publish(server, start())
    async with peer(server, CUSTOMER) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        (event,) = await client.events(1)
        await client.send(
            {"type": "cursor", "session": SESSION, "offset": event["offset"]}
        )

        async def cursor() -> object:
            async with httpx.AsyncClient(base_url=server.url) as http:
                response = await http.get(
                    f"/v1/sessions/{SESSION}",
                    headers={"authorization": f"Bearer {CUSTOMER}"},
                )
            return {"participant": "cust_42", "offset": event["offset"]} in (
                response.json()["cursors"]
            )

        await wait_for(cursor, 2000 * MS)


# Tokens


async def test_ws_closes_4001_when_the_token_expires(serve: Serve) -> None:
    """At the token's expiry plus grace, a connection not refreshed closes 4001."""
    server = live(serve, ws_token_grace=0)
    async with peer(server, token(ttl_seconds=1)) as client:
        await client.send(publish("p1", start(), session="nowhere"))
        await client.expect("error")  # the hello was accepted
        assert await client.closed(3000 * MS) == 4001


async def test_ws_refresh_keeps_the_connection_past_the_old_expiry(
    serve: Serve,
) -> None:
    """A refresh with a fresh token for the same identity moves the deadline."""
    server = live(serve, ws_token_grace=0)
    await create_session(server)
    issued = time.time()
    async with peer(server, token(ttl_seconds=1, now=issued)) as client:
        await client.send({"type": "refresh", "token": token()})
        await wait_for(lambda: time.time() > int(issued) + 1.2, 3000 * MS)
        await client.send(publish("p1", start()))
        answer = await client.expect("published")
    assert answer["rid"] == "p1"


async def test_ws_refresh_for_another_identity_closes_4403(serve: Serve) -> None:
    """A refresh whose token names another participant closes 4403."""
    server = live(serve)
    async with peer(server) as client:
        await client.send({"type": "refresh", "token": token("other-bot")})
        assert await client.closed() == 4403


async def test_ws_refresh_with_a_bad_token_closes_4401(serve: Serve) -> None:
    """A refresh whose token does not verify closes 4401."""
    server = live(serve)
    async with peer(server) as client:
        await client.send({"type": "refresh", "token": "not.a.token"})
        assert await client.closed() == 4401


async def test_ws_refresh_that_no_longer_reaches_a_session_ends_it(
    serve: Serve,
) -> None:
    """A subscription the refreshed token does not reach ends with gone forbidden."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("now"))
        await client.expect("subscribed")
        await client.send({"type": "refresh", "token": token(sessions=["other-*"])})
        gone = await client.expect("gone")
    assert gone == {"type": "gone", "session": SESSION, "reason": "forbidden"}


# Server side endings


async def test_ws_drain_closes_4002_after_the_queued_events(serve: Serve) -> None:
    """When the server drains, a subscriber gets what was queued, then 4002."""
    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        await http_publish(server, start())
        await client.events(1)
        on_server(server, lambda app: app.drain())
        assert await client.closed() == 4002


async def test_ws_connecting_while_draining_closes_4002(serve: Serve) -> None:
    """A connection opened while the server drains is closed 4002 at once."""
    server = live(serve)
    on_server(server, lambda app: app.drain())
    async with peer(server, None) as client:
        assert await client.closed() == 4002


async def test_ws_sigterm_closes_connections_4002(tmp_path: Any) -> None:
    """threadline serve closes its WebSockets 4002 on SIGTERM, before uvicorn's
    own 1012."""
    url = f"sqlite:///{tmp_path / 'ws.db'}"
    async with server_process(serve_args(url, "--secret", SECRET)) as process:
        base = process.url.replace("http://", "ws://")
        async with connect(
            base + "/v1/ws", subprotocols=[Subprotocol("threadline.v1")]
        ) as ws:
            client = Peer(ws)
            await client.send({"type": "hello", "token": AI})
            await client.send(publish("p1", start(), session="nowhere"))
            await client.expect("error")
            process.signal(signal.SIGTERM)
            assert await client.closed(5000 * MS) == 4002
        assert await process.wait(10_000 * MS) == 0


async def test_ws_session_deleted_ends_the_subscription_with_gone(
    serve: Serve,
) -> None:
    """When a subscribed session's log is deleted, the subscriber gets gone deleted."""
    from threadline.storage.base import LogKey

    server = live(serve)
    await create_session(server)
    async with peer(server) as client:
        await client.send(subscribe("now"))
        await client.expect("subscribed")
        on_server(
            server,
            lambda app: app.store.delete(LogKey("default", f"session:{SESSION}")),
        )
        gone = await client.expect("gone")
    assert gone == {"type": "gone", "session": SESSION, "reason": "deleted"}


async def test_ws_disconnect_leaves_no_task_behind(serve: Serve) -> None:
    """After a client drops mid-stream, the server has no task, feed or
    connection left of it."""
    server = live(serve)
    await create_session(server)
    await create_session(server, "order-2")
    await http_publish(server, start())

    def count_tasks(app: Application) -> int:
        return len(asyncio.all_tasks())

    baseline = on_server(server, count_tasks)
    async with peer(server) as client:
        await client.send(
            subscribe("-1"),
            subscribe("-1", "s2", "order-2"),
            publish("p1", delta(0)),
            {"type": "cursor", "session": SESSION, "offset": "0" * 16 + "_" + "0" * 16},
        )
        await client.take("subscribed")
        await client.take("subscribed")
        assert on_server(server, lambda app: app.websockets.hub.feeds) == 2
    await wait_for(lambda: on_server(server, count_tasks) <= baseline, 2000 * MS)
    assert on_server(server, lambda app: app.websockets.hub.feeds) == 0
    assert on_server(server, lambda app: len(app.websockets.connections)) == 0


# Bounded resources


def small_window_socket(server: ServerThread) -> socket.socket:
    """A connected client socket with a tiny receive buffer, so that a client
    that stops reading pushes back on the server quickly."""
    host, port = httpx.URL(server.url).host, httpx.URL(server.url).port
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


def small_send_buffers(server: ServerThread) -> None:
    """Shrink the kernel send buffer of the server's open connections (run on
    the server's loop), so that a stalled reader pushes back within kilobytes
    instead of the megabytes Linux grants by autotuning."""
    assert server.server is not None
    for connection in server.server.server_state.connections:
        sock = connection.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)


async def test_ws_slow_consumer_is_closed_4000_and_resumes_by_replay(
    serve: Serve,
) -> None:
    """A subscriber that stops reading is closed 4000 while the server holds a
    bounded amount for it, then gets every event by resuming from its offset."""
    queue_bytes = 64 * 1024
    server = live(serve, ws_max_queue_bytes=queue_bytes)
    handler = server.app.websockets
    await create_session(server)
    published = await http_publish(server, start())
    held: list[tuple[int, int]] = []  # (send queue, transport buffer) samples

    def sample() -> None:
        assert server.server is not None
        transports = [c.transport for c in server.server.server_state.connections]
        held.append(
            (
                max((c.proto.queued_bytes for c in handler.connections), default=0),
                max(t.get_write_buffer_size() for t in transports),
            )
        )

    async with peer(server, sock=small_window_socket(server)) as slow:
        await slow.send(subscribe("-1"))
        await slow.expect("subscribed")
        slow.ws.transport.pause_reading()  # the client stops reading
        on_server(server, lambda app: small_send_buffers(server))
        async with peer(server) as writer:
            seq = 0
            while not handler.stats.closes.get(4000) and seq < 100_000:
                batch = [delta(seq + i) for i in range(250)]
                await writer.send(publish(f"p{seq}", *batch))
                published += (await writer.expect("published", 5000 * MS))["offsets"]
                seq += len(batch)
                on_server(server, lambda app: sample())
        assert handler.stats.closes.get(4000) == 1, seq
        assert seq >= 250  # events went in while it did not read (uncompressed frames)
        chunk = handler.hub.read_bytes
        assert max(queued for queued, _ in held) <= queue_bytes + chunk
        assert max(buffered for _, buffered in held) <= 64 * 1024 + queue_bytes + chunk
        slow.ws.transport.resume_reading()
        received: list[str] = []
        with pytest.raises(ConnectionClosed):
            while True:
                message = await slow.recv(5000 * MS)
                if message["type"] == "events":
                    received += [e["offset"] for e in message["events"]]
        assert slow.ws.close_code == 4000
    assert received == published[: len(received)]
    async with peer(server) as again:
        await again.send(subscribe(received[-1]))
        await again.expect("subscribed")
        rest = await again.events(len(published) - len(received), 10_000 * MS)
    assert received + [e["offset"] for e in rest] == published


async def test_ws_subscribe_beyond_the_tail_is_invalid_offset(serve: Serve) -> None:
    """An offset of this generation past the tail is error invalid_offset."""
    server = live(serve)
    await create_session(server)
    (tail,) = await http_publish(server, start())
    beyond = tail[:-1] + "9"
    async with peer(server) as client:
        await client.send(subscribe(beyond))
        error = await client.expect("error")
    assert (error["rid"], error["code"]) == ("s1", "invalid_offset")


async def test_ws_binary_frame_closes_4409(serve: Serve) -> None:
    """A binary frame is not part of the protocol: the server closes 4409."""
    server = live(serve)
    async with peer(server) as client:
        await client.ws.send(b"[]")
        assert await client.closed() == 4409


async def test_ws_other_paths_are_refused(serve: Serve) -> None:
    """A WebSocket to another path than /v1/ws is refused with HTTP 403."""
    server = live(serve)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(ws_url(server) + "x", open_timeout=2000 * MS):
            pass
    assert caught.value.response.status_code == 403


async def test_ws_unexpected_publish_failure_is_answered_internal_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A publish that fails for an unexpected reason still gets its answer,
    error internal_error with status 500, and the connection stays open."""
    server = live(serve)
    await create_session(server)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    on_server(server, lambda app: setattr(app.sessions, "publish", broken))
    async with peer(server) as client:
        await client.send(publish("p1", start()))
        error = await client.expect("error")
        await client.send(subscribe("now"))
        await client.expect("subscribed")
    assert (error["rid"], error["code"]) == ("p1", "internal_error")
    assert error["details"] == {"status": 500}
    assert "publish failed" in caplog.text


async def test_ws_catch_up_is_paced_and_never_overflows_the_queue(
    serve: Serve,
) -> None:
    """Replaying a history many times the send queue's size sends every event,
    in order, without closing 4000."""
    server = live(serve, ws_max_queue_bytes=8 * 1024)
    await create_session(server)
    stored = await http_publish(server, start(), *(delta(i) for i in range(299)))
    async with peer(server) as client:
        await client.send(subscribe("-1"))
        await client.expect("subscribed")
        events = await client.events(300, 10_000 * MS)
        fresh = await http_publish(server, delta(299))
        (live_event,) = await client.events(1)
    assert [e["offset"] for e in events] == stored
    assert live_event["offset"] == fresh[0]
    assert 4000 not in server.app.websockets.stats.closes
