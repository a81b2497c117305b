"""Webhooks for members who were not there: durable outbox, coalescing,
presence, at-least-once with backoff across restarts, Standard Webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.server.notify import (
    OUTBOX,
    Notifier,
    NotifySettings,
    sign,
    verify_signature,
)
from threadline.server.sessions import SessionManager
from threadline.storage.base import LogStore

Opener = Callable[[], Awaitable[LogStore]]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TENANT = "acme"
CUSTOMER = Actor("cust_1", "customer")
AI = Actor("bot", "ai")
T0 = 1_780_000_000.0


def test_signature_matches_the_standard_webhooks_example() -> None:
    """The reference vector of the Standard Webhooks specification."""
    body = b'{"test": 2432232314}'
    signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": f"v1,bogus {signature}",
    }
    assert verify_signature(SECRET, headers, body, now=1614265330)
    assert not verify_signature(SECRET, headers, body + b" ", now=1614265330)
    assert not verify_signature(SECRET, headers, body, now=1614265330 + 301)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjU", "whsec_!!", "whsec_AAAA"])
def test_malformed_secrets_are_refused(secret: str) -> None:
    """The secret is whsec_ + base64 of at least 16 bytes."""
    with pytest.raises(ValueError):
        NotifySettings("http://x", secret)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Receiver:
    """An endpoint answering with the statuses it is given (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append((dict(request.headers), request.content))
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


def message(event_id: str) -> EventDraft:
    parts = [{"type": "text", "text": f"answer {event_id}"}]
    data = {"message_id": f"m-{event_id}", "role": "assistant", "parts": parts}
    return EventDraft("message", event_id, data)


async def setup(opener: Opener, clock: Clock) -> SessionManager:
    sessions = SessionManager(await opener(), clock=clock)
    sessions.notify_coalesce = 30.0
    await sessions.create(TENANT, "s1", customer=CUSTOMER.id)
    return sessions


def notifier(
    sessions: SessionManager,
    clock: Clock,
    receiver: Receiver,
    present: set[str] | None = None,
) -> Notifier:
    async def is_present(tenant: str, session: str, participant: str) -> bool:
        return participant in (present or set())

    return Notifier(
        sessions.store,
        NotifySettings("http://app.test/hook", SECRET, coalesce=30.0, backoff=5.0),
        is_present,
        clock=clock,
        transport=httpx.MockTransport(receiver),
    )


async def test_one_signed_notification_per_burst_per_absent_member(
    opener: Opener,
) -> None:
    """Three answers within 30 s make one notification to the customer, not
    to their author, sent when the window closes, signed."""
    clock = Clock()
    sessions = await setup(opener, clock)
    for i in range(3):
        await sessions.publish(TENANT, "s1", AI, [message(f"a{i}")])
        clock.now += 5
    receiver = Receiver()
    sender = notifier(sessions, clock, receiver)
    try:
        assert await sender.deliver_due() == 0  # the window is still open
        clock.now = T0 + 30
        assert await sender.deliver_due() == 1
    finally:
        await sender.aclose()
    [body] = receiver.bodies()
    assert body["participant"] == CUSTOMER.id and body["messages"] == 3
    assert body["session"] == "s1" and body["tenant"] == TENANT
    headers, raw = receiver.received[0]
    assert verify_signature(SECRET, headers, raw, now=clock.now)
    assert await sessions.store.index.scan(TENANT, OUTBOX) == []


async def test_a_present_member_is_not_notified(opener: Opener) -> None:
    """Whoever has a device present when the entry falls due saw it live."""
    clock = Clock()
    sessions = await setup(opener, clock)
    await sessions.publish(TENANT, "s1", AI, [message("a1")])
    clock.now += 31
    receiver = Receiver()
    sender = notifier(sessions, clock, receiver, present={CUSTOMER.id})
    try:
        await sender.deliver_due()
    finally:
        await sender.aclose()
    assert receiver.received == [] and sender.skipped == 1
    assert await sessions.store.index.scan(TENANT, OUTBOX) == []


async def test_failures_back_off_and_survive_a_restart(opener: Opener) -> None:
    """A 500 keeps the entry with a doubling delay, in the store: a restarted
    server retries it with the same webhook-id, and it is sent once."""
    clock = Clock()
    sessions = await setup(opener, clock)
    await sessions.publish(TENANT, "s1", AI, [message("a1")])
    clock.now += 30
    receiver = Receiver(500, 503)
    sender = notifier(sessions, clock, receiver)
    await sender.deliver_due()
    clock.now += 4.9
    assert await sender.deliver_due() == 0  # first retry after 5 s
    clock.now += 0.1
    assert await sender.deliver_due() == 1
    await sender.aclose()
    sessions = SessionManager(await opener(), clock=clock)  # restart
    sender = notifier(sessions, clock, receiver)
    try:
        clock.now += 9.9
        assert await sender.deliver_due() == 0  # then after 10 s
        clock.now += 0.1
        assert await sender.deliver_due() == 1
    finally:
        await sender.aclose()
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    assert await sessions.store.index.scan(TENANT, OUTBOX) == []


async def test_messages_during_delivery_get_their_own_notification(
    opener: Opener,
) -> None:
    """A message counted while its entry was being sent is not lost: it
    starts the next window, under another webhook-id."""
    clock = Clock()
    sessions = await setup(opener, clock)
    await sessions.publish(TENANT, "s1", AI, [message("a1")])
    clock.now += 30
    receiver = Receiver()
    sender = notifier(sessions, clock, receiver)
    original = sender._deliver

    async def deliver(tenant: str, key: str, entry: dict[str, Any]) -> None:
        # The app's endpoint is slow: a new answer is published meanwhile.
        await sessions.publish(TENANT, "s1", AI, [message("a2")])
        await original(tenant, key, entry)

    sender._deliver = deliver  # type: ignore[method-assign]
    try:
        await sender.deliver_due()
        sender._deliver = original  # type: ignore[method-assign]
        clock.now += 30
        await sender.deliver_due()
    finally:
        await sender.aclose()
    bodies = receiver.bodies()
    assert [b["messages"] for b in bodies] == [1, 1]
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert ids[0] != ids[1]


# End to end: a real server posting to a real endpoint.


@asynccontextmanager
async def endpoint() -> AsyncIterator[
    tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]
]:
    """A minimal HTTP/1.1 endpoint on port 0 that records each POST."""
    got: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        await got.put((headers, body))
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/hook", got


TOKEN_SECRET = "notify-e2e-secret-0123456789abcdef01234"


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator[Callable[[str], ServerThread]]:
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(url: str) -> ServerThread:
            server, _ = stack.enter_context(
                serve_in_thread(
                    store=f"sqlite:///{tmp_path}/notify.db",
                    auth=True,
                    secret=TOKEN_SECRET,
                    notify_url=url,
                    notify_secret=SECRET,
                    notify_coalesce=0.2,
                )
            )
            return server

        yield start


async def test_a_real_server_posts_to_the_app(
    run_server: Callable[[str], ServerThread],
) -> None:
    """An answer to an absent customer reaches the app's endpoint, signed."""
    async with endpoint() as (url, got):
        server = run_server(url)
        customer = create_token(
            TOKEN_SECRET, sub="cust_1", role="customer", sessions=["s1"]
        )
        ai = create_token(TOKEN_SECRET, sub="bot", role="ai", sessions=["**"])
        async with httpx.AsyncClient(base_url=server.url) as http:
            created = await http.post(
                "/v1/sessions",
                json={"id": "s1"},
                headers={"authorization": f"Bearer {customer}"},
            )
            assert created.status_code == 201
            answer = message("a1")
            published = await http.post(
                "/v1/sessions/s1/events",
                json={"type": answer.type, "id": answer.id, "data": answer.data},
                headers={"authorization": f"Bearer {ai}"},
            )
            assert published.status_code == 200, published.text
        headers, body = await asyncio.wait_for(got.get(), 10_000 * MS)
    assert json.loads(body)["participant"] == "cust_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_signature(
        SECRET, headers, body, now=int(headers["webhook-timestamp"])
    )
