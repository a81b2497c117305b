"""Subscriptions against a real server: catch-up then live, resume, end, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.client.conftest import MakeClient
from tests.client.proxy import Proxy, proxy_to
from tests.utils import MS, wait_for
from threadline.client import Client
from threadline.client.subscription import Subscription
from threadline.client.transports import Sink, Transport
from threadline.exceptions import ConcurrencyError, InvalidState, SessionNotFound
from threadline.protocol.actors import Actor
from threadline.protocol.events import GENESIS_HASH, Event
from threadline.protocol.frames import JSONObject
from threadline.protocol.offsets import Offset


async def note(client: Client, session: str, n: int) -> str:
    """Publish an application event numbered ``n``; its offset."""
    return str(await client.session(session).publish("x.n", {"n": n}))


async def take(subscription: Subscription, count: int) -> list[Event]:
    """The next ``count`` events of a subscription."""
    events: list[Event] = []
    async with asyncio.timeout(5_000 * MS):
        while len(events) < count:
            events.append(await anext(subscription))
    return events


async def test_subscribe_delivers_history_then_live_events(make_client: MakeClient):
    """A subscription from -1 yields the stored events, then those published after."""
    client = await make_client()
    await client.create_session("s1")
    history = [await note(client, "s1", n) for n in range(3)]
    async with client.session("s1").subscribe() as events:
        first = await take(events, 3)
        live = [await note(client, "s1", n) for n in range(3, 5)]
        second = await take(events, 2)
    assert [str(e.offset) for e in first + second] == history + live
    assert [e.data["n"] for e in first + second] == [0, 1, 2, 3, 4]


async def test_subscribe_resumes_after_a_drop_with_exactly_the_missing_events(
    make_client: MakeClient, proxy: Proxy
):
    """Events published while the connection is down arrive once each, in order."""
    writer = await make_client()
    reader = await make_client(url=proxy.url)
    await writer.create_session("s1")
    before = [await note(writer, "s1", n) for n in range(3)]
    async with reader.session("s1").subscribe() as events:
        seen = await take(events, 3)
        proxy.refuse()
        proxy.cut()
        during = [await note(writer, "s1", n) for n in range(3, 6)]
        await wait_for(lambda: proxy.refused > 0, 5_000 * MS)
        proxy.accept()
        seen += await take(events, 3)
        after = [await note(writer, "s1", n) for n in range(6, 8)]
        seen += await take(events, 2)
    assert [str(e.offset) for e in seen] == before + during + after
    assert proxy.accepted >= 2


async def test_subscribe_from_now_skips_history(make_client: MakeClient):
    """Subscribing at ``now`` yields only events published after it started."""
    client = await make_client()
    await client.create_session("s1")
    await note(client, "s1", 0)
    async with client.session("s1").subscribe("now") as events:
        offset = await note(client, "s1", 1)
        (event,) = await take(events, 1)
    assert str(event.offset) == offset


async def test_subscribe_resumes_from_a_given_offset(make_client: MakeClient):
    """Subscribing at an offset yields only the events after it."""
    client = await make_client()
    await client.create_session("s1")
    offsets = [await note(client, "s1", n) for n in range(4)]
    async with client.session("s1").subscribe(offsets[1]) as events:
        got = await take(events, 2)
    assert [str(e.offset) for e in got] == offsets[2:]


async def test_subscribe_ends_after_session_closed(make_client: MakeClient):
    """Iteration stops after the session.closed event, which nothing can follow."""
    client = await make_client()
    await client.create_session("s1")
    await note(client, "s1", 0)
    await client.session("s1").publish("session.closed", {})
    async with client.session("s1").subscribe() as events:
        types = [event.type async for event in events]
    assert types[-1] == "session.closed"


async def test_subscribe_to_unknown_session_raises_session_not_found(
    make_client: MakeClient,
):
    """A subscription to a session that does not exist fails at start."""
    client = await make_client()
    with pytest.raises(SessionNotFound):
        async with client.session("nope").subscribe():
            pass


async def test_subscription_ends_cleanly_when_the_client_closes(
    make_client: MakeClient,
):
    """Closing the client ends iteration without an error."""
    client = await make_client()
    await client.create_session("s1")
    events = await client.session("s1").subscribe().__aenter__()
    reading = asyncio.create_task(anext(events, None))
    await client.aclose()
    async with asyncio.timeout(5_000 * MS):
        assert await reading is None


async def test_subscription_refuses_a_second_concurrent_reader(
    make_client: MakeClient,
):
    """Two coroutines iterating one subscription is a ConcurrencyError."""
    client = await make_client()
    await client.create_session("s1")
    async with client.session("s1").subscribe() as events:
        first = asyncio.create_task(anext(events))
        await wait_for(lambda: events._reading)
        with pytest.raises(ConcurrencyError):
            await anext(events)
        first.cancel()


async def test_subscription_of_a_closed_client_is_invalid(make_client: MakeClient):
    """A closed client makes no subscriptions."""
    client = await make_client()
    await client.aclose()
    with pytest.raises(InvalidState):
        client.session("s1").subscribe()


# The bounded queue, without a server


class NullTransport(Transport):
    """A transport that accepts every subscription and sends nothing."""

    async def subscribe(self, sink: Sink) -> None:
        pass

    async def unsubscribe(self, sink: Sink) -> None:
        pass

    def submit(
        self,
        session: str,
        events: Sequence[JSONObject],
        *,
        expected_offset: str | None = None,
        merge: bool = False,
    ) -> asyncio.Future[list[str]]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def event(position: int) -> Event:
    return Event(
        offset=Offset(1, position),
        ts="2026-01-01T00:00:00.000000Z",
        type="x.n",
        id=f"e{position}",
        actor=Actor("svc", "service"),
        visibility="all",
        data={"n": position},
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
    )


async def test_deliver_waits_while_the_queue_is_full():
    """Past max_queue events, delivery waits until the consumer reads one."""
    subscription = Subscription(
        NullTransport(), "s1", offset="-1", view="raw", max_queue=2
    )
    await subscription.start()
    delivering = asyncio.create_task(
        subscription.deliver([event(1), event(2), event(3)])
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert not delivering.done()
    assert (await anext(subscription)).data == {"n": 1}
    await asyncio.wait_for(delivering, 1)
    assert subscription.resume_offset() == str(Offset(1, 3))


async def test_failure_is_raised_after_the_queued_events():
    """Events queued before a failure are yielded first, then the failure."""
    subscription = Subscription(NullTransport(), "s1", offset="-1", view="raw")
    await subscription.start()
    await subscription.deliver([event(1)])
    subscription.finish(RuntimeError("gone"))
    assert (await anext(subscription)).data == {"n": 1}
    with pytest.raises(RuntimeError, match="gone"):
        await anext(subscription)


# A slow consumer, end to end


@pytest.mark.parametrize("transport", ["ws"])
async def test_subscriber_that_falls_behind_gets_every_event_once(
    make_client: MakeClient, server
):
    """A subscriber whose link stalls while megabytes are published gets every
    event once, in order, when it reads again (the server paces it, or closes it
    4000 and it resumes by replay)."""
    writer = await make_client()
    async with proxy_to(server.url, upstream_rcvbuf=16 * 1024) as proxy:
        reader = await make_client(url=proxy.url)
        await writer.create_session("s1")
        blob = "x" * 48_000
        async with reader.session("s1").subscribe(max_queue=4) as events:
            proxy.hold()  # the subscriber's link stalls: the server's writes block
            offsets: list[Offset] = []
            for start in range(0, 200, 20):
                offsets += await writer.session("s1").publish_many(
                    [
                        {"type": "x.n", "data": {"n": n, "blob": blob}}
                        for n in range(start, start + 20)
                    ]
                )
            proxy.release()
            got = await take(events, len(offsets))
    assert [e.offset for e in got] == offsets


async def test_subscribe_compact_folds_a_completed_streamed_message(
    make_client: MakeClient,
):
    """In the compact view a completed streamed message arrives as one message."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    async with session.stream_message(message_id="m1") as message:
        for word in ["Your ", "order ", "ships."]:
            await message.write(word)
    marker = await note(client, "s1", 0)
    async with session.subscribe(view="compact") as events:
        got = []
        async with asyncio.timeout(5_000 * MS):
            async for event in events:
                got.append(event)
                if str(event.offset) == marker:
                    break
    messages = [e for e in got if e.data.get("message_id") == "m1"]
    assert [e.type for e in messages] == ["message"]
    assert messages[0].data["parts"] == [{"type": "text", "text": "Your order ships."}]


# Presence


def test_presence_is_seeded_by_the_snapshot_and_kept_by_presence_messages():
    """presence starts from the state snapshot, follows presence messages (offline
    removes a device), and each change calls the presence callbacks."""
    subscription = Subscription(NullTransport(), "s1", offset="-1", view="raw")
    calls: list[int] = []

    def changed(sub: Subscription) -> None:
        calls.append(len(sub.presence or {}))

    subscription.add_presence_callback(changed)
    cust = {"id": "cust", "role": "customer", "device": "tab-1"}
    subscription.set_state(
        {"offset": "-1", "presence": [{"actor": cust, "status": "active"}]}
    )
    assert subscription.presence == {
        ("cust", "tab-1"): {"actor": cust, "status": "active"}
    }
    phone = {"id": "cust", "role": "customer", "device": "phone"}
    subscription.set_presence(phone, "typing")
    subscription.set_presence(cust, "offline")
    assert subscription.presence == {
        ("cust", "phone"): {"actor": phone, "status": "typing"}
    }
    subscription.remove_presence_callback(changed)
    subscription.set_presence(phone, "offline")
    assert subscription.presence == {}
    assert calls == [1, 2, 1]


def test_presence_is_none_while_the_server_does_not_serve_it():
    """A snapshot without presence (a server without it) leaves presence None."""
    subscription = Subscription(NullTransport(), "s1", offset="-1", view="raw")
    subscription.set_state({"offset": "-1"})
    assert subscription.presence is None
