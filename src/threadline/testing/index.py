"""Contract checks for the index seam: transactions and committed index reads."""

from __future__ import annotations

import asyncio

from ..exceptions import LogClosed, LogNotFound
from ..protocol.offsets import Offset
from ..storage.base import LogKey
from ..storage.index import Txn
from .harness import KEY, Check, StoreUnderTest, raises

__all__ = ["CHECKS"]

CHECKS: list[Check] = []
"""The checks of this module, in source order."""

OTHER = LogKey(KEY.tenant, "other")


def _check(check: Check) -> Check:
    CHECKS.append(check)
    return check


class _Refused(Exception):
    """A callback's own failure."""


@_check
async def transact_commits_appends_and_entries_together(t: StoreUnderTest) -> None:
    """A transaction's appends and index entries are all there after a restart."""
    await t.create()

    def write(txn: Txn) -> list[Offset]:
        offsets = txn.append(KEY.name, [b"a", b"b"])
        txn.put("sessions", "s1", b"meta")
        txn.put("ids", "s1/x", str(offsets[1]).encode())
        return offsets

    offsets = await t.store.transact(KEY.tenant, write)
    await t.restart()
    assert await t.data() == [b"a", b"b"]
    records = await t.read_all()
    assert [r.offset for r in records] == offsets
    index = t.store.index
    assert await index.get(KEY.tenant, "sessions", "s1") == b"meta"
    assert await index.get(KEY.tenant, "ids", "s1/x") == str(offsets[1]).encode()


@_check
async def transact_that_raises_writes_nothing(t: StoreUnderTest) -> None:
    """When the callback raises, none of its appends or entries are written."""
    await t.create()

    def fail(txn: Txn) -> None:
        txn.append(KEY.name, [b"lost"])
        txn.put("sessions", "s1", b"lost")
        raise _Refused

    await raises(_Refused, t.store.transact(KEY.tenant, fail))
    await t.append(b"kept")
    await t.restart()
    assert await t.data() == [b"kept"]
    assert await t.store.index.get(KEY.tenant, "sessions", "s1") is None


@_check
async def transact_reads_its_own_writes(t: StoreUnderTest) -> None:
    """Inside a transaction, reads see its own appends and puts (and deletes)."""
    await t.create(records=[b"a"])
    await t.store.transact(KEY.tenant, lambda txn: txn.put("t", "gone", b"1"))

    def read_back(txn: Txn) -> tuple[Offset, Offset, bytes | None, bytes | None]:
        before = txn.info(KEY.name).tail
        txn.append(KEY.name, [b"b", b"c"])
        txn.put("t", "k", b"v")
        txn.put("t", "gone", None)
        return before, txn.info(KEY.name).tail, txn.get("t", "k"), txn.get("t", "gone")

    before, after, value, gone = await t.store.transact(KEY.tenant, read_back)
    assert after.position == before.position + 2
    assert (value, gone) == (b"v", None)
    await t.restart()
    assert await t.store.index.get(KEY.tenant, "t", "gone") is None


@_check
async def transact_appends_to_several_logs_atomically(t: StoreUnderTest) -> None:
    """One transaction can append to several logs of its tenant; all or none."""
    await t.create()
    await t.create(OTHER)

    def both(txn: Txn) -> None:
        txn.append(KEY.name, [b"x"])
        txn.append(OTHER.name, [b"y"])

    def half(txn: Txn) -> None:
        txn.append(KEY.name, [b"lost"])
        txn.append("missing", [b"z"])

    await t.store.transact(KEY.tenant, both)
    await raises(LogNotFound, t.store.transact(KEY.tenant, half))
    await t.restart()
    assert await t.data() == [b"x"]
    assert await t.data(OTHER) == [b"y"]


@_check
async def transact_refuses_appends_to_closed_logs(t: StoreUnderTest) -> None:
    """Appending to a closed log inside a transaction raises LogClosed."""
    await t.create(closed=True)
    await raises(
        LogClosed,
        t.store.transact(KEY.tenant, lambda txn: txn.append(KEY.name, [b"x"])),
    )
    await t.restart()
    assert await t.data() == []


@_check
async def concurrent_transactions_are_serialized(t: StoreUnderTest) -> None:
    """Concurrent transactions on one log each see the tail left by the one before."""
    await t.create()

    def step(txn: Txn) -> Offset:
        seen = txn.info(KEY.name).tail.position
        counter = int(txn.get("t", "n") or b"0")
        assert counter == seen, (counter, seen)
        txn.put("t", "n", str(counter + 1).encode())
        return txn.append(KEY.name, [str(seen).encode()])[0]

    offsets = await asyncio.gather(
        *(t.store.transact(KEY.tenant, step) for _ in range(40))
    )
    await t.restart()
    assert sorted(o.position for o in offsets) == list(range(1, 41))
    assert await t.data() == [str(i).encode() for i in range(40)]
    assert await t.store.index.get(KEY.tenant, "t", "n") == b"40"


@_check
async def transact_appends_wake_waiters(t: StoreUnderTest) -> None:
    """A record appended by a transaction wakes a reader waiting at the tail."""
    info = await t.create()
    waiter = asyncio.ensure_future(t.store.wait(KEY, info.tail, 2000 * t.ms))
    await asyncio.sleep(0)
    await t.store.transact(KEY.tenant, lambda txn: txn.append(KEY.name, [b"x"]))
    assert await waiter


@_check
async def index_scan_returns_prefix_in_key_order(t: StoreUnderTest) -> None:
    """scan returns the entries under a prefix in key order, paged by after/limit."""

    def fill(txn: Txn) -> None:
        for key in ("m/b", "m/a", "m/c", "n/a", "m"):
            txn.put("t", key, key.encode())

    await t.store.transact(KEY.tenant, fill)
    await t.restart()
    index = t.store.index
    assert [k for k, _ in await index.scan(KEY.tenant, "t", "m/")] == [
        "m/a",
        "m/b",
        "m/c",
    ]
    page = await index.scan(KEY.tenant, "t", "m/", limit=2)
    assert [k for k, _ in page] == ["m/a", "m/b"]
    rest = await index.scan(KEY.tenant, "t", "m/", after=page[-1][0])
    assert rest == [("m/c", b"m/c")]
    assert len(await index.scan(KEY.tenant, "t")) == 5


@_check
async def transact_scan_overlays_pending_writes(t: StoreUnderTest) -> None:
    """A scan inside a transaction shows its own puts and hides its own deletes."""
    await t.store.transact(
        KEY.tenant, lambda txn: [txn.put("t", k, b"1") for k in "abc"]
    )

    def scan(txn: Txn) -> list[str]:
        txn.put("t", "b", None)
        txn.put("t", "d", b"2")
        return [k for k, _ in txn.scan("t")]

    assert await t.store.transact(KEY.tenant, scan) == ["a", "c", "d"]


@_check
async def index_entries_are_per_tenant(t: StoreUnderTest) -> None:
    """The same table and key in two tenants are two entries."""
    await t.store.transact("acme", lambda txn: txn.put("t", "k", b"acme"))
    await t.store.transact("other", lambda txn: txn.put("t", "k", b"other"))
    await t.restart()
    assert await t.store.index.get("acme", "t", "k") == b"acme"
    assert await t.store.index.get("other", "t", "k") == b"other"
    assert [k for k, _ in await t.store.index.scan("nobody", "t")] == []


@_check
async def index_lists_the_tenants_of_a_table(t: StoreUnderTest) -> None:
    """The tenants with committed entries in a table, in order; deleted
    entries and other tables do not count."""
    await t.store.transact("zed", lambda txn: txn.put("open", "s1", b""))
    await t.store.transact("acme", lambda txn: txn.put("open", "s2", b""))
    await t.store.transact("gone", lambda txn: txn.put("open", "s3", b""))
    await t.store.transact("gone", lambda txn: txn.put("open", "s3", None))
    await t.store.transact("other", lambda txn: txn.put("shut", "s4", b""))
    await t.restart()
    assert await t.store.index.tenants("open") == ["acme", "zed"]
    assert await t.store.index.tenants("none") == []
