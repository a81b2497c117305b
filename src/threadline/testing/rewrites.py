"""Contract checks for the transaction's look-back and rewrite, and its tail guard.

``Txn.read`` and ``Txn.replace`` serve redactions; ``Txn.append(...,
expected_tail=...)`` is the compare-and-set the audit chain rests on.
"""

from __future__ import annotations

import asyncio

from ..exceptions import InvalidOffset, TailMismatch
from ..protocol.offsets import Offset
from ..storage.base import ForkSpec, LogKey
from ..storage.index import Txn
from .harness import KEY, Check, StoreUnderTest, raises

__all__ = ["CHECKS"]

CHECKS: list[Check] = []
"""The checks of this module, in source order."""

FORK = LogKey(KEY.tenant, "fork")


def _check(check: Check) -> Check:
    CHECKS.append(check)
    return check


@_check
async def replace_rewrites_one_record_for_good(t: StoreUnderTest) -> None:
    """A replaced record reads back rewritten after a restart; nothing else moves."""
    info = await t.create(records=[b"a", b"secret", b"c"])
    before = await t.read_all()
    target = before[1].offset
    await t.store.transact(KEY.tenant, lambda txn: txn.replace(KEY.name, target, b"x"))
    await t.restart()
    after = await t.read_all()
    assert [r.offset for r in after] == [r.offset for r in before]
    assert [r.data for r in after] == [b"a", b"x", b"c"]
    assert (await t.store.head(KEY)).tail == info.tail


@_check
async def replace_is_seen_by_cached_reads(t: StoreUnderTest) -> None:
    """Reads served before a rewrite (and so perhaps cached) see it after it."""
    await t.create()
    await t.append(b"a", b"secret")
    records = await t.read_all()
    tail = records[-1].offset
    assert (await t.store.read(KEY, records[0].offset, max_bytes=1 << 20)).records
    await t.store.transact(KEY.tenant, lambda txn: txn.replace(KEY.name, tail, b"x"))
    assert await t.data() == [b"a", b"x"]
    page = await t.store.read(KEY, records[0].offset, max_bytes=1 << 20)
    assert [r.data for r in page.records] == [b"x"]
    await t.restart()
    assert await t.data() == [b"a", b"x"]


@_check
async def replace_in_a_failed_transaction_changes_nothing(t: StoreUnderTest) -> None:
    """A rewrite in a transaction whose callback raises is not written."""
    await t.create(records=[b"a"])
    [record] = await t.read_all()

    def fail(txn: Txn) -> None:
        txn.replace(KEY.name, record.offset, b"x")
        raise InvalidOffset("the callback's own failure")

    await raises(InvalidOffset, t.store.transact(KEY.tenant, fail))
    await t.restart()
    assert await t.data() == [b"a"]


@_check
async def replace_of_a_record_this_transaction_appended(t: StoreUnderTest) -> None:
    """A transaction may rewrite a record it appended itself; the rewrite is stored."""
    await t.create(records=[b"a"])

    def write(txn: Txn) -> None:
        [offset] = txn.append(KEY.name, [b"secret"])
        txn.replace(KEY.name, offset, b"x")

    await t.store.transact(KEY.tenant, write)
    await t.restart()
    assert await t.data() == [b"a", b"x"]


@_check
async def replace_refuses_what_is_no_record_of_the_log(t: StoreUnderTest) -> None:
    """Beyond the tail, the start, another generation, a fork's shared record."""
    info = await t.create(records=[b"a"])
    await t.create(FORK, None, fork=ForkSpec(KEY))
    generation = info.tail.generation
    for offset in (
        Offset(generation, 2),
        Offset(generation, 0),
        Offset(generation + 1, 1),
    ):

        def rewrite(txn: Txn, at: Offset = offset) -> None:
            txn.replace(KEY.name, at, b"x")

        await raises(InvalidOffset, t.store.transact(KEY.tenant, rewrite))
    shared = info.tail  # the fork reads its source's record there
    await raises(
        InvalidOffset,
        t.store.transact(KEY.tenant, lambda txn: txn.replace(FORK.name, shared, b"x")),
    )
    await t.restart()
    assert await t.data() == [b"a"]
    assert await t.data(FORK) == [b"a"]


@_check
async def transact_reads_back_what_it_sees(t: StoreUnderTest) -> None:
    """Txn.read returns committed records, its own appends and its own rewrites."""
    await t.create(records=[b"a", b"b"])
    await t.append(b"c")

    def look(txn: Txn) -> tuple[list[bytes], list[bytes], list[bytes]]:
        first = txn.read(KEY.name, None, limit=10)
        txn.append(KEY.name, [b"d"])
        txn.replace(KEY.name, first[1].offset, b"B")
        second = txn.read(KEY.name, first[0].offset, limit=10)
        third = txn.read(KEY.name, second[1].offset, limit=1)
        return (
            [r.data for r in first],
            [r.data for r in second],
            [r.data for r in third],
        )

    seen = await t.store.transact(KEY.tenant, look)
    assert seen == ([b"a", b"b", b"c"], [b"B", b"c", b"d"], [b"d"])


@_check
async def transact_reads_records_of_the_same_group_commit(t: StoreUnderTest) -> None:
    """A transaction reads records appended by another write just before it."""
    await t.create()

    def look(txn: Txn) -> list[bytes]:
        return [r.data for r in txn.read(KEY.name, None, limit=10)]

    appended = t.store.transact(KEY.tenant, lambda txn: txn.append(KEY.name, [b"x"]))
    _, seen = await asyncio.gather(appended, t.store.transact(KEY.tenant, look))
    assert seen == [b"x"]


@_check
async def replace_of_a_record_of_the_same_group_commit(t: StoreUnderTest) -> None:
    """A record appended by one write may be rewritten by the next, before
    either is committed; readers see only the rewrite, before and after a
    restart."""
    info = await t.create()
    target = Offset(info.tail.generation, 1)
    appended = t.store.transact(KEY.tenant, lambda txn: txn.append(KEY.name, [b"s"]))
    rewritten = t.store.transact(
        KEY.tenant, lambda txn: txn.replace(KEY.name, target, b"x")
    )
    await asyncio.gather(appended, rewritten)
    assert await t.data() == [b"x"]
    await t.restart()
    assert await t.data() == [b"x"]


@_check
async def append_with_a_stale_tail_writes_nothing(t: StoreUnderTest) -> None:
    """Txn.append with an expected_tail that is not the tail raises TailMismatch."""
    info = await t.create()
    await t.append(b"a")

    def stale(txn: Txn) -> None:
        txn.append(KEY.name, [b"lost"], expected_tail=info.tail)

    mismatch = await raises(TailMismatch, t.store.transact(KEY.tenant, stale))
    tail = (await t.store.head(KEY)).tail
    assert mismatch.tail == tail
    await t.store.transact(
        KEY.tenant, lambda txn: txn.append(KEY.name, [b"b"], expected_tail=tail)
    )
    await t.restart()
    assert await t.data() == [b"a", b"b"]
