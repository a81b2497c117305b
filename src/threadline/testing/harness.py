"""The contract suite's machinery: harnesses, the clock, the check runner."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..protocol.offsets import Offset
from ..protocol.streams import ProducerClaim
from ..storage.base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    LogStore,
    Record,
)
from ..storage.memory import MemoryLogStore

__all__ = [
    "JSON",
    "KEY",
    "TEXT",
    "Check",
    "FakeClock",
    "MemoryHarness",
    "StoreHarness",
    "StoreUnderTest",
    "offsets_at",
    "raises",
    "run_check",
]

_E = TypeVar("_E", bound=BaseException)

TEXT: LogConfig = LogConfig("text/plain")
JSON: LogConfig = LogConfig("application/json")
KEY: LogKey = LogKey("acme", "log")


class FakeClock:
    """A clock that moves only when told: stores read time from it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        """Epoch seconds returned by every call."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class StoreHarness(ABC):
    """Starts one backend over one set of data, and restarts it.

    Use a fresh harness (a fresh file, database or key prefix) per check.
    """

    @abstractmethod
    async def open(self, clock: Callable[[], float]) -> LogStore:
        """Start an empty store that reads the time from ``clock``."""

    @abstractmethod
    async def restart(self, store: LogStore) -> LogStore:
        """Stop ``store``; return a started store over the same data and clock.

        For a persistent backend this must be a new store object, so that
        nothing survives in the old one's memory.
        """


class MemoryHarness(StoreHarness):
    """:class:`MemoryLogStore`: restarting stops and starts the same object."""

    async def open(self, clock: Callable[[], float]) -> LogStore:
        store = MemoryLogStore(clock=clock)
        await store.start()
        return store

    async def restart(self, store: LogStore) -> LogStore:
        await store.stop()
        await store.start()
        return store


class StoreUnderTest:
    """What a check works with: the current store, its clock, a restart, helpers."""

    def __init__(
        self, harness: StoreHarness, store: LogStore, clock: FakeClock, ms: float
    ) -> None:
        self.harness = harness
        self.store = store
        """The running store; replaced by :meth:`restart`."""
        self.clock = clock
        self.ms = ms
        """The time unit for real-time waits, in seconds."""
        self.stopped = False

    async def restart(self) -> LogStore:
        """Restart the store over the same data."""
        self.store = await self.harness.restart(self.store)
        return self.store

    async def stop(self) -> None:
        """Stop the store for good (the runner will not stop it again)."""
        self.stopped = True
        await self.store.stop()

    async def create(
        self,
        key: LogKey = KEY,
        config: LogConfig | None = TEXT,
        *,
        records: Sequence[bytes] = (),
        closed: bool = False,
        fork: ForkSpec | None = None,
    ) -> LogInfo:
        """Create a log that must not exist yet."""
        info, created = await self.store.create(
            key, config, records=records, closed=closed, fork=fork
        )
        assert created, f"{key} already existed"
        return info

    async def append(
        self,
        *records: bytes,
        key: LogKey = KEY,
        content_type: str = "text/plain",
        close: bool = False,
        producer: ProducerClaim | None = None,
        stream_seq: str | None = None,
        expected_tail: Offset | None = None,
    ) -> AppendResult:
        """Append ``records`` in one request."""
        request = AppendRequest(
            records=records,
            content_type=content_type,
            close=close,
            producer=producer,
            stream_seq=stream_seq,
            expected_tail=expected_tail,
        )
        return await self.store.append(key, request)

    async def read_all(
        self, key: LogKey = KEY, after: Offset | None = None
    ) -> list[Record]:
        """Every record after ``after``, following ``next_offset`` to the tail."""
        records: list[Record] = []
        while True:
            result = await self.store.read(key, after, max_bytes=1 << 20)
            records += result.records
            if result.up_to_date:
                return records
            assert result.records, "a read that is not up to date returned nothing"
            after = result.next_offset

    async def data(self, key: LogKey = KEY, after: Offset | None = None) -> list[bytes]:
        """The payloads of :meth:`read_all`."""
        return [record.data for record in await self.read_all(key, after)]


Check = Callable[[StoreUnderTest], Awaitable[None]]
"""One contract check; its docstring states the behaviour it proves."""


async def run_check(check: Check, harness: StoreHarness, *, ms: float = 0.001) -> None:
    """Run one check on a fresh store from ``harness``; stop the store afterwards.

    Args:
        check: One of :data:`~threadline.testing.CONTRACT_CHECKS`.
        harness: Opens and restarts the backend under test.
        ms: The time unit for real-time waits, in seconds; raise it on slow machines.
    """
    clock = FakeClock()
    subject = StoreUnderTest(harness, await harness.open(clock), clock, ms)
    try:
        await check(subject)
    finally:
        if not subject.stopped:
            await subject.store.stop()


async def raises(kind: type[_E], awaitable: Awaitable[object]) -> _E:
    """Await ``awaitable``; return the ``kind`` exception it raises, fail otherwise."""
    try:
        result = await awaitable
    except kind as exc:
        return exc
    raise AssertionError(f"expected {kind.__name__}, got a result: {result!r}")


def offsets_at(generation: int, *positions: int) -> list[Offset]:
    """The offsets of ``positions`` in one generation."""
    return [Offset(generation, position) for position in positions]
