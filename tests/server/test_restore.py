"""Sessions on a restored SQLite store: the conversation goes on from the
backup, its audit chain unbroken, and nothing lost is mistaken for kept."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.server.drafts import assert_chain, delta, end, message, start
from threadline.exceptions import OffsetGone, UnknownReference
from threadline.protocol.actors import Actor
from threadline.protocol.audit_export import verify_export
from threadline.protocol.events import Event, EventDraft
from threadline.protocol.offsets import Offset
from threadline.server.audit import AuditSigner, export_lines
from threadline.server.sessions import SessionManager
from threadline.storage.sqlite import SQLiteLogStore
from threadline.storage.sqlite_backup import backup, restore

CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-1")
AI = Actor("bot", "ai", "Assistant")
AGENT = Actor("agent_7", "agent", "Sam")
TENANT, SID = "acme", "order-1234"


async def opened(path: Path) -> SessionManager:
    store = SQLiteLogStore(str(path))
    await store.start()
    return SessionManager(store)


async def events(sessions: SessionManager, *, staff: bool) -> list[Event]:
    result = await sessions.read(TENANT, SID, staff=staff, after=None)
    return SessionManager.parse_events([r.data for r in result.records])


async def test_a_restored_session_goes_on_from_the_backup(tmp_path: Path) -> None:
    """After a restore the session holds exactly what the backup held; new
    events follow with newer offsets and an unbroken audit chain in both
    views; a retry of a lost event is stored again (its original was lost);
    the lost event's customer offset is gone."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    sessions = await opened(db)
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "Where is my order?")])
    [kept] = await sessions.publish(
        TENANT, SID, AI, [message("a1", "Looking.", "assistant")]
    )
    backup(str(db), str(copy))
    [lost] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c2", "Hello?")])
    await sessions.store.stop()

    restore(str(copy), str(db), replace=True)
    sessions = await opened(db)
    try:
        assert [e.id for e in await events(sessions, staff=True)] == ["c1", "a1"]
        [again] = await sessions.publish(
            TENANT, SID, CUSTOMER, [message("c2", "Hello?")]
        )
        assert not again.duplicate
        assert again.offset > lost.offset > kept.offset
        await sessions.publish(
            TENANT, SID, AI, [message("a2", "Found it.", "assistant")]
        )
        for staff in (True, False):
            found = await events(sessions, staff=staff)
            assert [e.id for e in found] == ["c1", "a1", "c2", "a2"]
            assert_chain(found)
        with pytest.raises(OffsetGone):
            await sessions.read(TENANT, SID, staff=False, after=lost.offset)
        snapshot = await sessions.snapshot(TENANT, SID, staff=False)
        assert snapshot["offset"] == str(found[-1].offset)
        signer = AuditSigner.load_or_create(tmp_path / "key.pem")
        for view in ("staff", "customer"):
            lines = [
                line
                async for line in await export_lines(
                    sessions, signer, TENANT, SID, view
                )
            ]
            report = verify_export(
                b"".join(lines).splitlines(), check_signature=signer.verify
            )
            assert report.ok and report.events == 4, report.broken
            # From an offset of the earlier generation, too.
            first = (await events(sessions, staff=view == "staff"))[0]
            lines = [
                line
                async for line in await export_lines(
                    sessions, signer, TENANT, SID, view, first.offset
                )
            ]
            report = verify_export(
                b"".join(lines).splitlines(), check_signature=signer.verify
            )
            assert report.ok and report.events == 3, report.broken
    finally:
        await sessions.store.stop()


async def test_read_receipts_find_events_of_the_restored_generation(
    tmp_path: Path,
) -> None:
    """A customer's cursor at an event the server added before the backup
    (found by looking forward in the staff view, not by an idempotency entry)
    still carries its staff-view place after a restore."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    sessions = await opened(db)
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    start = EventDraft("message.start", "s2", {"message_id": "m2", "role": "assistant"})
    await sessions.publish(TENANT, SID, AI, [start])
    request = EventDraft("control.request", "q", {"request_id": "q1", "mode": "warm"})
    await sessions.publish(TENANT, SID, CUSTOMER, [request])
    accept = EventDraft("control.accept", "acc", {"request_id": "q1"})
    await sessions.publish(TENANT, SID, AGENT, [accept])
    backup(str(db), str(copy))
    await sessions.store.stop()
    restore(str(copy), str(db), replace=True)
    sessions = await opened(db)
    try:
        await sessions.publish(
            TENANT, SID, AGENT, [message("g1", "Hi, Sam here.", "assistant")]
        )
        ended = next(
            e for e in await events(sessions, staff=False) if e.actor.role == "server"
        )
        staff = next(e for e in await events(sessions, staff=True) if e.id == ended.id)
        await sessions.set_cursor(TENANT, SID, CUSTOMER.id, ended.offset, staff=False)
        [receipt] = await sessions.cursors(TENANT, SID, staff=True)
        assert receipt["staff_offset"] == str(staff.offset)
    finally:
        await sessions.store.stop()


async def test_compact_view_of_a_restored_session_spans_both_generations(
    tmp_path: Path,
) -> None:
    """The compact view folds messages from before the backup, a message that
    was streaming when it was taken and finished after the restore, and new
    ones, in both views, from the start and from an offset of either side."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    sessions = await opened(db)
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "Where is it?")])
    await sessions.publish(
        TENANT,
        SID,
        AI,
        [start("m1"), delta("m1", 0, "It "), delta("m1", 1, "ships."), end("m1")],
    )
    [mark] = await sessions.publish(TENANT, SID, AI, [start("m2")])
    await sessions.publish(TENANT, SID, AI, [delta("m2", 0, "Also, ")])
    backup(str(db), str(copy))
    await sessions.store.stop()
    restore(str(copy), str(db), replace=True)
    sessions = await opened(db)
    try:
        await sessions.publish(TENANT, SID, AI, [delta("m2", 1, "a refund.")])
        await sessions.publish(TENANT, SID, AI, [end("m2")])
        [after_m2] = await sessions.publish(TENANT, SID, AI, [start("m3")])
        await sessions.publish(TENANT, SID, AI, [delta("m3", 0, "Done."), end("m3")])
        expected = ["Where is it?", "It ships.", "Also, a refund.", "Done."]
        for staff in (True, False):
            read = await sessions.read_compact(TENANT, SID, staff=staff, after=None)
            texts = [
                orjson.loads(r.data)["data"]["parts"][0]["text"] for r in read.records
            ]
            assert texts == expected
            everything = await events(sessions, staff=staff)
            assert read.records[-1].offset == everything[-1].offset
            m1_end = next(e for e in everything if e.id == "m1-e")
            later = await sessions.read_compact(
                TENANT, SID, staff=staff, after=m1_end.offset
            )
            texts = [
                orjson.loads(r.data)["data"]["parts"][0]["text"] for r in later.records
            ]
            assert texts == ["Also, a refund.", "Done."]
            m3_start = next(e for e in everything if e.id == "m3-s")
            last = await sessions.read_compact(
                TENANT, SID, staff=staff, after=m3_start.offset
            )
            assert [orjson.loads(r.data)["type"] for r in last.records] == [
                "message.delta",
                "message.end",
            ]
        assert mark.offset < after_m2.offset
    finally:
        await sessions.store.stop()


async def test_redaction_after_a_restore_blanks_events_of_either_generation(
    tmp_path: Path,
) -> None:
    """A supervisor redacts an event stored before the backup and one after the
    restore: both are blanked in both views, and the chain still verifies."""
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    sessions = await opened(db)
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    [old] = await sessions.publish(TENANT, SID, CUSTOMER, [message("c1", "card 4111")])
    backup(str(db), str(copy))
    await sessions.store.stop()
    restore(str(copy), str(db), replace=True)
    sessions = await opened(db)
    supervisor = Actor("sup_1", "supervisor", "Kim")
    try:
        [new] = await sessions.publish(
            TENANT, SID, CUSTOMER, [message("c2", "cvv 123")]
        )
        staff_view = {e.id: e for e in await events(sessions, staff=True)}
        old_at, new_at = staff_view[old.id].offset, staff_view[new.id].offset
        assert old_at.generation < new_at.generation
        for target in (old_at, new_at):
            redaction = EventDraft("redaction", f"r-{target}", {"offset": str(target)})
            await sessions.publish(TENANT, SID, supervisor, [redaction])
        with pytest.raises(UnknownReference):
            lost = Offset(new_at.generation, old_at.position)
            await sessions.publish(
                TENANT,
                SID,
                supervisor,
                [EventDraft("redaction", "r-x", {"offset": str(lost)})],
            )
        signer = AuditSigner.load_or_create(tmp_path / "key.pem")
        for staff in (True, False):
            found = {e.id: e for e in await events(sessions, staff=staff)}
            assert found["c1"].redacted and found["c2"].redacted
            assert "4111" not in str(found["c1"].data) and "123" not in str(
                found["c2"].data
            )
            view = "staff" if staff else "customer"
            chunks = [
                c async for c in await export_lines(sessions, signer, TENANT, SID, view)
            ]
            report = verify_export(
                b"".join(chunks).splitlines(), check_signature=signer.verify
            )
            assert report.ok and report.redacted == 2, report.broken
    finally:
        await sessions.store.stop()
