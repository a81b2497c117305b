"""PresenceManager with a fake clock: holds, grace, TTL, broadcasts, membership."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.utils import MS
from threadline.exceptions import ProtocolError
from threadline.protocol.actors import Actor
from threadline.protocol.events import Event, EventDraft
from threadline.server.presence import PresenceInbox, PresenceManager
from threadline.server.sessions import SessionManager
from threadline.storage.base import LogStore
from threadline.storage.presence import (
    MemoryPresenceStore,
    PresenceStore,
    SQLitePresenceStore,
)
from threadline.testing import FakeClock

Opener = Callable[[], Awaitable[LogStore]]

TENANT = "acme"
SID = "order-1234"
TTL = 15.0
GRACE = 5.0
DANA = Actor("cust_42", "customer", "Dana", "tab-1")
DANA_PHONE = Actor("cust_42", "customer", "Dana", "phone")
SAM = Actor("agent_7", "agent", "Sam", "console")
VERA = Actor("sup_1", "supervisor", "Vera", "desk")


class Recorder:
    """A presence listener that records what it is told."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str]] = []

    def presence(self, session: str, actor: Actor, status: str) -> None:
        assert session == SID
        self.heard.append((actor.id, actor.device or "", status))


class Setup:
    """A session, a presence manager on a fake clock, and a staff listener."""

    def __init__(self, sessions: SessionManager, store: PresenceStore) -> None:
        self.sessions = sessions
        self.clock = FakeClock()
        self.presence = PresenceManager(
            store, sessions, ttl=TTL, grace=GRACE, clock=self.clock
        )
        self.staff = Recorder()
        self.presence.add_listener(TENANT, SID, self.staff, staff=True)

    async def advance(self, seconds: float) -> None:
        """Move the clock, tick, and let membership events land."""
        self.clock.advance(seconds)
        await self.presence.tick()
        await self.presence.flush()

    async def events(self, *, staff: bool = True) -> list[Event]:
        result = await self.sessions.read(TENANT, SID, staff=staff, after=None)
        return SessionManager.parse_events([r.data for r in result.records])

    async def membership(self, *, staff: bool = True) -> list[tuple[str, str]]:
        """(type, participant id) of every membership event, in log order."""
        return [
            (e.type, e.data["participant"]["id"])
            for e in await self.events(staff=staff)
            if e.type.startswith("participant.")
        ]


async def setup(opener: Opener, store: PresenceStore | None = None) -> Setup:
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, SID, customer=DANA.id)
    return Setup(sessions, store or MemoryPresenceStore())


async def test_presence_hold_broadcasts_a_new_device_and_logs_joined(
    opener: Opener,
) -> None:
    """A held device is broadcast active and its participant joins, as the
    server, attributed to the verified identity."""
    s = await setup(opener)
    await s.presence.hold(TENANT, SID, DANA)
    await s.presence.flush()
    assert s.staff.heard == [("cust_42", "tab-1", "active")]
    [joined] = [e for e in await s.events() if e.type == "participant.joined"]
    assert joined.actor.is_server
    assert joined.visibility == "all"
    assert joined.data["participant"] == {
        "id": "cust_42",
        "role": "customer",
        "name": "Dana",
    }
    listed = await s.presence.snapshot(TENANT, SID, staff=False)
    assert listed == [{"actor": DANA.to_json(), "status": "active"}]


async def test_presence_two_devices_joining_at_once_log_one_joined(
    opener: Opener,
) -> None:
    """Two devices of one participant becoming present together log one joined."""
    s = await setup(opener)
    await asyncio.gather(
        s.presence.hold(TENANT, SID, DANA),
        s.presence.hold(TENANT, SID, DANA_PHONE),
        s.presence.set_status(
            TENANT, SID, Actor("cust_42", "customer", "Dana", "x"), "idle"
        ),
    )
    await s.presence.flush()
    assert await s.membership() == [("participant.joined", "cust_42")]
    assert len(s.staff.heard) == 3


async def test_presence_join_decided_on_a_stale_tail_is_retried(
    opener: Opener,
) -> None:
    """A joined decided before another event landed is retried on the new tail
    and stored once."""
    s = await setup(opener)
    publish = s.sessions.publish
    moved = False

    async def racing(tenant, session_id, actor, drafts, **options):
        nonlocal moved
        if actor.is_server and not moved:
            moved = True  # someone else publishes first: the tail moves
            note = EventDraft("note", "n1", {"text": "meanwhile"})
            await publish(tenant, session_id, SAM, [note])
        return await publish(tenant, session_id, actor, drafts, **options)

    s.sessions.publish = racing  # type: ignore[method-assign]
    await s.presence.hold(TENANT, SID, DANA)
    await s.presence.flush()
    assert moved
    types = [e.type for e in await s.events()]
    assert types == ["note", "participant.joined"]


async def test_presence_reload_within_grace_changes_nothing(opener: Opener) -> None:
    """A device that drops and comes back within the grace period is never
    broadcast offline, and its participant does not leave and rejoin."""
    s = await setup(opener)
    hold = await s.presence.hold(TENANT, SID, DANA)
    await s.presence.set_status(TENANT, SID, DANA, "typing")
    s.presence.release(hold)  # the tab reloads
    await s.advance(GRACE - 0.5)
    await s.presence.hold(TENANT, SID, DANA)
    for _ in range(12):
        await s.advance(TTL / 3)
    assert s.staff.heard == [
        ("cust_42", "tab-1", "active"),
        ("cust_42", "tab-1", "typing"),
    ]
    assert await s.membership() == [("participant.joined", "cust_42")]


async def test_presence_release_past_grace_drops_and_logs_left(
    opener: Opener,
) -> None:
    """A released device is broadcast offline once its grace has passed, and its
    participant's last device gone logs participant.left."""
    s = await setup(opener)
    hold = await s.presence.hold(TENANT, SID, DANA)
    s.presence.release(hold)
    s.presence.release(hold)  # a second release does nothing
    await s.advance(GRACE - 0.1)
    assert s.staff.heard == [("cust_42", "tab-1", "active")]
    await s.advance(0.1)
    assert s.staff.heard[-1] == ("cust_42", "tab-1", "offline")
    assert await s.membership() == [
        ("participant.joined", "cust_42"),
        ("participant.left", "cust_42"),
    ]
    assert await s.presence.snapshot(TENANT, SID, staff=True) == []


async def test_presence_device_not_heard_from_drops_after_the_ttl(
    opener: Opener,
) -> None:
    """A device kept present only by status updates drops 15 s after the last."""
    s = await setup(opener)
    await s.presence.set_status(TENANT, SID, SAM, "active")
    await s.advance(10.0)
    await s.presence.set_status(TENANT, SID, SAM, "active")  # a keep-alive
    await s.advance(TTL - 0.1)
    assert s.staff.heard == [("agent_7", "console", "active")]
    await s.advance(0.1)
    assert s.staff.heard[-1] == ("agent_7", "console", "offline")
    assert await s.membership() == [
        ("participant.joined", "agent_7"),
        ("participant.left", "agent_7"),
    ]


async def test_presence_held_device_outlives_the_ttl(opener: Opener) -> None:
    """A held device is refreshed by the manager and never expires while held."""
    s = await setup(opener)
    await s.presence.hold(TENANT, SID, SAM)
    for _ in range(20):
        await s.advance(TTL / 3)
    assert s.staff.heard == [("agent_7", "console", "active")]
    assert len(await s.presence.snapshot(TENANT, SID, staff=True)) == 1


async def test_presence_status_is_broadcast_only_when_it_changes(
    opener: Opener,
) -> None:
    """Setting the status a device already has broadcasts nothing."""
    s = await setup(opener)
    await s.presence.hold(TENANT, SID, SAM)
    await s.presence.set_status(TENANT, SID, SAM, "typing")
    await s.presence.set_status(TENANT, SID, SAM, "typing")
    await s.presence.set_status(TENANT, SID, SAM, "active")
    assert [h[2] for h in s.staff.heard] == ["active", "typing", "active"]


async def test_presence_refuses_an_unknown_status(opener: Opener) -> None:
    """An unknown status is invalid_presence and changes nothing."""
    s = await setup(opener)
    with pytest.raises(ProtocolError) as caught:
        await s.presence.set_status(TENANT, SID, SAM, "offline")
    assert caught.value.code == "invalid_presence"
    assert s.staff.heard == []


async def test_presence_left_waits_for_the_last_device(opener: Opener) -> None:
    """One device of two dropping is broadcast offline but logs no left."""
    s = await setup(opener)
    laptop = await s.presence.hold(TENANT, SID, DANA)
    phone = await s.presence.hold(TENANT, SID, DANA_PHONE)
    s.presence.release(laptop)
    await s.advance(GRACE)
    assert s.staff.heard[-1] == ("cust_42", "tab-1", "offline")
    assert await s.membership() == [("participant.joined", "cust_42")]
    s.presence.release(phone)
    await s.advance(GRACE)
    assert await s.membership() == [
        ("participant.joined", "cust_42"),
        ("participant.left", "cust_42"),
    ]


async def test_presence_participant_joins_again_after_leaving(
    opener: Opener,
) -> None:
    """A participant who left and comes back is logged joined again."""
    s = await setup(opener)
    s.presence.release(await s.presence.hold(TENANT, SID, DANA))
    await s.advance(GRACE)
    await s.presence.hold(TENANT, SID, DANA)
    await s.presence.flush()
    assert [m[0] for m in await s.membership()] == [
        "participant.joined",
        "participant.left",
        "participant.joined",
    ]


async def test_presence_offline_drops_the_device_at_once(opener: Opener) -> None:
    """remove() drops a device without grace, and logs left for its last one."""
    s = await setup(opener)
    await s.presence.set_status(TENANT, SID, SAM, "idle")
    await s.presence.remove(TENANT, SID, SAM)
    await s.presence.remove(TENANT, SID, SAM)  # gone already: nothing more
    await s.presence.flush()
    assert s.staff.heard == [
        ("agent_7", "console", "idle"),
        ("agent_7", "console", "offline"),
    ]
    assert [m[0] for m in await s.membership()] == [
        "participant.joined",
        "participant.left",
    ]


async def test_presence_supervisor_is_hidden_from_customers(opener: Opener) -> None:
    """A customer listener never hears of a supervisor, a customer snapshot
    leaves them out, and their membership events are staff-only."""
    s = await setup(opener)
    customer = Recorder()
    s.presence.add_listener(TENANT, SID, customer, staff=False, own=DANA)
    await s.presence.hold(TENANT, SID, VERA)
    await s.presence.hold(TENANT, SID, SAM)
    await s.presence.flush()
    assert customer.heard == [("agent_7", "console", "active")]
    assert [h[0] for h in s.staff.heard] == ["sup_1", "agent_7"]
    shown = await s.presence.snapshot(TENANT, SID, staff=False)
    assert [item["actor"]["id"] for item in shown] == ["agent_7"]
    assert await s.membership(staff=False) == [("participant.joined", "agent_7")]
    joined = [e for e in await s.events() if e.type == "participant.joined"]
    assert [(e.data["participant"]["id"], e.visibility) for e in joined] == [
        ("sup_1", "staff"),
        ("agent_7", "all"),
    ]


async def test_presence_listener_is_not_told_about_its_own_device(
    opener: Opener,
) -> None:
    """A listener with ``own`` hears of other devices, its participant's too,
    but never of its own device."""
    s = await setup(opener)
    mine = Recorder()
    s.presence.add_listener(TENANT, SID, mine, staff=False, own=DANA)
    await s.presence.hold(TENANT, SID, DANA)
    await s.presence.hold(TENANT, SID, DANA_PHONE)
    assert mine.heard == [("cust_42", "phone", "active")]
    s.presence.remove_listener(TENANT, SID, mine)
    await s.presence.set_status(TENANT, SID, DANA_PHONE, "typing")
    assert mine.heard == [("cust_42", "phone", "active")]


async def test_presence_closed_session_logs_no_membership(opener: Opener) -> None:
    """In a closed session devices are still present, but nothing is logged."""
    s = await setup(opener)
    closing = EventDraft("session.closed", "c1", {})
    service = Actor("svc", "service")
    await s.sessions.publish(TENANT, SID, service, [closing])
    await s.presence.hold(TENANT, SID, SAM)
    await s.presence.flush()
    assert await s.membership() == []
    assert s.staff.heard == [("agent_7", "console", "active")]


async def test_presence_restart_logs_left_for_devices_gone_meanwhile(
    opener: Opener, tmp_path: Path
) -> None:
    """Entries outlive a server restart (SQLite presence): devices that never
    came back are swept after it, broadcast offline, and logged left."""
    path = str(tmp_path / "s.db-presence")
    store = SQLitePresenceStore(path)
    await store.start()
    s = await setup(opener, store)
    await s.presence.hold(TENANT, SID, DANA)
    await s.presence.hold(TENANT, SID, SAM)
    await s.presence.flush()
    await s.presence.aclose()  # the server stops; nothing is released
    await store.stop()

    store = SQLitePresenceStore(path)
    await store.start()
    try:
        after = Setup(s.sessions, store)
        after.clock.now = s.clock.now + 1
        await after.presence.hold(TENANT, SID, SAM)  # came back within the TTL
        await after.presence.flush()
        assert after.staff.heard == []  # no flap
        for _ in range(3):
            await after.advance(TTL / 3)
        assert after.staff.heard == [("cust_42", "tab-1", "offline")]
        assert await after.membership() == [
            ("participant.joined", "cust_42"),
            ("participant.joined", "agent_7"),
            ("participant.left", "cust_42"),
        ]
    finally:
        await store.stop()


async def test_presence_needs_positive_ttl_and_grace(opener: Opener) -> None:
    """A manager with a ttl or grace that is not positive is a ValueError."""
    sessions = SessionManager(await opener())
    with pytest.raises(ValueError):
        PresenceManager(MemoryPresenceStore(), sessions, ttl=0)
    with pytest.raises(ValueError):
        PresenceManager(MemoryPresenceStore(), sessions, grace=-1)


async def test_presence_inbox_keeps_the_latest_change_per_device() -> None:
    """An inbox coalesces a device's changes into its latest, ordered by when
    each device last changed, and is empty once taken."""
    inbox = PresenceInbox()
    inbox.presence(SID, SAM, "active")
    inbox.presence(SID, DANA, "active")
    inbox.presence(SID, SAM, "typing")
    assert [(i["actor"]["id"], i["status"]) for i in inbox.take()] == [
        ("cust_42", "active"),
        ("agent_7", "typing"),
    ]
    assert not inbox.pending and inbox.take() == []


async def test_presence_inbox_wait_ends_at_the_first_change() -> None:
    """A wait ends when a change comes (the other wait is cancelled), and
    returns the other wait's answer when it ends first."""
    inbox = PresenceInbox()
    never = asyncio.Event()

    async def store_wait() -> bool:
        await never.wait()
        return True

    asyncio.get_running_loop().call_soon(inbox.presence, SID, SAM, "idle")
    assert await asyncio.wait_for(inbox.wait(store_wait()), 1000 * MS) is False

    async def woke() -> bool:
        return True

    inbox.take()
    assert await inbox.wait(woke()) is True
