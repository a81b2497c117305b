"""Our server driven by the PyPI ``durable-streams`` 0.1.0 client, unmodified."""

from __future__ import annotations

import asyncio
from typing import Any

import durable_streams
import pytest
from durable_streams import AsyncDurableStream

from tests.server.harness import MS, ServerThread, WaitCounter, wait_for

Server = tuple[ServerThread, WaitCounter]


async def create(server: ServerThread, name: str = "chat") -> AsyncDurableStream:
    return await AsyncDurableStream.create(
        f"{server.url}/v1/stream/{name}", content_type="application/json", timeout=10.0
    )


async def test_client_version_is_the_published_one() -> None:
    """The interop tests run against the PyPI release 0.1.0."""
    assert durable_streams.__version__ == "0.1.0"


async def test_client_creates_appends_and_reads_back(server: Server) -> None:
    """What the client creates and appends reads back in order with ``read_json``."""
    running, _ = server
    handle = await create(running)
    try:
        first = await handle.append({"n": 1})
        await handle.append("two")
        last = await handle.append([3, 4])
        head = await handle.head()
        async with handle.stream(live=False) as response:
            items = await response.read_json()
    finally:
        await handle.aclose()
    assert items == [{"n": 1}, "two", [3, 4]]
    assert head.offset == last.next_offset
    assert first.next_offset < last.next_offset
    assert head.content_type == "application/json"


async def test_client_resumes_from_an_offset(server: Server) -> None:
    """Reading from an offset the server returned yields only the records after it."""
    running, _ = server
    handle = await create(running)
    try:
        await handle.append("a")
        middle = await handle.append("b")
        await handle.append("c")
        async with handle.stream(offset=middle.next_offset, live=False) as response:
            items = await response.read_json()
    finally:
        await handle.aclose()
    assert items == ["c"]


async def test_client_batches_concurrent_appends(server: Server) -> None:
    """Concurrent appends the client batches into one POST all arrive, once each."""
    running, _ = server
    handle = await create(running)
    try:
        await asyncio.gather(*(handle.append({"i": i}) for i in range(20)))
        async with handle.stream(live=False) as response:
            items = await response.read_json()
    finally:
        await handle.aclose()
    assert sorted(item["i"] for item in items) == list(range(20))


@pytest.mark.parametrize("live", ["sse", "long-poll"])
async def test_client_live_read_receives_later_append(
    server: Server, live: Any
) -> None:
    """A live read at the tail receives a record appended while it waits."""
    running, waits = server
    handle = await create(running)
    writer = await AsyncDurableStream.connect(handle.url, timeout=10.0)
    try:
        await handle.append("history")
        tail = (await handle.head()).offset
        received: list[Any] = []

        async def read() -> None:
            async with handle.stream(offset=tail, live=live) as response:
                async for item in response.iter_json():
                    received.append(item)
                    return

        reader = asyncio.create_task(read())
        try:
            await wait_for(lambda: waits.active >= 1, 5_000 * MS)
            await writer.append({"live": True})
            await asyncio.wait_for(reader, 5_000 * MS)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await writer.aclose()
        await handle.aclose()
    assert received == [{"live": True}]
