"""Contract checks for the presence seam, and their harness.

Every :class:`~threadline.storage.presence.PresenceStore` must pass every
check in :data:`CHECKS` (exported as ``threadline.testing.PRESENCE_CHECKS``).
Each check restarts the store between the writes and the reads that verify
them. Time is whatever ``now`` a check passes: stores read no clock.

To run the suite against your backend, write a :class:`PresenceHarness`::

    @pytest.mark.parametrize("check", PRESENCE_CHECKS, ids=lambda c: c.__name__)
    async def test_presence_contract(check, tmp_path):
        await run_presence_check(check, MyPresenceHarness(tmp_path))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Final

from ..protocol.actors import Actor
from ..storage.presence import MemoryPresenceStore, PresenceEntry, PresenceStore

__all__ = [
    "CHECKS",
    "MemoryPresenceHarness",
    "PresenceCheck",
    "PresenceHarness",
    "PresenceUnderTest",
    "run_presence_check",
]

T0: Final = 1_700_000_000.0
TTL: Final = 15.0
TENANT: Final = "acme"
SESSION: Final = "order-1"
DANA: Final = Actor("cust_42", "customer", "Dana")
SAM: Final = Actor("agent_7", "agent", "Sam")
VERA: Final = Actor("sup_1", "supervisor")


class PresenceHarness(ABC):
    """Starts one presence backend over one set of data, and restarts it.

    Use a fresh harness (a fresh file, database or key prefix) per check.
    """

    @abstractmethod
    async def open(self) -> PresenceStore:
        """Start an empty store."""

    @abstractmethod
    async def restart(self, store: PresenceStore) -> PresenceStore:
        """Stop ``store``; return a started store over the same data.

        For a persistent backend this must be a new store object.
        """


class MemoryPresenceHarness(PresenceHarness):
    """:class:`MemoryPresenceStore`: restarting stops and starts the same object."""

    async def open(self) -> PresenceStore:
        store = MemoryPresenceStore()
        await store.start()
        return store

    async def restart(self, store: PresenceStore) -> PresenceStore:
        await store.stop()
        await store.start()
        return store


class PresenceUnderTest:
    """What a check works with: the current store, a restart, helpers."""

    def __init__(self, harness: PresenceHarness, store: PresenceStore) -> None:
        self.harness = harness
        self.store = store
        """The running store; replaced by :meth:`restart`."""

    async def restart(self) -> PresenceStore:
        """Restart the store over the same data."""
        self.store = await self.harness.restart(self.store)
        return self.store

    async def set(
        self,
        participant: Actor = DANA,
        device: str = "tab-1",
        status: str = "active",
        *,
        ttl: float = TTL,
        now: float = T0,
        session: str = SESSION,
        tenant: str = TENANT,
    ) -> PresenceEntry | None:
        """Set one device's entry (Dana's ``tab-1`` in ``order-1`` by default)."""
        return await self.store.set(
            tenant, session, participant, device, status, ttl, now
        )

    async def devices(
        self, now: float, session: str = SESSION, tenant: str = TENANT
    ) -> list[tuple[str, str, str]]:
        """(participant, device, status) of the session's live entries, in order."""
        entries = await self.store.list(tenant, session, now)
        return [(e.participant, e.device, e.status) for e in entries]


PresenceCheck = Callable[[PresenceUnderTest], Awaitable[None]]
"""One presence contract check; its docstring states the behaviour it proves."""

CHECKS: list[PresenceCheck] = []
"""The checks of the presence contract, in source order."""


async def run_presence_check(check: PresenceCheck, harness: PresenceHarness) -> None:
    """Run one check on a fresh store from ``harness``; stop the store afterwards."""
    subject = PresenceUnderTest(harness, await harness.open())
    try:
        await check(subject)
    finally:
        await subject.store.stop()


def _check(check: PresenceCheck) -> PresenceCheck:
    CHECKS.append(check)
    return check


@_check
async def set_entry_is_listed_with_its_fields(t: PresenceUnderTest) -> None:
    """A set entry is listed after a restart with its actor, status and expiry."""
    assert await t.set(status="typing") is None
    await t.restart()
    entries = await t.store.list(TENANT, SESSION, T0 + 1)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.tenant == TENANT and entry.session == SESSION
    assert entry.actor == Actor("cust_42", "customer", "Dana", "tab-1")
    assert (entry.participant, entry.device) == ("cust_42", "tab-1")
    assert entry.status == "typing"
    assert entry.expires == T0 + TTL


@_check
async def set_returns_the_live_entry_it_replaces(t: PresenceUnderTest) -> None:
    """A second set of a device returns the first entry and keeps only the new one."""
    await t.set(status="active")
    await t.restart()
    previous = await t.set(status="typing", now=T0 + 5)
    assert previous is not None and previous.status == "active"
    assert previous.expires == T0 + TTL
    await t.restart()
    assert await t.devices(T0 + 6) == [("cust_42", "tab-1", "typing")]
    [entry] = await t.store.list(TENANT, SESSION, T0 + 6)
    assert entry.expires == T0 + 5 + TTL


@_check
async def set_over_an_expired_entry_returns_none(t: PresenceUnderTest) -> None:
    """An entry at or past its expiry counts as absent: setting it again is new."""
    await t.set()
    await t.restart()
    assert await t.set(now=T0 + TTL) is None
    assert await t.devices(T0 + TTL) == [("cust_42", "tab-1", "active")]


@_check
async def set_with_a_shorter_ttl_shortens_the_entry(t: PresenceUnderTest) -> None:
    """A set replaces the expiry even with an earlier one (a grace period)."""
    await t.set(ttl=TTL)
    await t.set(ttl=2.0, now=T0 + 1)
    await t.restart()
    assert await t.devices(T0 + 2.5) == [("cust_42", "tab-1", "active")]
    assert await t.devices(T0 + 3) == []


@_check
async def set_refuses_a_ttl_that_is_not_positive(t: PresenceUnderTest) -> None:
    """A ttl of zero or less is a ValueError and changes nothing."""
    for ttl in (0.0, -1.0):
        try:
            await t.set(ttl=ttl)
        except ValueError:
            pass
        else:
            raise AssertionError(f"ttl {ttl} was accepted")
    assert await t.devices(T0) == []


@_check
async def entries_are_keyed_by_participant_and_device(t: PresenceUnderTest) -> None:
    """Devices of one participant, and one device id of two participants, are
    separate entries, listed by participant then device."""
    await t.set(DANA, "tab-2")
    await t.set(DANA, "tab-1", "idle")
    await t.set(SAM, "tab-1", "typing")
    await t.restart()
    assert await t.devices(T0) == [
        ("agent_7", "tab-1", "typing"),
        ("cust_42", "tab-1", "idle"),
        ("cust_42", "tab-2", "active"),
    ]


@_check
async def sessions_and_tenants_do_not_share_entries(t: PresenceUnderTest) -> None:
    """An entry is listed in its own tenant's session only."""
    await t.set(session="order-1")
    await t.set(SAM, session="order-2")
    await t.set(VERA, tenant="other")
    await t.restart()
    assert await t.devices(T0) == [("cust_42", "tab-1", "active")]
    assert await t.devices(T0, session="order-2") == [("agent_7", "tab-1", "active")]
    assert await t.devices(T0, tenant="other") == [("sup_1", "tab-1", "active")]
    assert await t.devices(T0, tenant="other", session="order-2") == []


@_check
async def list_leaves_out_expired_entries(t: PresenceUnderTest) -> None:
    """An entry is listed strictly before its expiry, and not from it on."""
    await t.set(DANA, ttl=10.0)
    await t.set(SAM, ttl=20.0)
    await t.restart()
    assert [d[0] for d in await t.devices(T0 + 9.5)] == ["agent_7", "cust_42"]
    assert [d[0] for d in await t.devices(T0 + 10)] == ["agent_7"]
    assert await t.devices(T0 + 20) == []


@_check
async def remove_returns_the_entry_and_forgets_it(t: PresenceUnderTest) -> None:
    """Removing a live entry returns it; it is no longer listed after a restart."""
    await t.set(DANA, "tab-1")
    await t.set(DANA, "tab-2")
    removed = await t.store.remove(TENANT, SESSION, "cust_42", "tab-1", T0 + 1)
    assert removed is not None and removed.device == "tab-1"
    await t.restart()
    assert await t.devices(T0 + 1) == [("cust_42", "tab-2", "active")]


@_check
async def remove_of_an_absent_or_expired_entry_returns_none(
    t: PresenceUnderTest,
) -> None:
    """Removing a device that is absent, or whose entry expired, returns None."""
    assert await t.store.remove(TENANT, SESSION, "cust_42", "tab-1", T0) is None
    await t.set(ttl=5.0)
    await t.restart()
    assert await t.store.remove(TENANT, SESSION, "cust_42", "tab-1", T0 + 5) is None
    assert await t.store.expire(T0 + 100) == []


@_check
async def expire_reports_each_expired_entry_once(t: PresenceUnderTest) -> None:
    """expire() removes and returns the entries expired at ``now``, soonest
    first, each by one call only."""
    await t.set(SAM, ttl=8.0)
    await t.set(DANA, ttl=5.0)
    await t.set(VERA, ttl=30.0)
    await t.restart()
    assert await t.store.expire(T0 + 4.9) == []
    expired = await t.store.expire(T0 + 8)
    assert [(e.participant, e.expires) for e in expired] == [
        ("cust_42", T0 + 5),
        ("agent_7", T0 + 8),
    ]
    assert expired[0].actor == Actor("cust_42", "customer", "Dana", "tab-1")
    await t.restart()
    assert await t.store.expire(T0 + 8) == []
    assert await t.devices(T0 + 8) == [("sup_1", "tab-1", "active")]


@_check
async def expire_skips_entries_refreshed_or_removed(t: PresenceUnderTest) -> None:
    """An entry set again before its expiry, or removed, is not reported then."""
    await t.set(DANA, ttl=5.0)
    await t.set(SAM, ttl=5.0)
    await t.set(DANA, ttl=5.0, now=T0 + 4)
    await t.store.remove(TENANT, SESSION, "agent_7", "tab-1", T0 + 4)
    await t.restart()
    assert await t.store.expire(T0 + 5) == []
    [entry] = await t.store.expire(T0 + 9)
    assert entry.participant == "cust_42" and entry.expires == T0 + 9


@_check
async def expire_returns_at_most_limit_entries(t: PresenceUnderTest) -> None:
    """expire() stops at ``limit``; the next call returns the rest."""
    for n in range(5):
        await t.set(device=f"tab-{n}", ttl=1.0 + n)
    await t.restart()
    first = await t.store.expire(T0 + 10, limit=3)
    rest = await t.store.expire(T0 + 10, limit=3)
    assert [e.device for e in first] == ["tab-0", "tab-1", "tab-2"]
    assert [e.device for e in rest] == ["tab-3", "tab-4"]
