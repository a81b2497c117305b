"""Contract checks for reading and waiting."""

from __future__ import annotations

import asyncio

from ..exceptions import InvalidOffset, OffsetGone
from ..protocol.offsets import ZERO, Offset
from .harness import (
    KEY,
    Check,
    StoreUnderTest,
    raises,
)

__all__ = ["CHECKS"]

CHECKS: list[Check] = []
"""The checks of this module, in source order."""


def _check(check: Check) -> Check:
    CHECKS.append(check)
    return check


# Read


@_check
async def read_from_start_returns_every_record(t: StoreUnderTest) -> None:
    """Reading after None or ZERO returns every record in order and is up to date."""
    info = await t.create(records=[b"a"])
    await t.append(b"b", b"c")
    await t.restart()
    for after in (None, ZERO, Offset(info.generation, 0)):
        result = await t.store.read(KEY, after, max_bytes=1 << 20)
        assert [r.data for r in result.records] == [b"a", b"b", b"c"]
        assert result.up_to_date
        assert result.next_offset == Offset(info.generation, 3) == result.info.tail


@_check
async def read_after_offset_returns_later_records(t: StoreUnderTest) -> None:
    """Reading after an offset returns exactly the records after it."""
    await t.create()
    offsets = (await t.append(b"a", b"b", b"c")).offsets
    await t.restart()
    assert await t.data(after=offsets[0]) == [b"b", b"c"]
    assert await t.data(after=offsets[2]) == []


@_check
async def read_pages_by_max_bytes(t: StoreUnderTest) -> None:
    """A read stops before the record that would pass max_bytes; next_offset resumes
    there.
    """
    await t.create()
    offsets = (await t.append(*[b"%010d" % i for i in range(5)])).offsets
    await t.restart()
    pages: list[list[Offset]] = []
    after: Offset | None = None
    while True:
        result = await t.store.read(KEY, after, max_bytes=25)
        pages.append([r.offset for r in result.records])
        if result.up_to_date:
            break
        after = result.next_offset
        assert after == result.records[-1].offset
    assert pages == [offsets[0:2], offsets[2:4], offsets[4:]]


@_check
async def read_returns_a_record_larger_than_max_bytes(t: StoreUnderTest) -> None:
    """A read returns at least one record even when it alone passes max_bytes."""
    await t.create()
    await t.append(b"x" * 100, b"y")
    await t.restart()
    result = await t.store.read(KEY, None, max_bytes=10)
    assert [r.data for r in result.records] == [b"x" * 100]
    assert not result.up_to_date


@_check
async def read_at_tail_is_empty_and_up_to_date(t: StoreUnderTest) -> None:
    """A read at the tail returns no records, is up to date, and next_offset is the
    tail.
    """
    await t.create()
    tail = (await t.append(b"a")).tail
    await t.restart()
    result = await t.store.read(KEY, tail, max_bytes=100)
    assert (list(result.records), result.up_to_date, result.next_offset) == (
        [],
        True,
        tail,
    )


@_check
async def read_empty_log_is_up_to_date(t: StoreUnderTest) -> None:
    """A read of an empty log returns nothing, is up to date, and next_offset is the
    tail.
    """
    info = await t.create()
    await t.restart()
    result = await t.store.read(KEY, None, max_bytes=100)
    assert (list(result.records), result.up_to_date) == ([], True)
    assert result.next_offset == info.tail == result.info.tail


@_check
async def read_beyond_tail_raises_invalid_offset(t: StoreUnderTest) -> None:
    """An offset of this log's generation beyond its tail raises InvalidOffset."""
    g = (await t.create(records=[b"a"])).generation
    await t.restart()
    await raises(InvalidOffset, t.store.read(KEY, Offset(g, 2), max_bytes=100))


@_check
async def read_offset_of_other_generation_is_gone(t: StoreUnderTest) -> None:
    """After delete and re-create, an offset of the old log raises OffsetGone naming the
    new bounds.
    """
    old = (await t.create(records=[b"a", b"b"])).tail
    await t.store.delete(KEY)
    await t.restart()
    new = await t.create(records=[b"c"])
    await t.restart()
    gone = await raises(OffsetGone, t.store.read(KEY, old, max_bytes=100))
    assert (gone.earliest, gone.tail) == (new.earliest, new.tail)


@_check
async def read_reports_closed_only_at_the_end(t: StoreUnderTest) -> None:
    """ReadResult.closed holds only for a read that reaches the end of a closed log."""
    await t.create()
    await t.append(b"a", b"b", close=True)
    await t.restart()
    partial = await t.store.read(KEY, None, max_bytes=1)
    assert not partial.closed
    rest = await t.store.read(KEY, partial.next_offset, max_bytes=100)
    assert rest.closed and [r.data for r in rest.records] == [b"b"]


# Wait


@_check
async def wait_returns_at_once_when_records_exist(t: StoreUnderTest) -> None:
    """A wait after an offset that has records after it returns True without waiting."""
    await t.create(records=[b"a"])
    assert await asyncio.wait_for(t.store.wait(KEY, ZERO, 3600), 1000 * t.ms)


@_check
async def wait_wakes_on_append(t: StoreUnderTest) -> None:
    """A wait at the tail blocks, then returns True when a record is appended."""
    tail = (await t.create()).tail
    waiter = asyncio.ensure_future(t.store.wait(KEY, tail, 3600))
    done, _ = await asyncio.wait({waiter}, timeout=50 * t.ms)
    assert not done, "wait returned with nothing to wait for"
    await t.append(b"a")
    assert await asyncio.wait_for(waiter, 1000 * t.ms)


@_check
async def wait_wakes_on_close(t: StoreUnderTest) -> None:
    """A wait at the tail returns True when the log is closed."""
    tail = (await t.create()).tail
    waiter = asyncio.ensure_future(t.store.wait(KEY, tail, 3600))
    done, _ = await asyncio.wait({waiter}, timeout=50 * t.ms)
    assert not done, "wait returned with nothing to wait for"
    await t.append(close=True)
    assert await asyncio.wait_for(waiter, 1000 * t.ms)


@_check
async def wait_wakes_on_delete(t: StoreUnderTest) -> None:
    """A wait at the tail returns True when the log is deleted."""
    tail = (await t.create()).tail
    waiter = asyncio.ensure_future(t.store.wait(KEY, tail, 3600))
    done, _ = await asyncio.wait({waiter}, timeout=50 * t.ms)
    assert not done, "wait returned with nothing to wait for"
    await t.store.delete(KEY)
    assert await asyncio.wait_for(waiter, 1000 * t.ms)


@_check
async def wait_times_out_with_false(t: StoreUnderTest) -> None:
    """A wait at the tail of an open log returns False when its timeout passes."""
    tail = (await t.create(records=[b"a"])).tail
    assert (
        await asyncio.wait_for(t.store.wait(KEY, tail, 20 * t.ms), 1000 * t.ms) is False
    )


@_check
async def wait_on_closed_log_returns_at_once(t: StoreUnderTest) -> None:
    """A wait at the tail of a closed log returns True without waiting."""
    tail = (await t.create(records=[b"a"], closed=True)).tail
    await t.restart()
    assert await asyncio.wait_for(t.store.wait(KEY, tail, 3600), 1000 * t.ms)


@_check
async def wait_cancelled_leaves_store_usable(t: StoreUnderTest) -> None:
    """Cancelling a wait leaves appends and later waits working."""
    tail = (await t.create()).tail
    waiter = asyncio.ensure_future(t.store.wait(KEY, tail, 3600))
    done, _ = await asyncio.wait({waiter}, timeout=50 * t.ms)
    assert not done, "wait returned with nothing to wait for"
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()
    await t.append(b"a")
    assert await asyncio.wait_for(t.store.wait(KEY, tail, 3600), 1000 * t.ms)
