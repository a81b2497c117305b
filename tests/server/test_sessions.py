"""SessionManager over the log store: views, exactly-once, atomicity, persistence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from tests.server.drafts import assert_chain, message
from threadline.exceptions import (
    DeltaGap,
    NotInControl,
    OffsetGone,
    SessionRuleError,
    TailMismatch,
)
from threadline.protocol.actors import Actor
from threadline.protocol.events import Event, EventDraft
from threadline.protocol.offsets import Offset
from threadline.server.sessions import (
    IdConflict,
    SessionManager,
    SessionNotFound,
)
from threadline.storage.base import LogStore

CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-1")
AI = Actor("bot", "ai", "Assistant")
AGENT = Actor("agent_7", "agent", "Sam")
TENANT = "acme"
SID = "order-1234"

Opener = Callable[[], Awaitable[LogStore]]


async def manager(opener: Opener) -> SessionManager:
    sessions = SessionManager(await opener())
    await sessions.create(
        TENANT, SID, customer=CUSTOMER.id, metadata={"channel": "web"}
    )
    return sessions


def note(event_id: str, text: str) -> EventDraft:
    return EventDraft("note", event_id, {"text": text})


async def events(sessions: SessionManager, *, staff: bool) -> list[Event]:
    result = await sessions.read(TENANT, SID, staff=staff, after=None)
    return SessionManager.parse_events([r.data for r in result.records])


async def test_publish_returns_offsets_in_the_publishers_view(opener: Opener) -> None:
    """Staff get staff-view offsets, customers customer-view offsets."""
    sessions = await manager(opener)
    [staff_note] = await sessions.publish(TENANT, SID, AI, [note("n1", "whisper")])
    [said] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    assert staff_note.offset.position == 1
    assert said.offset.position == 1  # the customer's first visible event


async def test_customer_view_hides_staff_events_entirely(opener: Opener) -> None:
    """The customer view has no trace of staff events: dense offsets, own chain."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    await sessions.publish(TENANT, SID, AI, [note("n1", "refund limit")])
    await sessions.publish(TENANT, SID, AI, [message("a1", "hello", "assistant")])
    visible = await events(sessions, staff=False)
    assert [e.type for e in visible] == ["message", "message"]
    assert [e.offset.position for e in visible] == [1, 2]
    assert visible[1].prev_hash == visible[0].hash
    assert b"refund" not in b"".join(e.serialize() for e in visible)
    everything = await events(sessions, staff=True)
    assert [e.type for e in everything] == ["message", "note", "message"]
    snapshot = await sessions.snapshot(TENANT, SID, staff=False)
    assert snapshot["offset"] == str(visible[-1].offset)


async def test_hash_chain_links_every_stored_event(opener: Opener) -> None:
    """Each envelope's hash is the chain hash of its fields and prev_hash."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    await sessions.publish(
        TENANT, SID, AI, [note("n1", "x"), message("a1", "yo", "assistant")]
    )
    for staff in (True, False):
        assert_chain(await events(sessions, staff=staff))


async def test_retry_is_stored_once_with_its_original_offset(opener: Opener) -> None:
    """Publishing the same (actor, id, body) again returns the first offset."""
    sessions = await manager(opener)
    [first] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c2", "again")])
    [retry] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    assert retry.duplicate and retry.offset == first.offset
    assert len(await events(sessions, staff=True)) == 2


async def test_retry_with_another_body_is_an_id_conflict(opener: Opener) -> None:
    """The same (actor, id) with another body is refused with id_conflict."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    with pytest.raises(IdConflict):
        await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "changed")])


async def test_batch_is_all_or_nothing(opener: Opener) -> None:
    """A batch with one refused event stores none of its events."""
    sessions = await manager(opener)
    start = EventDraft("message.start", "s1", {"message_id": "m1", "role": "assistant"})
    gap = EventDraft(
        "message.delta",
        "d1",
        {
            "message_id": "m1",
            "seq": 3,
            "part_index": 0,
            "part_type": "text",
            "text": "x",
        },
    )
    with pytest.raises(DeltaGap):
        await sessions.publish(TENANT, SID, AI, [start, gap])
    assert await events(sessions, staff=True) == []
    [ok] = await sessions.publish(TENANT, SID, AI, [start])  # the state is intact
    assert ok.offset.position == 1


async def test_expected_offset_is_compare_and_set(opener: Opener) -> None:
    """expected_offset other than the publisher's view tail is refused (412)."""
    sessions = await manager(opener)
    [first] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    with pytest.raises(TailMismatch):
        await sessions.publish(
            TENANT,
            SID,
            CUSTOMER,
            [message("c2", "x")],
            expected_offset=Offset(first.offset.generation, 0),
        )
    [second] = await sessions.publish(
        TENANT, SID, CUSTOMER, [message("c2", "x")], expected_offset=first.offset
    )
    assert second.offset.position == 2


async def test_floor_rules_apply(opener: Opener) -> None:
    """An agent without the floor cannot publish assistant messages."""
    sessions = await manager(opener)
    with pytest.raises(NotInControl):
        await sessions.publish(TENANT, SID, AGENT, [message("g1", "hi", "assistant")])


async def test_unknown_session_is_not_found(opener: Opener) -> None:
    """Publishing to or reading a session that does not exist raises SessionNotFound."""
    sessions = SessionManager(await opener())
    with pytest.raises(SessionNotFound):
        await sessions.publish(TENANT, "nope", CUSTOMER, [message("c1", "x")])
    with pytest.raises(SessionNotFound):
        await sessions.read(TENANT, "nope", staff=False, after=None)
    assert isinstance(SessionNotFound("x"), SessionRuleError)


async def test_state_and_chain_survive_a_restart(opener: Opener) -> None:
    """After a restart, the state, dedupe index and chain go on where they were."""
    sessions = await manager(opener)
    start = EventDraft("message.start", "s1", {"message_id": "m1", "role": "assistant"})
    delta = EventDraft(
        "message.delta",
        "d0",
        {
            "message_id": "m1",
            "seq": 0,
            "part_index": 0,
            "part_type": "text",
            "text": "Hi, ",
        },
    )
    await sessions.publish(TENANT, SID, AI, [start, delta])
    sessions = SessionManager(await opener())
    [retry] = await sessions.publish(TENANT, SID, AI, [delta])
    assert retry.duplicate
    nxt = EventDraft(
        "message.delta",
        "d1",
        {
            "message_id": "m1",
            "seq": 1,
            "part_index": 0,
            "part_type": "text",
            "text": "there",
        },
    )
    end = EventDraft("message.end", "e1", {"message_id": "m1", "status": "complete"})
    await sessions.publish(TENANT, SID, AI, [nxt, end])
    stored = await events(sessions, staff=True)
    assert [e.offset.position for e in stored] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))
    assert {e.data["start_offset"] for e in stored} == {str(stored[0].offset)}
    folded = await sessions.store.index.scan(TENANT, "messages", f"{SID}\n")
    [(_, raw)] = folded
    assert orjson.loads(raw)["parts"] == [{"type": "text", "text": "Hi, there"}]


async def test_ended_ids_survive_a_restart_outside_the_working_state(
    opener: Opener,
) -> None:
    """Ended messages and runs are refused again after a restart, though the
    working state rewritten on every publish no longer carries them."""
    sessions = await manager(opener)
    run = EventDraft("run.start", "r1", {"run_id": "run-1"})
    run_end = EventDraft("run.end", "r2", {"run_id": "run-1", "status": "complete"})
    await sessions.publish(TENANT, SID, CUSTOMER, [message("a", "hi")])
    await sessions.publish(TENANT, SID, AI, [run, run_end])
    raw = await sessions.store.index.get(TENANT, "state", SID)
    assert raw is not None and b"m-a" not in raw and b"run-1" not in raw
    sessions = SessionManager(await opener())
    reused = EventDraft(
        "message",
        "b",
        {"message_id": "m-a", "role": "user", "parts": [{"type": "text", "text": "x"}]},
    )
    with pytest.raises(SessionRuleError):
        await sessions.publish(TENANT, SID, CUSTOMER, [reused])
    again = EventDraft("run.start", "r3", {"run_id": "run-1"})
    with pytest.raises(SessionRuleError):
        await sessions.publish(TENANT, SID, AI, [again])


async def test_working_state_with_inline_ended_ids_is_migrated(opener: Opener) -> None:
    """A working state stored with its ended ids inline (the earlier format)
    still refuses them, and moves them to their own entries on the next write."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("a", "hi")])
    raw = await sessions.store.index.get(TENANT, "state", SID)
    assert raw is not None
    old = orjson.loads(raw)
    old["state"]["ended_messages"] = {"m-a": "all"}
    old["state"]["ended_runs"] = {"run-0": "staff"}
    await sessions.store.transact(
        TENANT, lambda txn: txn.put("state", SID, orjson.dumps(old))
    )
    await sessions.store.transact(
        TENANT, lambda txn: txn.put("ended", f"{SID}\nm\nm-a", None)
    )
    sessions = SessionManager(await opener())
    reused = EventDraft(
        "message",
        "b",
        {"message_id": "m-a", "role": "user", "parts": [{"type": "text", "text": "x"}]},
    )
    with pytest.raises(SessionRuleError):
        await sessions.publish(TENANT, SID, CUSTOMER, [reused])
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c", "new")])
    ended = await sessions.store.index.scan(TENANT, "ended", f"{SID}\n")
    assert sorted(k for k, _ in ended) == [
        f"{SID}\nm\nm-a",
        f"{SID}\nm\nm-c",
        f"{SID}\nr\nrun-0",
    ]


async def test_customer_view_start_offsets_are_customer_offsets(opener: Opener) -> None:
    """Message events in the customer view carry start offsets of that view."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, AI, [note("n1", "staff first")])
    start = EventDraft("message.start", "s1", {"message_id": "m1", "role": "assistant"})
    end = EventDraft("message.end", "e1", {"message_id": "m1", "status": "complete"})
    await sessions.publish(TENANT, SID, AI, [start, end])
    visible = await events(sessions, staff=False)
    assert [e.data["start_offset"] for e in visible] == [str(visible[0].offset)] * 2


async def test_concurrent_publishes_keep_one_order(opener: Opener) -> None:
    """Concurrent publishers get distinct offsets and one consistent chain."""
    sessions = await manager(opener)
    await asyncio.gather(
        *(
            sessions.publish(TENANT, SID, CUSTOMER, [message(f"c{i}", str(i))])
            for i in range(30)
        )
    )
    stored = await events(sessions, staff=True)
    assert [e.offset.position for e in stored] == list(range(1, 31))
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))


async def test_offsets_of_a_recreated_session_are_gone(opener: Opener) -> None:
    """An offset of one session's view is refused on another session's view."""
    sessions = await manager(opener)
    [said] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "hi")])
    await sessions.create(TENANT, "other", customer=CUSTOMER.id)
    with pytest.raises(OffsetGone):
        await sessions.read(TENANT, "other", staff=False, after=said.offset)


async def test_oversized_event_is_refused(opener: Opener) -> None:
    """An event over 64 KiB is refused with event_too_large and nothing is stored."""
    sessions = await manager(opener)
    with pytest.raises(SessionRuleError) as caught:
        await sessions.publish(TENANT, SID, CUSTOMER, [message("big", "x" * 70_000)])
    assert caught.value.code == "event_too_large" and caught.value.status == 413
    assert await events(sessions, staff=True) == []


async def test_unread_counters_commit_with_messages_and_follow_cursors(
    opener: Opener,
) -> None:
    """Unread counts are stored with the messages and recounted when a cursor moves."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, AI, [message("a1", "one", "assistant")])
    await sessions.publish(TENANT, SID, AI, [message("a2", "two", "assistant")])
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "mine")])
    sessions = SessionManager(await opener())  # counters survive a restart
    [listed] = await sessions.my_sessions(TENANT, CUSTOMER.id, staff=False)
    assert listed["unread"] == 2
    first = (await events(sessions, staff=False))[0]  # in the customer's view
    await sessions.set_cursor(TENANT, SID, CUSTOMER.id, first.offset, staff=False)
    [listed] = await sessions.my_sessions(TENANT, CUSTOMER.id, staff=False)
    assert listed["unread"] == 1
    [ai_view] = await sessions.my_sessions(TENANT, AI.id, staff=True)
    assert ai_view["unread"] == 1  # the customer's message


async def test_customer_read_receipts_are_comparable_for_staff(opener: Opener) -> None:
    """A customer's cursor carries its place in the staff view for staff
    readers (also at an event the server added); customers never see it."""
    sessions = await manager(opener)
    await sessions.publish(TENANT, SID, AGENT, [note("n1", "internal")])
    [answer] = await sessions.publish(
        TENANT, SID, AI, [message("a1", "Hello", role="assistant")]
    )
    start = EventDraft("message.start", "s2", {"message_id": "m2", "role": "assistant"})
    await sessions.publish(TENANT, SID, AI, [start])
    request = EventDraft("control.request", "q", {"request_id": "q1", "mode": "warm"})
    await sessions.publish(TENANT, SID, CUSTOMER, [request])
    accept = EventDraft("control.accept", "acc", {"request_id": "q1"})
    await sessions.publish(TENANT, SID, AGENT, [accept])
    customer_view = await events(sessions, staff=False)
    staff_view = await events(sessions, staff=True)
    seen = next(e for e in customer_view if e.id == "a1")
    await sessions.set_cursor(TENANT, SID, CUSTOMER.id, seen.offset, staff=False)
    [receipt] = await sessions.cursors(TENANT, SID, staff=True)
    assert receipt["staff_offset"] == str(answer.offset) != receipt["offset"]
    ended = customer_view[-1]  # the server's floor_lost end of m2
    assert ended.type == "message.end" and ended.actor.role == "server"
    await sessions.set_cursor(TENANT, SID, CUSTOMER.id, ended.offset, staff=False)
    [receipt] = await sessions.cursors(TENANT, SID, staff=True)
    assert receipt["staff_offset"] == str(staff_view[-1].offset)
    [mine] = await sessions.cursors(TENANT, SID, staff=False)
    assert "staff_offset" not in mine


async def test_working_states_are_bounded_and_reloaded(opener: Opener) -> None:
    """Past max_working the least recently written working state is dropped;
    a session whose state was dropped goes on from the store (delta sequence,
    hash chain) as if nothing happened."""
    sessions = SessionManager(await opener())
    sessions.max_working = 2
    ids = ["a", "b", "c"]
    for sid in ids:
        await sessions.create(TENANT, sid, customer=None)
        start = EventDraft(
            "message.start", "s", {"message_id": "m", "role": "assistant"}
        )
        await sessions.publish(TENANT, sid, AI, [start])
    for seq in range(3):
        for sid in ids:
            delta = EventDraft(
                "message.delta",
                f"d{seq}",
                {
                    "message_id": "m",
                    "seq": seq,
                    "part_index": 0,
                    "part_type": "text",
                    "text": f"{seq}",
                },
            )
            await sessions.publish(TENANT, sid, AI, [delta])
            assert len(sessions._working) <= 2
    for sid in ids:
        snapshot = await sessions.snapshot(TENANT, sid, staff=True)
        [message] = snapshot["messages"]
        assert message["next_seq"] == 3 and message["parts"][0]["text"] == "012"
        read = await sessions.read(TENANT, sid, staff=True, after=None)
        stored = SessionManager.parse_events([r.data for r in read.records])
        assert all(
            b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False)
        )
    gap = EventDraft(
        "message.delta",
        "late",
        {
            "message_id": "m",
            "seq": 9,
            "part_index": 0,
            "part_type": "text",
            "text": "x",
        },
    )
    with pytest.raises(DeltaGap):
        await sessions.publish(TENANT, "a", AI, [gap])
