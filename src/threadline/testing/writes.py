"""Contract checks for creating, appending to and deleting logs."""

from __future__ import annotations

import asyncio
import dataclasses

from ..exceptions import (
    ConfigConflict,
    ContentTypeMismatch,
    LogClosed,
    LogNotFound,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    SeqConflict,
    StorageError,
    TailMismatch,
)
from ..protocol.offsets import ZERO, Offset
from ..protocol.streams import ProducerClaim
from ..storage.base import LogConfig, LogKey
from .harness import (
    JSON,
    KEY,
    TEXT,
    Check,
    StoreUnderTest,
    offsets_at,
    raises,
)

__all__ = ["CHECKS"]

CHECKS: list[Check] = []
"""The checks of this module, in source order."""


def _check(check: Check) -> Check:
    CHECKS.append(check)
    return check


# Create


@_check
async def create_again_with_same_config_changes_nothing(t: StoreUnderTest) -> None:
    """A second create with the same configuration returns created=False and the same
    log.
    """
    info = await t.create(records=[b"a"])
    await t.restart()
    again, created = await t.store.create(KEY, TEXT, records=[b"b"])
    assert not created
    assert (again.generation, again.tail) == (info.generation, info.tail)
    assert await t.data() == [b"a"]


@_check
async def create_compares_content_types_by_media_type(t: StoreUnderTest) -> None:
    """Content types differing only in case and parameters are the same config."""
    await t.create(config=LogConfig("text/plain"))
    await t.restart()
    _, created = await t.store.create(KEY, LogConfig("Text/Plain; charset=utf-8"))
    assert not created


@_check
async def create_with_other_content_type_conflicts(t: StoreUnderTest) -> None:
    """Creating an existing log with another content type raises ConfigConflict."""
    await t.create()
    await t.restart()
    await raises(ConfigConflict, t.store.create(KEY, JSON))


@_check
async def create_with_other_expiry_conflicts(t: StoreUnderTest) -> None:
    """Creating an existing log with another TTL or expiry raises ConfigConflict."""
    await t.create(config=LogConfig("text/plain", ttl=60))
    await t.restart()
    await raises(ConfigConflict, t.store.create(KEY, LogConfig("text/plain", ttl=61)))
    await raises(ConfigConflict, t.store.create(KEY, TEXT))
    expires = LogConfig("text/plain", expires_at=t.clock() + 60)
    await raises(ConfigConflict, t.store.create(KEY, expires))


@_check
async def create_commits_initial_records(t: StoreUnderTest) -> None:
    """Initial records get offsets 1, 2… of the new generation and survive a restart."""
    info = await t.create(records=[b"a", b"b"])
    assert info.tail == Offset(info.generation, 2)
    await t.restart()
    records = await t.read_all()
    assert [r.offset for r in records] == offsets_at(info.generation, 1, 2)
    assert [r.data for r in records] == [b"a", b"b"]


@_check
async def create_closed_commits_the_close(t: StoreUnderTest) -> None:
    """A log created closed is closed after a restart and refuses appends."""
    await t.create(records=[b"a"], closed=True)
    await t.restart()
    assert (await t.store.head(KEY)).closed
    await raises(LogClosed, t.append(b"b"))


@_check
async def create_never_reuses_a_generation(t: StoreUnderTest) -> None:
    """Generations grow with every create, also after the newest log is deleted and the
    store restarts.
    """
    a = await t.create(LogKey("acme", "a"))
    b = await t.create(LogKey("acme", "b"))
    assert b.generation > a.generation
    await t.store.delete(LogKey("acme", "b"))
    await t.restart()
    c = await t.create(LogKey("acme", "c"))
    again = await t.create(LogKey("acme", "b"))
    assert b.generation < c.generation < again.generation


@_check
async def missing_log_raises_not_found(t: StoreUnderTest) -> None:
    """Every operation on a log that was never created raises LogNotFound."""
    await raises(LogNotFound, t.store.head(KEY))
    await raises(LogNotFound, t.store.read(KEY, None, max_bytes=100))
    await raises(LogNotFound, t.append(b"a"))
    await raises(LogNotFound, t.store.wait(KEY, ZERO, t.ms))
    await raises(LogNotFound, t.store.delete(KEY))


@_check
async def delete_removes_the_log(t: StoreUnderTest) -> None:
    """A deleted log (without forks) is LogNotFound after a restart, and its key is
    free.
    """
    first = await t.create(records=[b"a"])
    await t.store.delete(KEY)
    await t.restart()
    await raises(LogNotFound, t.store.head(KEY))
    second = await t.create()
    assert second.generation > first.generation
    assert await t.data() == []


# Append


@_check
async def append_assigns_consecutive_offsets(t: StoreUnderTest) -> None:
    """Each record gets the next offset; ``offsets`` lists them and ``tail`` is the
    last.
    """
    g = (await t.create()).generation
    first = await t.append(b"a", b"b")
    second = await t.append(b"c")
    assert (first.offsets, first.tail, first.count) == (
        offsets_at(g, 1, 2),
        Offset(g, 2),
        2,
    )
    assert (second.offsets, second.tail) == (offsets_at(g, 3), Offset(g, 3))
    await t.restart()
    records = await t.read_all()
    assert [(r.offset, r.data) for r in records] == list(
        zip(offsets_at(g, 1, 2, 3), [b"a", b"b", b"c"], strict=True)
    )
    assert (await t.store.head(KEY)).tail == Offset(g, 3)


@_check
async def append_concurrent_requests_get_distinct_offsets(t: StoreUnderTest) -> None:
    """Concurrent appends to one log are serialized: every record gets its own offset,
    none is lost.
    """
    await t.create()
    results = await asyncio.gather(*(t.append(b"%d" % i, b"x") for i in range(20)))
    offsets = sorted(o for result in results for o in result.offsets)
    assert len(set(offsets)) == 40
    await t.restart()
    assert [r.offset for r in await t.read_all()] == offsets


@_check
async def append_refused_writes_nothing(t: StoreUnderTest) -> None:
    """An append refused by a check writes none of its records, producer state or
    Stream-Seq.
    """
    await t.create()
    await t.append(b"a")
    claim = ProducerClaim("p", 0, 0)
    stale = await raises(
        TailMismatch,
        t.append(b"x", b"y", producer=claim, stream_seq="5", expected_tail=ZERO),
    )
    await t.restart()
    assert await t.data() == [b"a"]
    retry = await t.append(
        b"x", b"y", producer=claim, stream_seq="5", expected_tail=stale.tail
    )
    assert not retry.duplicate and retry.count == 2


@_check
async def append_producer_retry_after_restart_is_duplicate(t: StoreUnderTest) -> None:
    """A producer's retry after a restart writes nothing and echoes the highest accepted
    seq.
    """
    await t.create()
    await t.append(b"a", producer=ProducerClaim("p", 0, 0))
    tail = (await t.append(b"b", producer=ProducerClaim("p", 0, 1))).tail
    await t.restart()
    retry = await t.append(b"a", producer=ProducerClaim("p", 0, 0))
    assert (retry.duplicate, retry.producer_seq, retry.count, retry.tail) == (
        True,
        1,
        0,
        tail,
    )
    assert retry.offsets == []
    assert await t.data() == [b"a", b"b"]


@_check
async def append_producer_gap_after_restart_is_refused(t: StoreUnderTest) -> None:
    """After a restart, a producer that skips a seq gets ProducerSeqGap naming the
    expected seq.
    """
    await t.create()
    await t.append(b"a", producer=ProducerClaim("p", 0, 0))
    await t.restart()
    gap = await raises(
        ProducerSeqGap, t.append(b"c", producer=ProducerClaim("p", 0, 2))
    )
    assert (gap.expected, gap.received) == (1, 2)


@_check
async def append_producer_older_epoch_after_restart_is_fenced(
    t: StoreUnderTest,
) -> None:
    """After a restart, a producer with an older epoch than the stored one gets
    ProducerEpochStale.
    """
    await t.create()
    await t.append(b"a", producer=ProducerClaim("p", 1, 0))
    await t.restart()
    stale = await raises(
        ProducerEpochStale, t.append(b"b", producer=ProducerClaim("p", 0, 1))
    )
    assert stale.current_epoch == 1


@_check
async def append_producer_new_epoch_starts_at_zero(t: StoreUnderTest) -> None:
    """A producer's new epoch must start at seq 0, and then accepts writes again."""
    await t.create()
    await t.append(b"a", producer=ProducerClaim("p", 0, 0))
    await t.restart()
    await raises(ProducerEpochSeq, t.append(b"b", producer=ProducerClaim("p", 1, 1)))
    result = await t.append(b"b", producer=ProducerClaim("p", 1, 0))
    assert not result.duplicate and result.producer_seq == 0


@_check
async def append_producer_state_is_per_log_and_producer(t: StoreUnderTest) -> None:
    """Producer seqs are tracked per (log, producer id): others start fresh at seq 0."""
    other = LogKey("acme", "other")
    await t.create()
    await t.create(other)
    await t.append(b"a", producer=ProducerClaim("p", 0, 0))
    await t.restart()
    assert not (await t.append(b"b", producer=ProducerClaim("q", 0, 0))).duplicate
    assert not (
        await t.append(b"c", key=other, producer=ProducerClaim("p", 0, 0))
    ).duplicate


@_check
async def append_stream_seq_must_increase_after_restart(t: StoreUnderTest) -> None:
    """A Stream-Seq not sorting after the stored one raises SeqConflict, also after a
    restart.
    """
    await t.create()
    await t.append(b"a", stream_seq="b")
    await t.restart()
    await raises(SeqConflict, t.append(b"x", stream_seq="b"))
    await raises(SeqConflict, t.append(b"x", stream_seq="a"))
    assert (await t.append(b"c", stream_seq="c")).count == 1
    assert await t.data() == [b"a", b"c"]


@_check
async def append_close_survives_restart(t: StoreUnderTest) -> None:
    """An append with close commits its records and the close; later appends raise
    LogClosed.
    """
    await t.create()
    closing = await t.append(b"a", close=True)
    assert closing.closed
    await t.restart()
    assert (await t.store.head(KEY)).closed
    refused = await raises(LogClosed, t.append(b"b"))
    assert refused.tail == closing.tail
    assert await t.data() == [b"a"]


@_check
async def append_close_without_records_keeps_tail(t: StoreUnderTest) -> None:
    """A close with no records closes the log without moving its tail."""
    await t.create()
    tail = (await t.append(b"a")).tail
    result = await t.append(close=True)
    assert (result.closed, result.tail, result.count) == (True, tail, 0)


@_check
async def append_close_again_is_duplicate(t: StoreUnderTest) -> None:
    """Closing a closed log again (no records, no producer) succeeds as a duplicate."""
    await t.create()
    await t.append(b"a", close=True)
    await t.restart()
    again = await t.append(close=True)
    assert again.duplicate and again.closed


@_check
async def append_closing_producer_retry_is_duplicate(t: StoreUnderTest) -> None:
    """The producer request that closed a log, retried after restart, is a duplicate."""
    await t.create()
    claim = ProducerClaim("p", 0, 0)
    await t.append(b"a", close=True, producer=claim)
    await t.restart()
    retry = await t.append(b"a", close=True, producer=claim)
    assert (retry.duplicate, retry.producer_seq, retry.closed) == (True, 0, True)
    assert await t.data() == [b"a"]


@_check
async def append_expected_tail_guards_the_write(t: StoreUnderTest) -> None:
    """An append whose expected_tail is not the tail raises TailMismatch with the tail;
    a match writes.
    """
    info = await t.create()
    tail = (await t.append(b"a")).tail
    refused = await raises(TailMismatch, t.append(b"b", expected_tail=info.tail))
    assert refused.tail == tail
    assert (await t.append(b"b", expected_tail=tail)).count == 1


@_check
async def append_with_other_content_type_is_refused(t: StoreUnderTest) -> None:
    """Records of another media type raise ContentTypeMismatch; case and parameters do
    not count.
    """
    await t.create()
    await raises(ContentTypeMismatch, t.append(b"{}", content_type="application/json"))
    assert (await t.append(b"a", content_type="TEXT/plain; charset=utf-8")).count == 1


# Tenants, stats, lifecycle


@_check
async def tenants_are_isolated(t: StoreUnderTest) -> None:
    """Logs with one name in two tenants are separate logs: configs, records, deletes do
    not cross.
    """
    mine, theirs = LogKey("acme", "log"), LogKey("other", "log")
    await t.create(mine, TEXT, records=[b"mine"])
    await t.create(theirs, JSON, records=[b"{}"])
    await t.store.delete(theirs)
    await t.restart()
    assert await t.data(mine) == [b"mine"]
    await raises(LogNotFound, t.store.head(theirs))


@_check
async def stats_count_commits_appends_and_records(t: StoreUnderTest) -> None:
    """An append of three records moves the appends, records and commits counters."""
    await t.create()
    before = dataclasses.replace(t.store.stats)
    await t.append(b"a", b"b", b"c")
    after = t.store.stats
    assert (after.appends, after.records) == (before.appends + 1, before.records + 3)
    assert after.commits > before.commits


@_check
async def append_after_stop_raises_storage_error(t: StoreUnderTest) -> None:
    """Once the store is stopped, an append fails with StorageError."""
    await t.create()
    await t.stop()
    await raises(StorageError, t.append(b"a"))
