"""Live reads against a real uvicorn on port 0: long-poll, SSE, and disconnects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx

from tests.server.harness import (
    MS,
    Event,
    ServerThread,
    WaitCounter,
    sse_events,
    wait_for,
)

Serve = Callable[..., tuple[ServerThread, WaitCounter]]
JSON = {"content-type": "application/json"}
LONG = 10.0  # a long-poll timeout the tests never reach


@contextlib.asynccontextmanager
async def http(
    server: ServerThread, **kwargs: object
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20, **kwargs) as client:  # type: ignore[arg-type]
        yield client


async def json_stream(
    client: httpx.AsyncClient, *records: bytes, path: str = "/v1/stream/s"
) -> str:
    """Create a JSON stream with one append per record; return its tail."""
    created = await client.put(path, headers=JSON)
    assert created.status_code == 201
    tail = created.headers["stream-next-offset"]
    for record in records:
        response = await client.post(path, headers=JSON, content=record)
        assert response.status_code == 204
        tail = response.headers["stream-next-offset"]
    return tail


async def take(
    events: AsyncIterator[Event], count: int, timeout: float = 5_000 * MS
) -> list[Event]:
    """The next ``count`` events, failing after ``timeout``."""
    taken: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(taken) < count:
            taken.append(await anext(events))
    return taken


async def rest(
    events: AsyncIterator[Event], timeout: float = 5_000 * MS
) -> list[Event]:
    """Every event until the server ends the response."""
    async with asyncio.timeout(timeout):
        return [event async for event in events]


def control(event: Event) -> dict[str, object]:
    assert event.event == "control", event
    value = json.loads(event.data)
    assert isinstance(value, dict)
    return value


# Long-poll


async def test_long_poll_returns_data_appended_while_waiting(serve: Serve) -> None:
    """A long-poll at the tail waits, then answers 200 with a record appended."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        poll = asyncio.create_task(
            client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
        )
        await wait_for(lambda: waits.active == 1, 5_000 * MS)
        appended = await client.post("/v1/stream/s", headers=JSON, content=b'{"n":2}')
        response = await asyncio.wait_for(poll, 5_000 * MS)
    assert response.status_code == 200
    assert response.json() == [{"n": 2}]
    assert (
        response.headers["stream-next-offset"] == appended.headers["stream-next-offset"]
    )
    assert response.headers["stream-cursor"].isdigit()
    assert response.headers["stream-up-to-date"] == "true"


async def test_long_poll_times_out_with_204_and_cursor(serve: Serve) -> None:
    """With nothing appended a long-poll answers 204 at the timeout, with a cursor."""
    server, waits = serve(long_poll_timeout=200 * MS)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        started = time.monotonic()
        response = await client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
        elapsed = time.monotonic() - started
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["stream-next-offset"] == tail
    assert response.headers["stream-up-to-date"] == "true"
    assert response.headers["stream-cursor"].isdigit()
    assert response.headers["cache-control"] == "no-store"
    assert "stream-closed" not in response.headers
    assert elapsed >= 150 * MS
    assert waits.started == 1


async def test_long_poll_cursor_advances_past_echoed_cursor(serve: Serve) -> None:
    """Echoing the cursor back yields a strictly larger one (CDN cache collapsing)."""
    server, _ = serve(long_poll_timeout=50 * MS)
    async with http(server) as client:
        tail = await json_stream(client)
        first = await client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
        cursor = first.headers["stream-cursor"]
        second = await client.get(
            f"/v1/stream/s?offset={tail}&live=long-poll&cursor={cursor}"
        )
    assert int(second.headers["stream-cursor"]) > int(cursor)


async def test_long_poll_with_data_answers_at_once(serve: Serve) -> None:
    """A long-poll behind the tail answers 200 with the data without waiting."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]", b"[2]")
        response = await client.get("/v1/stream/s?offset=-1&live=long-poll")
    assert response.status_code == 200
    assert response.json() == [1, 2]
    assert waits.started == 0


async def test_long_poll_on_closed_stream_at_tail_answers_at_once(serve: Serve) -> None:
    """At a closed stream's tail a long-poll answers 204 + Stream-Closed at once."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]")
        closed = await client.post("/v1/stream/s", headers={"stream-closed": "true"})
        tail = closed.headers["stream-next-offset"]
        response = await client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
    assert response.status_code == 204
    assert response.headers["stream-closed"] == "true"
    assert response.headers["stream-up-to-date"] == "true"
    assert waits.started == 0


async def test_long_poll_wakes_when_stream_closes(serve: Serve) -> None:
    """A waiting long-poll answers 204 + Stream-Closed as soon as the stream closes."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        poll = asyncio.create_task(
            client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
        )
        await wait_for(lambda: waits.active == 1, 5_000 * MS)
        await client.post("/v1/stream/s", headers={"stream-closed": "true"})
        response = await asyncio.wait_for(poll, 5_000 * MS)
    assert response.status_code == 204
    assert response.headers["stream-closed"] == "true"


async def test_long_poll_disconnect_frees_waiter(serve: Serve) -> None:
    """Clients hanging up on waiting long-polls leave no waiter on the server."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server, limits=httpx.Limits(max_connections=100)) as client:
        tail = await json_stream(client)
        polls = [
            asyncio.create_task(
                client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
            )
            for _ in range(40)
        ]
        await wait_for(lambda: waits.active == 40, 5_000 * MS)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        await wait_for(lambda: waits.active == 0, 5_000 * MS)
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 1_000 * MS


# SSE


async def test_sse_delivers_catch_up_then_live_data(serve: Serve) -> None:
    """SSE sends history, a control event, then each new append and its control."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        tail = await json_stream(client, b"[1,2]", b'{"a":3}')
        async with client.stream("GET", "/v1/stream/s?offset=-1&live=sse") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in response.headers["cache-control"]
            assert "content-length" not in response.headers
            async with contextlib.aclosing(sse_events(response)) as events:
                data, caught_up = await take(events, 2)
                await wait_for(lambda: waits.active == 1, 5_000 * MS)
                appended = await client.post(
                    "/v1/stream/s", headers=JSON, content=b'"live"'
                )
                live, after = await take(events, 2)
    assert data.event == "data" and json.loads(data.data) == [1, 2, {"a": 3}]
    first = control(caught_up)
    assert first["streamNextOffset"] == tail
    assert first["upToDate"] is True
    assert str(first["streamCursor"]).isdigit()
    assert live.event == "data" and json.loads(live.data) == ["live"]
    second = control(after)
    assert second["streamNextOffset"] == appended.headers["stream-next-offset"]
    assert second["upToDate"] is True


async def test_sse_from_now_starts_with_tail_control(serve: Serve) -> None:
    """SSE from ``offset=now`` sends no history, only a control event at the tail."""
    server, _ = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        async with client.stream("GET", "/v1/stream/s?offset=now&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                (first,) = await take(events, 1)
    assert control(first)["streamNextOffset"] == tail
    assert control(first)["upToDate"] is True


async def test_sse_on_closed_stream_ends_after_stream_closed(serve: Serve) -> None:
    """SSE on a closed stream sends its data, ``streamClosed``, then ends."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]", b"[2]")
        closed = await client.post("/v1/stream/s", headers={"stream-closed": "true"})
        async with client.stream("GET", "/v1/stream/s?offset=-1&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                received = await rest(events)
    assert [e.event for e in received] == ["data", "control"]
    assert json.loads(received[0].data) == [1, 2]
    final = control(received[1])
    assert final["streamClosed"] is True
    assert final["upToDate"] is True
    assert final["streamNextOffset"] == closed.headers["stream-next-offset"]
    assert "streamCursor" not in final
    assert waits.started == 0


async def test_sse_at_tail_of_closed_stream_sends_one_control(serve: Serve) -> None:
    """At the tail of a closed stream SSE sends one closing control event and ends."""
    server, _ = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]")
        closed = await client.post("/v1/stream/s", headers={"stream-closed": "true"})
        tail = closed.headers["stream-next-offset"]
        async with client.stream(
            "GET", f"/v1/stream/s?offset={tail}&live=sse"
        ) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                received = await rest(events)
    assert len(received) == 1
    assert control(received[0])["streamClosed"] is True


async def test_sse_ends_when_stream_closes_live(serve: Serve) -> None:
    """A live SSE reader gets the closing append's data, ``streamClosed``, the end."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]")
        async with client.stream("GET", "/v1/stream/s?offset=now&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                await take(events, 1)
                await wait_for(lambda: waits.active == 1, 5_000 * MS)
                await client.post(
                    "/v1/stream/s",
                    headers={**JSON, "stream-closed": "true"},
                    content=b'"last"',
                )
                received = await rest(events)
    assert [e.event for e in received] == ["data", "control"]
    assert json.loads(received[0].data) == ["last"]
    assert control(received[1])["streamClosed"] is True


async def test_sse_ends_cleanly_when_stream_is_deleted(serve: Serve) -> None:
    """An SSE reader waiting on a stream that is deleted sees the response end."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        await json_stream(client, b"[1]")
        async with client.stream("GET", "/v1/stream/s?offset=-1&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                await take(events, 2)
                await wait_for(lambda: waits.active == 1, 5_000 * MS)
                assert (await client.delete("/v1/stream/s")).status_code == 204
                await rest(events)  # a truncated body would raise RemoteProtocolError
        again = await client.get("/v1/stream/s?offset=-1&live=sse")
    assert again.status_code == 404


async def test_long_poll_on_deleted_stream_answers_404(serve: Serve) -> None:
    """A long-poll waiting on a stream that gets deleted is answered 404 at once."""
    server, waits = serve(long_poll_timeout=LONG)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        poll = asyncio.create_task(
            client.get(f"/v1/stream/s?offset={tail}&live=long-poll")
        )
        await wait_for(lambda: waits.active == 1, 5_000 * MS)
        assert (await client.delete("/v1/stream/s")).status_code == 204
        response = await asyncio.wait_for(poll, 5_000 * MS)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_sse_sends_one_control_per_data_event(serve: Serve) -> None:
    """When history spans several chunks, each data event gets its own control event."""
    server, _ = serve(long_poll_timeout=LONG, read_chunk_bytes=8)
    async with http(server) as client:
        await json_stream(client, b'"aaaaaaa"', b'"bbbbbbb"', b'"ccccccc"')
        async with client.stream("GET", "/v1/stream/s?offset=-1&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                received = await take(events, 6)
    assert [e.event for e in received] == ["data", "control"] * 3
    assert [json.loads(e.data) for e in received[::2]] == [
        ["aaaaaaa"],
        ["bbbbbbb"],
        ["ccccccc"],
    ]
    controls = [control(e) for e in received[1::2]]
    assert [c.get("upToDate", False) for c in controls] == [False, False, True]


async def test_sse_binary_data_is_base64(serve: Serve) -> None:
    """Binary streams are sent base64 in SSE, announced by a response header."""
    server, _ = serve(long_poll_timeout=LONG)
    payload = bytes(range(256)) + b"\r\n\n\r"
    async with http(server) as client:
        headers = {"content-type": "application/octet-stream"}
        await client.put("/v1/stream/b", headers=headers, content=payload)
        async with client.stream("GET", "/v1/stream/b?offset=-1&live=sse") as response:
            assert response.headers["stream-sse-data-encoding"] == "base64"
            async with contextlib.aclosing(sse_events(response)) as events:
                data, _ = await take(events, 2)
    assert base64.b64decode(data.data.replace("\n", "")) == payload


async def test_sse_payload_line_breaks_cannot_inject_events(serve: Serve) -> None:
    """CR, LF and CRLF inside a text payload stay inside one data event."""
    server, _ = serve(long_poll_timeout=LONG)
    evil = "a\r\nevent: control\r\ndata: {}\r\n\r\nb\rc\n\nd"
    async with http(server) as client:
        headers = {"content-type": "text/plain"}
        await client.put("/v1/stream/t", headers=headers, content=evil.encode())
        async with client.stream("GET", "/v1/stream/t?offset=-1&live=sse") as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                data, after = await take(events, 2)
    assert data.event == "data"
    assert data.data == "a\nevent: control\ndata: {}\n\nb\nc\n\nd"
    assert control(after)["upToDate"] is True


async def test_sse_idle_stream_gets_keepalive_controls(serve: Serve) -> None:
    """An idle SSE stream repeats its position in a control event as keep-alive."""
    server, _ = serve(long_poll_timeout=100 * MS)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        async with client.stream(
            "GET", f"/v1/stream/s?offset={tail}&live=sse"
        ) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                received = await take(events, 3)
    assert all(control(e)["streamNextOffset"] == tail for e in received)


async def test_sse_response_ends_after_reconnect_interval(serve: Serve) -> None:
    """SSE ends by itself after the reconnect interval, with a control event last."""
    server, _ = serve(long_poll_timeout=50 * MS, sse_reconnect_interval=300 * MS)
    async with http(server) as client:
        tail = await json_stream(client, b"[1]")
        async with client.stream(
            "GET", f"/v1/stream/s?offset={tail}&live=sse"
        ) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                received = await rest(events)
    assert received
    assert control(received[-1])["streamNextOffset"] == tail


async def test_sse_disconnect_frees_waiters(serve: Serve) -> None:
    """Dropping many SSE connections frees every server waiter; the server is fine."""
    server, waits = serve(long_poll_timeout=LONG)
    count = 50
    async with http(server, limits=httpx.Limits(max_connections=count + 5)) as client:
        await json_stream(client, b"[1]")
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(count):
                response = await stack.enter_async_context(
                    client.stream("GET", "/v1/stream/s?offset=-1&live=sse")
                )
                events = await stack.enter_async_context(
                    contextlib.aclosing(sse_events(response))
                )
                await take(events, 2)
            await wait_for(lambda: waits.active == count, 5_000 * MS)
        # Leaving the stack closed every connection mid-stream.
        await wait_for(lambda: waits.active == 0, 5_000 * MS)
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 1_000 * MS
        appended = await client.post("/v1/stream/s", headers=JSON, content=b"[2]")
        assert appended.status_code == 204
