"""Contract checks for forks and expiry."""

from __future__ import annotations

import json

from ..exceptions import (
    ConfigConflict,
    ContentTypeMismatch,
    InvalidOffset,
    LogGone,
    LogNotFound,
)
from ..protocol.offsets import ZERO, Offset
from ..storage.base import AppendResult, ForkSpec, LogConfig, LogKey
from ..storage.index import Txn
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


# Forks


SOURCE: LogKey = LogKey("acme", "source")
FORK: LogKey = LogKey("acme", "fork")


async def _source(
    t: StoreUnderTest, *records: bytes, config: LogConfig = TEXT
) -> AppendResult:
    await t.create(SOURCE, config)
    return await t.append(*records, key=SOURCE, content_type=config.content_type)


@_check
async def fork_reads_source_up_to_fork_point(t: StoreUnderTest) -> None:
    """A fork reads its source's records up to the fork point, at the same offsets."""
    offsets = (await _source(t, b"a", b"b", b"c")).offsets
    await t.create(FORK, None, fork=ForkSpec(SOURCE, offsets[1]))
    await t.restart()
    records = await t.read_all(FORK)
    assert [(r.offset, r.data) for r in records] == [
        (offsets[0], b"a"),
        (offsets[1], b"b"),
    ]
    assert (await t.store.head(FORK)).tail == offsets[1]


@_check
async def fork_does_not_see_later_source_appends(t: StoreUnderTest) -> None:
    """Records appended to the source after the fork are invisible in the fork."""
    await _source(t, b"a")
    await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.append(b"late", key=SOURCE)
    await t.restart()
    assert await t.data(FORK) == [b"a"]
    assert await t.data(SOURCE) == [b"a", b"late"]


@_check
async def fork_appends_continue_the_chain(t: StoreUnderTest) -> None:
    """A fork's own records follow the fork point in its generation; offsets rise and
    sort as text.
    """
    offsets = (await _source(t, b"a", b"b")).offsets
    fork = await t.create(FORK, None, fork=ForkSpec(SOURCE, offsets[0]))
    assert fork.generation > offsets[0].generation
    own = await t.append(b"x", b"y", key=FORK)
    assert own.offsets == offsets_at(fork.generation, 2, 3)
    await t.restart()
    records = await t.read_all(FORK)
    assert [r.data for r in records] == [b"a", b"x", b"y"]
    texts = [str(r.offset) for r in records]
    assert texts == sorted(texts) and len(set(texts)) == 3
    assert await t.data(FORK, after=offsets[0]) == [b"x", b"y"]


@_check
async def info_names_each_position_with_the_generation_that_owns_it(
    t: StoreUnderTest,
) -> None:
    """A fork's info maps its inherited positions to its source's generation
    and its own (and, inside a transaction, pending) ones to its own, both
    ways; past the working tail it refuses."""
    offsets = (await _source(t, b"a", b"b", b"c")).offsets
    fork = await t.create(FORK, None, fork=ForkSpec(SOURCE, offsets[1]))
    info = await t.store.head(FORK)
    assert info.offset_at(0) == Offset(offsets[0].generation, 0)
    assert info.offset_at(2) == offsets[1]
    assert info.position_of(offsets[1]) == 2
    try:
        info.offset_at(3)
    except InvalidOffset:
        pass
    else:
        raise AssertionError("offset_at past the tail did not raise")

    def look(txn: Txn) -> tuple[Offset, Offset, int]:
        [pending] = txn.append(FORK.name, [b"x"])
        working = txn.info(FORK.name)
        return working.offset_at(3), pending, working.position_of(pending)

    own, pending, position = await t.store.transact(FORK.tenant, look)
    assert own == pending == Offset(fork.generation, 3)
    assert position == 3


@_check
async def fork_inherits_content_type_and_ttl(t: StoreUnderTest) -> None:
    """A fork created without configuration takes its source's content type and TTL."""
    await t.create(SOURCE, LogConfig("application/json", ttl=600))
    info = await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.restart()
    assert (await t.store.head(FORK)).config == info.config
    assert (info.config.content_type, info.config.ttl) == ("application/json", 600)


@_check
async def fork_with_other_content_type_is_refused(t: StoreUnderTest) -> None:
    """A fork that names another content type than its source raises
    ContentTypeMismatch.
    """
    await _source(t, b"a")
    await raises(ContentTypeMismatch, t.store.create(FORK, JSON, fork=ForkSpec(SOURCE)))


@_check
async def fork_of_missing_source_raises_not_found(t: StoreUnderTest) -> None:
    """A fork of a log that does not exist raises LogNotFound."""
    await raises(LogNotFound, t.store.create(FORK, None, fork=ForkSpec(SOURCE)))


@_check
async def fork_offset_outside_source_is_invalid(t: StoreUnderTest) -> None:
    """A fork offset beyond the source's tail, or of another generation, raises
    InvalidOffset.
    """
    tail = (await _source(t, b"a")).tail
    beyond = Offset(tail.generation, tail.position + 1)
    other = Offset(tail.generation + 1000, 1)
    for offset in (beyond, other):
        await raises(
            InvalidOffset, t.store.create(FORK, None, fork=ForkSpec(SOURCE, offset))
        )
    await raises(LogNotFound, t.store.head(FORK))


@_check
async def fork_sub_offset_takes_bytes_of_next_record(t: StoreUnderTest) -> None:
    """A byte sub-offset adds the first bytes of the record after the fork offset as the
    fork's own record.
    """
    offsets = (await _source(t, b"head", b"hello world")).offsets
    fork = await t.create(FORK, None, fork=ForkSpec(SOURCE, offsets[0], sub_offset=5))
    await t.restart()
    records = await t.read_all(FORK)
    assert [(r.offset, r.data) for r in records] == [
        (offsets[0], b"head"),
        (Offset(fork.generation, 2), b"hello"),
    ]


@_check
async def fork_sub_offset_counts_json_messages(t: StoreUnderTest) -> None:
    """In a JSON log a sub-offset counts messages of the next record, not bytes."""
    await _source(t, b'{"a":1},{"b":2},{"c":3}', config=JSON)
    await t.create(FORK, None, fork=ForkSpec(SOURCE, ZERO, sub_offset=2))
    await t.restart()
    (piece,) = await t.data(FORK)
    assert json.loads(b"[" + piece + b"]") == [{"a": 1}, {"b": 2}]


@_check
async def fork_sub_offset_past_record_end_is_invalid(t: StoreUnderTest) -> None:
    """A sub-offset past the next record's end, or at the source's tail, raises
    InvalidOffset.
    """
    result = await _source(t, b"abc")
    too_far = ForkSpec(SOURCE, ZERO, sub_offset=4)
    await raises(InvalidOffset, t.store.create(FORK, None, fork=too_far))
    at_tail = ForkSpec(SOURCE, result.tail, sub_offset=1)
    await raises(InvalidOffset, t.store.create(FORK, None, fork=at_tail))


@_check
async def fork_create_again_is_idempotent(t: StoreUnderTest) -> None:
    """Re-creating a fork with the same source and offset returns created=False and the
    same log.
    """
    offsets = (await _source(t, b"a", b"b")).offsets
    info = await t.create(FORK, None, fork=ForkSpec(SOURCE, offsets[0]))
    await t.restart()
    again, created = await t.store.create(FORK, None, fork=ForkSpec(SOURCE, offsets[0]))
    assert not created and again.generation == info.generation


@_check
async def delete_source_with_forks_soft_deletes(t: StoreUnderTest) -> None:
    """A deleted source with a fork is LogGone on its key, while the fork still reads
    its records.
    """
    await _source(t, b"a")
    await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.store.delete(SOURCE)
    await t.restart()
    await raises(LogGone, t.store.head(SOURCE))
    await raises(LogGone, t.store.read(SOURCE, None, max_bytes=100))
    await raises(LogGone, t.append(b"b", key=SOURCE))
    await raises(LogGone, t.store.delete(SOURCE))
    assert await t.data(FORK) == [b"a"]


@_check
async def create_on_soft_deleted_key_conflicts(t: StoreUnderTest) -> None:
    """Creating a log under a soft-deleted key raises ConfigConflict, even with the same
    configuration.
    """
    await _source(t, b"a")
    await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.store.delete(SOURCE)
    await t.restart()
    await raises(ConfigConflict, t.store.create(SOURCE, TEXT))


@_check
async def fork_of_soft_deleted_source_conflicts(t: StoreUnderTest) -> None:
    """Forking a soft-deleted source raises ConfigConflict (409 in Durable Streams)."""
    await _source(t, b"a")
    await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.store.delete(SOURCE)
    await t.restart()
    second = LogKey("acme", "fork2")
    await raises(ConfigConflict, t.store.create(second, None, fork=ForkSpec(SOURCE)))


@_check
async def delete_last_fork_collects_the_chain(t: StoreUnderTest) -> None:
    """Deleting the last fork collects soft-deleted ancestors, freeing their keys for
    new generations.
    """
    middle = LogKey("acme", "middle")
    source = await _source(t, b"a")
    await t.create(middle, None, fork=ForkSpec(SOURCE))
    await t.create(FORK, None, fork=ForkSpec(middle))
    await t.store.delete(SOURCE)
    await t.store.delete(middle)
    await t.restart()
    await raises(LogGone, t.store.head(middle))
    await t.store.delete(FORK)
    await t.restart()
    for key in (SOURCE, middle, FORK):
        await raises(LogNotFound, t.store.head(key))
    assert (await t.create(SOURCE)).generation > source.tail.generation


@_check
async def delete_fork_keeps_the_source(t: StoreUnderTest) -> None:
    """Deleting a fork leaves its source readable and deletable as a plain log."""
    await _source(t, b"a")
    await t.create(FORK, None, fork=ForkSpec(SOURCE))
    await t.store.delete(FORK)
    await t.restart()
    assert await t.data(SOURCE) == [b"a"]
    await t.store.delete(SOURCE)
    await raises(LogNotFound, t.store.head(SOURCE))


# Expiry


@_check
async def ttl_expired_log_is_not_found(t: StoreUnderTest) -> None:
    """A log whose TTL has passed without access behaves as if it did not exist."""
    await t.create(config=LogConfig("text/plain", ttl=60), records=[b"a"])
    await t.restart()
    t.clock.advance(59)
    await t.store.head(KEY)
    t.clock.advance(61)
    await raises(LogNotFound, t.store.head(KEY))
    await raises(LogNotFound, t.store.read(KEY, None, max_bytes=100))
    await raises(LogNotFound, t.append(b"b"))


@_check
async def ttl_expired_key_can_be_created_again(t: StoreUnderTest) -> None:
    """Creating a log under an expired key makes a new empty log of a new generation."""
    old = await t.create(config=LogConfig("text/plain", ttl=60), records=[b"a"])
    t.clock.advance(61)
    await t.restart()
    new, created = await t.store.create(KEY, TEXT)
    assert created and new.generation > old.generation
    assert await t.data() == []


@_check
async def ttl_expired_source_with_fork_is_gone(t: StoreUnderTest) -> None:
    """A source whose TTL passes while a fork reads it is LogGone; the fork reads on."""
    await t.create(SOURCE, LogConfig("text/plain", ttl=60), records=[b"a"])
    await t.create(FORK, LogConfig("text/plain", ttl=3600), fork=ForkSpec(SOURCE))
    t.clock.advance(61)
    await t.restart()
    await raises(LogGone, t.store.head(SOURCE))
    assert await t.data(FORK) == [b"a"]


@_check
async def ttl_expired_fork_releases_its_source(t: StoreUnderTest) -> None:
    """Once the last fork of a deleted source is seen expired, the source is collected
    too (by the next restart at the latest: collection may run in the background).
    """
    await _source(t, b"a")
    await t.create(FORK, LogConfig("text/plain", ttl=60), fork=ForkSpec(SOURCE))
    await t.store.delete(SOURCE)
    t.clock.advance(61)
    await t.restart()
    await raises(LogNotFound, t.store.head(FORK))
    await t.restart()
    await raises(LogNotFound, t.store.head(SOURCE))
    assert (await t.store.create(SOURCE, TEXT))[1]


@_check
async def touch_refreshes_ttl_across_restart(t: StoreUnderTest) -> None:
    """touch() restarts a sliding TTL, and the refresh survives a restart."""
    await t.create(config=LogConfig("text/plain", ttl=60))
    t.clock.advance(50)
    t.store.touch(KEY)
    await t.restart()
    t.clock.advance(50)
    assert (await t.store.head(KEY)).config.ttl == 60


@_check
async def touch_does_not_revive_expired_log(t: StoreUnderTest) -> None:
    """touch() on a log whose TTL has passed leaves it expired."""
    await t.create(config=LogConfig("text/plain", ttl=60))
    t.clock.advance(61)
    t.store.touch(KEY)
    await t.restart()
    await raises(LogNotFound, t.store.head(KEY))


@_check
async def expires_at_is_absolute(t: StoreUnderTest) -> None:
    """A log expires at its absolute expiry whatever touch() does."""
    await t.create(config=LogConfig("text/plain", expires_at=t.clock() + 60))
    t.clock.advance(50)
    t.store.touch(KEY)
    await t.restart()
    await t.store.head(KEY)
    t.clock.advance(11)
    await raises(LogNotFound, t.store.head(KEY))
