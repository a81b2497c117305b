"""Sessions against a real server: publish (exactly-once), messages, cursors, state."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.client.conftest import MakeClient, stored
from tests.client.proxy import Proxy
from tests.utils import MS, wait_for
from threadline.exceptions import (
    Forbidden,
    IdConflict,
    InvalidEvent,
    SessionNotFound,
    TailMismatch,
)
from threadline.protocol.offsets import Offset


async def test_publish_returns_the_offset_and_sets_a_uuid7_id(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """A published event is stored at the returned offset with a UUIDv7 id."""
    client = await make_client()
    await client.create_session("s1")
    offset = await client.session("s1").publish("x.order.lookup", {"order": 7})
    (event,) = [e for e in await stored(http, "s1") if e["type"] == "x.order.lookup"]
    assert event["offset"] == str(offset)
    assert event["data"] == {"order": 7}
    assert uuid.UUID(event["id"]).version == 7


async def test_publish_again_with_the_same_id_returns_the_original_offset(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """Publishing one id twice stores one event and answers its offset twice."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    first = await session.publish("x.n", {"n": 1}, id="evt-1")
    second = await session.publish("x.n", {"n": 1}, id="evt-1")
    assert first == second
    assert [e["id"] for e in await stored(http, "s1")].count("evt-1") == 1


async def test_publish_same_id_other_body_raises_id_conflict(make_client: MakeClient):
    """The same id with another body is an IdConflict, as on the server."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    await session.publish("x.n", {"n": 1}, id="evt-1")
    with pytest.raises(IdConflict):
        await session.publish("x.n", {"n": 2}, id="evt-1")


async def test_publish_unanswered_at_a_drop_is_stored_once(
    make_client: MakeClient, proxy: Proxy, http: httpx.AsyncClient
):
    """A publish whose answer is lost is resent with its id and stored exactly once."""
    client = await make_client(url=proxy.url)
    await client.create_session("s1")
    await client.session("s1").publish("x.n", {"n": 0})  # the connection is up
    proxy.hold()
    task = asyncio.create_task(client.session("s1").publish("x.n", {"n": 1}, id="once"))
    await wait_for(lambda: _has(http, "s1", "once"), 5_000 * MS)  # stored, answer held
    proxy.cut()
    proxy.release()
    offset = await asyncio.wait_for(task, 5_000 * MS)
    events = await stored(http, "s1")
    assert [e["offset"] for e in events if e["id"] == "once"] == [str(offset)]


async def _has(http: httpx.AsyncClient, session: str, event_id: str) -> bool:
    return any(e["id"] == event_id for e in await stored(http, session))


async def test_publish_many_with_a_stale_expected_offset_raises_tail_mismatch(
    make_client: MakeClient,
):
    """A batch conditioned on an old tail is refused whole."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    old = await session.publish("x.n", {"n": 1})
    await session.publish("x.n", {"n": 2})
    with pytest.raises(TailMismatch):
        await session.publish_many(
            [{"type": "x.n", "data": {"n": 3}}], expected_offset=old
        )


async def test_publish_many_stores_a_batch_in_order(make_client: MakeClient):
    """A batch's events get increasing offsets, in the order given."""
    client = await make_client()
    await client.create_session("s1")
    offsets = await client.session("s1").publish_many(
        [{"type": "x.n", "data": {"n": n}} for n in range(5)]
    )
    assert offsets == sorted(offsets) and len(set(offsets)) == 5


async def test_publish_malformed_event_raises_invalid_event_locally(
    make_client: MakeClient,
):
    """A draft that breaks the event rules fails before anything is sent."""
    client = await make_client()
    with pytest.raises(InvalidEvent):
        await client.session("s1").publish("message", {"role": "robot"})


async def test_publish_refused_by_the_rights_table_raises_forbidden(
    make_client: MakeClient,
):
    """A customer publishing a staff note gets Forbidden."""
    staff = await make_client()
    await staff.create_session("s1", customer="cust_1")
    customer = await make_client("cust_1", "customer")
    with pytest.raises(Forbidden):
        await customer.session("s1").publish("note", {"text": "psst"})


async def test_publish_to_unknown_session_raises_session_not_found(
    make_client: MakeClient,
):
    """Publishing into a session that does not exist is SessionNotFound."""
    client = await make_client()
    with pytest.raises(SessionNotFound):
        await client.session("nope").publish("x.n", {"n": 1})


async def test_send_message_publishes_a_user_message_for_a_customer(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """A customer's send_message stores a complete user message with one text part."""
    staff = await make_client()
    await staff.create_session("s1", customer="cust_1")
    customer = await make_client("cust_1", "customer")
    offset = await customer.session("s1").send_message("Where is my order?")
    events = await stored(http, "s1", "cust_1", "customer")  # offsets are per view
    (event,) = [e for e in events if e["offset"] == str(offset)]
    assert event["type"] == "message"
    assert event["data"]["role"] == "user"
    assert event["data"]["parts"] == [{"type": "text", "text": "Where is my order?"}]


async def test_set_cursor_moves_the_read_cursor(make_client: MakeClient):
    """set_cursor returns the cursor, which the session state then lists."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    offset = await session.publish("x.n", {"n": 1})
    moved = await session.set_cursor(offset)
    state = await session.state()
    assert moved == offset
    assert {"participant": "svc", "offset": str(offset)} in state["cursors"]


async def test_state_reports_the_tail(make_client: MakeClient):
    """The state snapshot carries the session's tail offset and document."""
    client = await make_client()
    await client.create_session("s1", metadata={"channel": "web"})
    offset = await client.session("s1").publish("x.n", {"n": 1})
    state = await client.session("s1").state()
    assert Offset.parse(state["offset"]) == offset
    assert state["session"]["metadata"] == {"channel": "web"}


async def test_read_pages_the_raw_view_then_reports_up_to_date(make_client: MakeClient):
    """read() returns the events after an offset, the next offset, and whether the
    page reached the tail; reading on from next_offset returns nothing new."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    offsets = [await session.publish("x.n", {"n": n}) for n in range(3)]
    page = await session.read()
    assert [e.offset for e in page.events] == offsets
    assert page.next_offset == offsets[-1] and page.up_to_date
    after = await session.read(offsets[0])
    assert [e.data["n"] for e in after.events] == [1, 2]
    assert (await session.read(page.next_offset)).events == []


async def test_read_compact_folds_a_streamed_message(make_client: MakeClient):
    """read(view="compact") returns a streamed message as one compacted message."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    async with session.stream_message(message_id="m1") as message:
        await message.write("Your ")
        await message.write("order.")
    page = await session.read(view="compact")
    (folded,) = [e for e in page.events if e.data.get("message_id") == "m1"]
    assert folded.type == "message" and folded.compacted
    assert folded.data["parts"] == [{"type": "text", "text": "Your order."}]
