"""Redactions on the session layer: every read path, both views, one commit."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import SECRET as TOKEN_SECRET
from tests.server.harness import sse_events
from tests.server.test_hub import Subscriber
from tests.utils import MS, wait_for
from threadline.auth import create_token
from threadline.exceptions import InvalidEvent, TailMismatch
from threadline.protocol.actors import Actor
from threadline.protocol.events import Event, EventDraft
from threadline.protocol.offsets import Offset
from threadline.server.hub import Hub
from threadline.server.redaction import REDACTIONS
from threadline.server.sessions import FULL_PREFIX, SessionManager
from threadline.storage.base import LogStore
from threadline.storage.index import Txn

CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-1")
AI = Actor("bot", "ai", "Assistant")
SUPERVISOR = Actor("sup", "supervisor", "Sue")
TENANT = "acme"
SID = "order-1234"
SECRET = "4111 1111"

Opener = Callable[[], Awaitable[LogStore]]


async def manager(opener: Opener) -> SessionManager:
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    return sessions


def message(event_id: str, text: str, role: str = "user") -> EventDraft:
    parts = [{"type": "text", "text": text}]
    return EventDraft(
        "message",
        event_id,
        {"message_id": f"m-{event_id}", "role": role, "parts": parts},
    )


def delta(event_id: str, seq: int, text: str, message_id: str = "m1") -> EventDraft:
    data = {
        "message_id": message_id,
        "seq": seq,
        "part_index": 0,
        "part_type": "text",
        "text": text,
    }
    return EventDraft("message.delta", event_id, data)


def start(event_id: str = "s1", message_id: str = "m1") -> EventDraft:
    return EventDraft(
        "message.start", event_id, {"message_id": message_id, "role": "assistant"}
    )


def end(event_id: str = "e1", message_id: str = "m1") -> EventDraft:
    return EventDraft(
        "message.end", event_id, {"message_id": message_id, "status": "complete"}
    )


def redaction(event_id: str, target: Offset, **extra: Any) -> EventDraft:
    data: dict[str, Any] = {"offset": str(target), "reason": "card number"}
    return EventDraft("redaction", event_id, data, extra.get("visibility"))


async def events(sessions: SessionManager, *, staff: bool) -> list[Event]:
    result = await sessions.read(TENANT, SID, staff=staff, after=None)
    return SessionManager.parse_events([r.data for r in result.records])


async def raw(sessions: SessionManager, *, staff: bool) -> bytes:
    result = await sessions.read(TENANT, SID, staff=staff, after=None)
    return b"".join(r.data for r in result.records)


async def compact(sessions: SessionManager, *, staff: bool) -> bytes:
    page = await sessions.read_compact(TENANT, SID, staff=staff, after=None)
    return b"".join(r.data for r in page.records)


async def test_redaction_blanks_the_event_in_both_views(opener: Opener) -> None:
    """The target's data is blanked, marked redacted, in the staff and customer
    views; offsets, hashes and every other event stay as they were."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, AI, [EventDraft("note", "n1", {"text": "hm"})])
    [said] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", SECRET)])
    before = {staff: await events(sessions, staff=staff) for staff in (True, False)}
    target = before[True][1].offset
    await sessions.publish(TENANT, SID, SUPERVISOR, [redaction("r1", target)])
    sessions = SessionManager(await opener())  # after a restart too
    for staff in (True, False):
        after = await events(sessions, staff=staff)
        blanked = after[-2]
        assert (
            blanked.redacted
            and SECRET not in (await raw(sessions, staff=staff)).decode()
        )
        assert blanked.data == {
            "message_id": "m-c1",
            "role": "user",
            "parts": [],
            "start_offset": str(blanked.offset),
        }
        kept = before[staff][-1]
        assert (blanked.offset, blanked.hash, blanked.prev_hash, blanked.id) == (
            kept.offset,
            kept.hash,
            kept.prev_hash,
            kept.id,
        )
        assert after[:-2] == before[staff][:-1]
        assert after[-1].type == "redaction" and after[-1].prev_hash == kept.hash
    customer_view = await events(sessions, staff=False)
    assert customer_view[-1].data["offset"] == str(said.offset)  # its own view's


async def test_redaction_of_a_staff_event_is_staff(opener: Opener) -> None:
    """Redacting a staff note leaves the customer view untouched and unaware."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    customer_before = await raw(sessions, staff=False)
    [note] = await sessions.publish(
        TENANT, SID, AI, [EventDraft("note", "n1", {"text": SECRET})]
    )
    [done] = await sessions.publish(
        TENANT, SID, SUPERVISOR, [redaction("r1", note.offset)]
    )
    assert await raw(sessions, staff=False) == customer_before
    staff = await events(sessions, staff=True)
    assert staff[-1].visibility == "staff" and staff[-1].offset == done.offset
    assert staff[-2].redacted and staff[-2].data == {"text": ""}


@pytest.mark.parametrize(("target", "visibility"), [(0, "staff"), (1, "all")])
async def test_redaction_naming_another_visibility_is_refused(
    opener: Opener, target: int, visibility: str
) -> None:
    """A redaction is visible where its target is; naming another is invalid."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, AI, [EventDraft("note", "n1", {"text": "x"})])
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", SECRET)])
    offset = (await events(sessions, staff=True))[target].offset
    wrong = "all" if visibility == "staff" else "staff"
    with pytest.raises(InvalidEvent) as caught:
        await sessions.publish(
            TENANT, SID, SUPERVISOR, [redaction("r1", offset, visibility=wrong)]
        )
    assert caught.value.field == "visibility"
    await sessions.publish(
        TENANT, SID, SUPERVISOR, [redaction("r1", offset, visibility=visibility)]
    )


async def test_compact_view_and_folded_message_lose_the_redacted_delta(
    opener: Opener,
) -> None:
    """A redacted delta of a completed message is gone from the folded message
    and from every compact read, in both views."""
    sessions = await manager(opener)
    published = await sessions.publish(
        TENANT,
        SID,
        AI,
        [start(), delta("d0", 0, "Your card "), delta("d1", 1, SECRET), end()],
    )
    await sessions.publish(
        TENANT, SID, SUPERVISOR, [redaction("r1", published[2].offset)]
    )
    sessions = SessionManager(await opener())
    folded = await sessions.store.index.scan(TENANT, "messages", f"{SID}\n")
    [(_, entry)] = folded
    assert orjson.loads(entry)["parts"] == [{"type": "text", "text": "Your card "}]
    for staff in (True, False):
        assert SECRET.encode() not in await compact(sessions, staff=staff)
        assert SECRET.encode() not in await raw(sessions, staff=staff)
        resumed = await sessions.read_compact(
            TENANT,
            SID,
            staff=staff,
            after=(await events(sessions, staff=staff))[0].offset,
        )
        assert SECRET.encode() not in b"".join(r.data for r in resumed.records)


async def test_open_message_loses_the_redacted_delta(opener: Opener) -> None:
    """A redacted delta of a message still streaming leaves its parts so far,
    the snapshot and the message it becomes."""
    sessions = await manager(opener)
    published = await sessions.publish(
        TENANT, SID, AI, [start(), delta("d0", 0, SECRET), delta("d1", 1, " ok")]
    )
    await sessions.publish(
        TENANT, SID, SUPERVISOR, [redaction("r1", published[1].offset)]
    )
    for staff in (True, False):
        snapshot = await sessions.snapshot(TENANT, SID, staff=staff)
        [open_message] = snapshot["messages"]
        assert open_message["parts"] == [{"type": "text", "text": " ok"}]
        assert SECRET.encode() not in await compact(sessions, staff=staff)
    sessions = SessionManager(await opener())
    await sessions.publish(TENANT, SID, AI, [delta("d2", 2, "!"), end()])
    folded = await sessions.store.index.scan(TENANT, "messages", f"{SID}\n")
    assert orjson.loads(folded[0][1])["parts"] == [{"type": "text", "text": " ok!"}]


async def test_redacted_message_end_loses_its_reason(opener: Opener) -> None:
    """A redacted message.end keeps its status; the folded message its reason none."""
    sessions = await manager(opener)
    failed = EventDraft(
        "message.end",
        "e1",
        {"message_id": "m1", "status": "error", "reason": f"card {SECRET} refused"},
    )
    published = await sessions.publish(TENANT, SID, AI, [start(), failed])
    await sessions.publish(
        TENANT, SID, SUPERVISOR, [redaction("r1", published[1].offset)]
    )
    folded = await sessions.store.index.scan(TENANT, "messages", f"{SID}\n")
    assert orjson.loads(folded[0][1])["reason"] is None
    for staff in (True, False):
        assert SECRET.encode() not in await compact(sessions, staff=staff)
        assert b'"status":"error"' in await compact(sessions, staff=staff)


async def test_redaction_in_the_same_publish_as_its_target(opener: Opener) -> None:
    """A batch may redact an event it publishes itself."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    tail = (await events(sessions, staff=True))[-1].offset
    target = Offset(tail.generation, tail.position + 1)
    batch = [EventDraft("note", "n1", {"text": SECRET}), redaction("r1", target)]
    await sessions.publish(TENANT, SID, SUPERVISOR, batch)
    stored = await events(sessions, staff=True)
    assert stored[-2].redacted and stored[-1].visibility == "staff"
    assert SECRET not in (await raw(sessions, staff=True)).decode()


async def test_redacting_twice_keeps_the_first_digest(opener: Opener) -> None:
    """A second redaction of an event changes nothing more."""
    sessions = await manager(opener)
    [said] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", SECRET)])
    staff_offset = (await events(sessions, staff=True))[-1].offset
    await sessions.publish(TENANT, SID, SUPERVISOR, [redaction("r1", staff_offset)])
    kept = await sessions.store.index.scan(TENANT, REDACTIONS, f"{SID}\n")
    blanked = await raw(sessions, staff=True)
    await sessions.publish(TENANT, SID, SUPERVISOR, [redaction("r2", staff_offset)])
    assert await sessions.store.index.scan(TENANT, REDACTIONS, f"{SID}\n") == kept
    assert (await raw(sessions, staff=True)).startswith(blanked)
    assert [key.split("\n")[1] for key, _ in kept] == ["customer", "staff"]
    assert kept[0][0].endswith(str(said.offset))


async def test_live_feed_drops_recent_events_after_a_redaction(opener: Opener) -> None:
    """A subscriber joining after a redaction is not sent the feed's copies of
    the events before it (it re-reads them from the store, blanked)."""
    sessions = await manager(opener)
    hub = Hub(sessions)
    try:
        tail = Offset.parse(
            (await sessions.snapshot(TENANT, SID, staff=False))["offset"]
        )
        watcher = Subscriber()
        assert hub.join(watcher, TENANT, SID, staff=False, after=tail, at_tail=True)
        [said] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", SECRET)])
        await wait_for(lambda: watcher.events)
        staff_offset = (await events(sessions, staff=True))[-1].offset
        await sessions.publish(TENANT, SID, SUPERVISOR, [redaction("r1", staff_offset)])
        await wait_for(lambda: len(watcher.events) == 2)
        late = Subscriber()
        assert not hub.join(late, TENANT, SID, staff=False, after=tail, at_tail=False)
        assert late.events == []
        caught_up = Subscriber()
        assert hub.join(
            caught_up, TENANT, SID, staff=False, after=said.offset, at_tail=False
        )
        assert [e.offset for e in caught_up.events] == [watcher.events[1].offset]
    finally:
        await hub.aclose()


async def test_append_on_a_stale_chain_tip_is_refused(opener: Opener) -> None:
    """Two managers on one store (two caches of the working state): each
    publish links to the tip the other left, and an append built on a stale
    tail is refused by the store, not stored with a wrong prev_hash."""
    first = await manager(opener)
    second = SessionManager(first.store)
    await first.publish(TENANT, SID, CUSTOMER, [message("c1", "a")])
    await second.publish(TENANT, SID, CUSTOMER, [message("c2", "b")])
    await first.publish(TENANT, SID, CUSTOMER, [message("c3", "c")])
    stored = await events(first, staff=True)
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))
    stale = stored[0].offset

    def append_on_stale_tip(txn: Txn) -> None:
        txn.append(FULL_PREFIX + SID, [stored[1].serialize()], expected_tail=stale)

    with pytest.raises(TailMismatch):
        await first.store.transact(TENANT, append_on_stale_tip)
    assert await events(first, staff=True) == stored


async def test_every_live_path_serves_the_redacted_event(serve: Any) -> None:
    """Over a real server, after a redaction: a WebSocket subscription from the
    start (while a live feed holds the event) and an SSE catch-up both get the
    blanked event, never its data."""
    from tests.server.test_websocket import (
        CUSTOMER as CUSTOMER_TOKEN,
        SESSION,
        create_session,
        live,
        peer,
        subscribe,
    )

    server = live(serve)
    await create_session(server)
    supervisor = create_token(
        TOKEN_SECRET, sub="sup", role="supervisor", sessions=["**"]
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=5000 * MS) as http,
        peer(server, CUSTOMER_TOKEN) as watcher,
    ):
        await watcher.send(subscribe())
        await watcher.expect("subscribed")
        said = await http.post(
            f"/v1/sessions/{SESSION}/events",
            json=message("c1", SECRET).to_json(),
            headers={"authorization": f"Bearer {CUSTOMER_TOKEN}"},
        )
        assert said.status_code == 200, said.text
        [seen] = await watcher.events(1)
        assert seen["data"]["parts"][0]["text"] == SECRET
        staff_events = await http.get(
            f"/v1/sessions/{SESSION}/events",
            headers={"authorization": f"Bearer {supervisor}"},
        )
        target = Offset.parse(staff_events.json()[-1]["offset"])
        redacted = await http.post(
            f"/v1/sessions/{SESSION}/events",
            json={"type": "redaction", "id": "r1", "data": {"offset": str(target)}},
            headers={"authorization": f"Bearer {supervisor}"},
        )
        assert redacted.status_code == 200, redacted.text
        [notice] = await watcher.events(1)
        assert notice["type"] == "redaction"
        async with peer(server, CUSTOMER_TOKEN) as late:
            await late.send(subscribe())
            await late.expect("subscribed")
            replayed = await late.events(2)
        assert replayed[0]["redacted"] is True
        assert SECRET not in json.dumps(replayed)
        async with http.stream(
            "GET",
            f"/v1/sessions/{SESSION}/events?live=sse&offset=-1",
            headers={"authorization": f"Bearer {CUSTOMER_TOKEN}"},
        ) as response:
            got = []
            async with contextlib.aclosing(sse_events(response)) as stream:
                async for event in stream:
                    got.append(json.loads(event.data))
                    if len(got) == 2:
                        break
        assert got[0]["redacted"] is True and SECRET not in json.dumps(got)
