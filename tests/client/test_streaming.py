"""stream_message against a real server: pipelined deltas, and always an end."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.client.conftest import MakeClient, stored
from tests.client.proxy import Proxy
from tests.utils import MS, wait_for
from threadline.client.sse import SSETransport
from threadline.exceptions import AlreadyEnded


def message_events(
    events: list[dict[str, Any]], message_id: str
) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"].startswith("message") and e["data"]["message_id"] == message_id
    ]


async def test_stream_message_ends_complete_on_normal_exit(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """A normal exit stores start, the deltas in seq order, then end complete."""
    client = await make_client()
    await client.create_session("s1")
    async with client.session("s1").stream_message(run_id=None) as message:
        for word in ["Your ", "order ", "ships ", "today."]:
            await message.write(word)
    events = message_events(await stored(http, "s1"), message.message_id)
    assert [e["type"] for e in events] == ["message.start"] + ["message.delta"] * 4 + [
        "message.end"
    ]
    assert [e["data"]["seq"] for e in events[1:-1]] == [0, 1, 2, 3]
    assert "".join(e["data"]["text"] for e in events[1:-1]) == "Your order ships today."
    assert events[-1]["data"]["status"] == "complete"
    assert message.status == "complete"


async def test_stream_message_ends_cancelled_on_cancellation(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """A cancelled producer's message ends cancelled, and the cancellation goes on."""
    client = await make_client()
    await client.create_session("s1")
    wrote = asyncio.Event()

    async def produce() -> None:
        async with client.session("s1").stream_message(message_id="m1") as message:
            await message.write("Let me check")
            wrote.set()
            await asyncio.Event().wait()  # generating forever

    task = asyncio.create_task(produce())
    await asyncio.wait_for(wrote.wait(), 5_000 * MS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    end = message_events(await stored(http, "s1"), "m1")[-1]
    assert (end["type"], end["data"]["status"]) == ("message.end", "cancelled")


async def test_stream_message_ends_error_on_an_exception(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """An exception in the block ends the message error and is re-raised."""
    client = await make_client()
    await client.create_session("s1")
    with pytest.raises(RuntimeError, match="model crashed"):
        async with client.session("s1").stream_message(message_id="m1") as message:
            await message.write("Let me")
            raise RuntimeError("model crashed")
    end = message_events(await stored(http, "s1"), "m1")[-1]
    assert end["data"]["status"] == "error"
    assert end["data"]["reason"] == "producer_error"


async def test_stream_message_pipelines_deltas_without_waiting_for_answers(
    make_client: MakeClient, proxy: Proxy
):
    """Writes return while their answers are held, until max_in_flight are pending."""
    client = await make_client(url=proxy.url)
    await client.create_session("s1")
    async with client.session("s1").stream_message(max_in_flight=4) as message:
        proxy.hold()
        async with asyncio.timeout(5_000 * MS):
            for n in range(4):
                await message.write(f"{n} ")  # no answer arrives, none is awaited
        assert message.in_flight == 4
        fifth = asyncio.create_task(message.write("4 "))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not fifth.done()  # bounded: waits for an answer
        proxy.release()
        await asyncio.wait_for(fifth, 5_000 * MS)
    assert message.peak_in_flight == 4
    assert message.status == "complete"


@pytest.mark.parametrize("transport", ["sse"])
async def test_stream_message_over_sse_sends_queued_deltas_together(
    make_client: MakeClient, proxy: Proxy, http: httpx.AsyncClient
):
    """Over HTTP, deltas queued behind a request in flight go in one request."""
    client = await make_client(url=proxy.url)
    await client.create_session("s1")
    transport = client.transport
    assert isinstance(transport, SSETransport)
    async with client.session("s1").stream_message(message_id="m1") as message:
        before = transport.requests
        proxy.hold()
        await message.write("0 ")
        await wait_for(lambda: transport.requests == before + 1)  # in flight, held
        for n in range(1, 10):
            await message.write(f"{n} ")
        proxy.release()
    assert transport.requests == before + 3  # the first delta, the other 9, the end
    deltas = message_events(await stored(http, "s1"), "m1")[1:-1]
    assert [e["data"]["seq"] for e in deltas] == list(range(10))


async def test_stream_message_survives_a_drop_with_each_delta_stored_once(
    make_client: MakeClient, proxy: Proxy, http: httpx.AsyncClient
):
    """Deltas unanswered when the connection drops are resent and stored once each."""
    client = await make_client(url=proxy.url)
    await client.create_session("s1")
    async with client.session("s1").stream_message(message_id="m1") as message:
        await message.write("0 ")
        proxy.hold()
        for n in range(1, 6):
            await message.write(f"{n} ")
        # A delta written under hold is stored, its answer held.
        await wait_for(lambda: _has_deltas(http, "s1", "m1", 2), 5_000 * MS)
        proxy.cut()
        proxy.release()
        for n in range(6, 9):
            await message.write(f"{n} ")
    events = message_events(await stored(http, "s1"), "m1")
    assert [e["data"]["seq"] for e in events[1:-1]] == list(range(9))
    assert events[-1]["data"]["status"] == "complete"


async def _has_deltas(
    http: httpx.AsyncClient, session: str, message_id: str, count: int
) -> bool:
    events = message_events(await stored(http, session), message_id)
    return sum(1 for e in events if e["type"] == "message.delta") >= count


async def test_stream_message_write_raises_once_the_floor_is_lost(
    make_client: MakeClient,
):
    """After a human takes the floor, the AI's next write raises AlreadyEnded."""
    ai = await make_client("bot", "ai")
    agent = await make_client("ag_1", "agent")
    await ai.create_session("s1")
    with pytest.raises(AlreadyEnded):
        async with ai.session("s1").stream_message() as message:
            await message.write("Let me check")
            await ai.session("s1").publish(
                "control.request", {"request_id": "r1", "mode": "warm"}
            )
            await agent.session("s1").publish("control.accept", {"request_id": "r1"})
            await message.write("the refund")  # refused: the server ended it
            await wait_for(lambda: message.in_flight == 0, 5_000 * MS)
            await message.write("is approved")


async def test_write_part_opens_a_part_of_its_own(
    make_client: MakeClient, http: httpx.AsyncClient
):
    """write_part() publishes a non-text part as one delta of a new part index;
    text written after it opens the next part."""
    client = await make_client()
    await client.create_session("s1")
    session = client.session("s1")
    async with session.stream_message(message_id="m1") as message:
        await message.write("Checking")
        await message.write_part(
            {
                "type": "tool-call",
                "tool_call_id": "t1",
                "tool_name": "lookup",
                "input": {},
            }
        )
        await message.write_part({"type": "text", "text": "Done."})
    deltas = [e["data"] for e in message_events(await stored(http, "s1"), "m1")[1:-1]]
    assert [(d["seq"], d["part_index"], d["part_type"]) for d in deltas] == [
        (0, 0, "text"),
        (1, 1, "tool-call"),
        (2, 2, "text"),
    ]
    assert deltas[1]["data"] == {
        "tool_call_id": "t1",
        "tool_name": "lookup",
        "input": {},
    }
    state = await session.read(view="compact")
    (folded,) = [e for e in state.events if e.data.get("message_id") == "m1"]
    assert [p["type"] for p in folded.data["parts"]] == ["text", "tool-call", "text"]


async def test_write_part_refuses_a_part_without_a_type(make_client: MakeClient):
    """A part without a string type is a TypeError, and nothing is published."""
    client = await make_client()
    await client.create_session("s1")
    async with client.session("s1").stream_message() as message:
        with pytest.raises(TypeError):
            await message.write_part({"text": "no type"})
        assert message.seq == 0
