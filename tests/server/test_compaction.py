"""Compact reads: SessionManager on memory and SQLite, HTTP in-process, SSE live."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import SECRET
from tests.server.drafts import delta, end, start
from tests.server.harness import ServerThread, WaitCounter, asgi_client
from tests.utils import MS
from threadline.auth import create_token
from threadline.exceptions import OffsetGone, StorageError
from threadline.protocol.actors import Actor
from threadline.protocol.events import Event, EventDraft
from threadline.protocol.offsets import Offset
from threadline.protocol.sse import SSEDecoder, SSEEvent
from threadline.server import Config, create_app
from threadline.server.compaction import CompactRead
from threadline.server.session_writes import MESSAGES
from threadline.server.sessions import SessionManager, SessionNotFound
from threadline.storage.base import LogStore

CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-1")
AI = Actor("bot", "ai", "Assistant")
TENANT = "acme"
SID = "order-1"

Opener = Callable[[], Awaitable[LogStore]]


async def manager(opener: Opener) -> SessionManager:
    sessions = SessionManager(await opener())
    await sessions.create(TENANT, SID, customer=CUSTOMER.id)
    return sessions


def streamed(mid: str, *texts: str) -> list[EventDraft]:
    return [start(mid), *(delta(mid, i, t) for i, t in enumerate(texts)), end(mid)]


def note(event_id: str, text: str) -> EventDraft:
    return EventDraft("note", event_id, {"text": text})


def envelopes(read: CompactRead) -> list[dict[str, Any]]:
    return [orjson.loads(record.data) for record in read.records]


async def publish(sessions: SessionManager, *drafts: EventDraft) -> Offset:
    published = await sessions.publish(TENANT, SID, AI, list(drafts))
    return published[-1].offset


def count_reads(store: LogStore) -> list[int]:
    """Wrap ``store.read`` on this instance to count the records it returns."""
    returned: list[int] = []
    inner = store.read

    async def read(*args: Any, **kwargs: Any) -> Any:
        result = await inner(*args, **kwargs)
        returned.append(len(result.records))
        return result

    store.read = read  # type: ignore[method-assign]
    return returned


# SessionManager


async def test_completed_messages_come_from_the_index(opener: Opener) -> None:
    """A completed message is one compacted `message` with the index's parts."""
    sessions = await manager(opener)
    await publish(sessions, *streamed("m1", "Your ", "order ", "is split."))
    [(key, raw)] = await sessions.store.index.scan(TENANT, MESSAGES, f"{SID}\n")
    folded = orjson.loads(raw)
    folded["parts"] = [{"type": "text", "text": "from the index"}]

    def rewrite(txn: Any) -> None:
        txn.put(MESSAGES, key, orjson.dumps(folded))

    await sessions.store.transact(TENANT, rewrite)
    [message] = envelopes(
        await sessions.read_compact(TENANT, SID, staff=True, after=None)
    )
    assert message["type"] == "message" and message["compacted"] is True
    assert message["data"]["parts"] == [{"type": "text", "text": "from the index"}]


async def test_completed_messages_are_read_without_their_deltas(
    opener: Opener,
) -> None:
    """100 messages of 100 deltas from -1: about 2 stored events read per message."""
    sessions = await manager(opener)
    for m in range(100):
        await publish(sessions, *streamed(f"m{m}", *(["token "] * 100)))
    returned = count_reads(sessions.store)
    read = await sessions.read_compact(TENANT, SID, staff=False, after=None)
    assert len(read.records) == 100 and read.up_to_date
    assert sum(returned) < 300  # of 10,200 stored events
    first = envelopes(read)[0]
    assert first["data"]["parts"] == [{"type": "text", "text": "token " * 100}]
    Event.parse(first)


async def test_interleaved_messages_each_come_once(opener: Opener) -> None:
    """Two messages streamed at once: the ended one at its end, the open one after."""
    sessions = await manager(opener)
    await publish(sessions, start("m1"), start("m2"), delta("m1", 0, "Checking"))
    await publish(sessions, delta("m2", 0, "Done"), end("m2"))
    latest = await publish(sessions, delta("m1", 1, " your order"))
    read = await sessions.read_compact(TENANT, SID, staff=True, after=None)
    message, opened = envelopes(read)
    assert message["type"] == "message" and message["data"]["message_id"] == "m2"
    assert opened["type"] == "message.start" and opened["offset"] == str(latest)
    assert opened["data"]["parts"] == [{"type": "text", "text": "Checking your order"}]
    assert [r.resumable for r in read.records] == [False, True]
    assert read.next_offset == latest


async def test_mid_message_resume_gets_one_coalesced_delta(opener: Opener) -> None:
    """Resuming inside a streamed message gets what it gained since, then its end."""
    sessions = await manager(opener)
    seen = await publish(sessions, start("m1"), delta("m1", 0, "Your "))
    await publish(sessions, delta("m1", 1, "order "), delta("m1", 2, "ships."))
    await publish(sessions, end("m1"))
    read = await sessions.read_compact(TENANT, SID, staff=True, after=seen)
    coalesced, ended = envelopes(read)
    assert coalesced["type"] == "message.delta" and coalesced["compacted"]
    assert coalesced["data"]["parts"] == [
        {"part_index": 0, "part_type": "text", "text": "order ships."}
    ]
    assert coalesced["data"]["seq"] == 2
    assert ended["type"] == "message.end" and "compacted" not in ended


async def test_customer_compact_view_never_includes_staff_messages(
    opener: Opener,
) -> None:
    """A staff message and a note are absent from the customer's compact view."""
    sessions = await manager(opener)
    await publish(sessions, start("s1", "staff"), note("n1", "refund limit"))
    await publish(sessions, delta("s1", 0, "whisper"), start("m1"))
    await publish(sessions, delta("m1", 0, "Hello"), end("s1"))
    customer = await sessions.read_compact(TENANT, SID, staff=False, after=None)
    raw = await sessions.read(TENANT, SID, staff=False, after=None)
    [opened] = envelopes(customer)
    assert opened["data"]["message_id"] == "m1"
    assert opened["offset"] == str(raw.records[-1].offset)
    assert opened["data"]["start_offset"] == str(raw.records[0].offset)
    assert b"whisper" not in customer.records[0].data
    staff = await sessions.read_compact(TENANT, SID, staff=True, after=None)
    assert [e["type"] for e in envelopes(staff)] == ["note", "message.start", "message"]


async def test_compact_view_survives_a_restart(opener: Opener) -> None:
    """Folded messages and open parts are read from the store after a restart."""
    sessions = await manager(opener)
    await publish(sessions, *streamed("m1", "a", "b"), start("m2"), delta("m2", 0, "c"))
    restarted = SessionManager(await opener())
    read = await restarted.read_compact(TENANT, SID, staff=True, after=None)
    assert [e["type"] for e in envelopes(read)] == ["message", "message.start"]
    assert envelopes(read)[1]["data"]["parts"] == [{"type": "text", "text": "c"}]


async def test_folded_message_without_event_count_is_read_in_full(
    opener: Opener,
) -> None:
    """A folded message stored without `deltas` is still compacted correctly."""
    sessions = await manager(opener)
    await publish(sessions, *streamed("m1", "x", "y"))
    [(key, raw)] = await sessions.store.index.scan(TENANT, MESSAGES, f"{SID}\n")
    folded = orjson.loads(raw)
    del folded["deltas"]

    def rewrite(txn: Any) -> None:
        txn.put(MESSAGES, key, orjson.dumps(folded))

    await sessions.store.transact(TENANT, rewrite)
    returned = count_reads(sessions.store)
    [message] = envelopes(
        await sessions.read_compact(TENANT, SID, staff=True, after=None)
    )
    assert message["data"]["parts"] == [{"type": "text", "text": "xy"}]
    assert sum(returned) >= 4  # every event of the message was read


async def test_compact_pages_end_at_resumable_events(opener: Opener) -> None:
    """A small page budget cuts the view only where a reader may resume."""
    sessions = await manager(opener)
    await publish(sessions, start("m1"), note("n1", "a"), note("n2", "b"))
    await publish(sessions, delta("m1", 0, "x"), end("m1"), note("n3", "c"))
    pages: list[list[dict[str, Any]]] = []
    after = None
    while True:
        read = await sessions.read_compact(
            TENANT, SID, staff=True, after=after, max_bytes=1
        )
        pages.append(envelopes(read))
        after = read.next_offset
        if read.up_to_date:
            break
    kinds = [[e["type"] for e in page] for page in pages]
    assert kinds == [["note", "note", "message"], ["note"]]


async def test_compact_read_at_the_tail_is_empty(opener: Opener) -> None:
    """Nothing after the offset: no events, the same next offset, up to date."""
    sessions = await manager(opener)
    empty = await sessions.read_compact(TENANT, SID, staff=True, after=None)
    assert empty.records == [] and empty.up_to_date
    assert (
        empty.next_offset
        == (await sessions.read(TENANT, SID, staff=True, after=None)).next_offset
    )
    tail = await publish(sessions, note("n1", "a"))
    read = await sessions.read_compact(TENANT, SID, staff=True, after=tail)
    assert (read.records, read.next_offset, read.up_to_date) == ([], tail, True)


async def test_compact_read_checks_session_and_offset(opener: Opener) -> None:
    """An unknown session is not found; another generation's offset is gone."""
    sessions = await manager(opener)
    with pytest.raises(SessionNotFound):
        await sessions.read_compact(TENANT, "nope", staff=True, after=None)
    with pytest.raises(OffsetGone):
        await sessions.read_compact(TENANT, SID, staff=True, after=Offset(1, 0))


def lag_reads(store: LogStore, times: int) -> list[int]:
    """Make ``store.read`` report a tail one event short, ``times`` times.

    As SQLite may for a moment: its index shows a commit before its log cache.
    """
    left = [times]
    inner = store.read

    async def read(key: Any, after: Any, *, max_bytes: int) -> Any:
        result = await inner(key, after, max_bytes=max_bytes)
        if left[0] == 0:
            return result
        left[0] -= 1
        tail = result.info.tail
        info = replace(result.info, tail=Offset(tail.generation, tail.position - 1))
        return replace(result, info=info)

    store.read = read  # type: ignore[method-assign]
    return left


async def test_compact_read_waits_for_a_log_behind_its_state(opener: Opener) -> None:
    """A log a commit behind the index is waited for, never read short."""
    sessions = await manager(opener)
    await publish(sessions, start("m1"), delta("m1", 0, "a"))
    latest = await publish(sessions, delta("m1", 1, "b"))
    left = lag_reads(sessions.store, 1)
    [opened] = envelopes(
        await sessions.read_compact(TENANT, SID, staff=True, after=None)
    )
    assert left == [0]
    assert opened["offset"] == str(latest)
    assert opened["data"]["parts"] == [{"type": "text", "text": "ab"}]


async def test_compact_read_fails_if_the_log_never_catches_up(opener: Opener) -> None:
    """A log that stays behind its state is a storage error, not a short view."""
    sessions = await manager(opener)
    await publish(sessions, note("n1", "a"))
    lag_reads(sessions.store, 100)
    with pytest.raises(StorageError, match="lags behind"):
        await sessions.read_compact(TENANT, SID, staff=True, after=None)


# HTTP, in-process


def headers(sub: str, role: str) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=["**"])
    return {"authorization": f"Bearer {token}"}


CUSTOMER_HEADERS = headers("cust_42", "customer")
AI_HEADERS = headers("bot", "ai")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        created = await client.post(
            "/v1/sessions", json={"id": SID}, headers=CUSTOMER_HEADERS
        )
        assert created.status_code == 201, created.text
        yield client


async def post(client: httpx.AsyncClient, *drafts: EventDraft) -> str:
    body = {"events": [draft.to_json() for draft in drafts]}
    response = await client.post(
        f"/v1/sessions/{SID}/events", json=body, headers=AI_HEADERS
    )
    assert response.status_code == 200, response.text
    offset: str = response.json()["offset"]
    return offset


async def test_http_compact_view_folds_messages(client: httpx.AsyncClient) -> None:
    """view=compact answers the compact view, with its own ETag."""
    tail = await post(client, *streamed("m1", "Hi ", "there"))
    url = f"/v1/sessions/{SID}/events?offset=-1&view=compact"
    compact = await client.get(url, headers=AI_HEADERS)
    assert compact.status_code == 200
    [message] = compact.json()
    assert message["type"] == "message" and message["compacted"] is True
    assert message["data"]["parts"] == [{"type": "text", "text": "Hi there"}]
    assert compact.headers["stream-next-offset"] == tail
    assert compact.headers["stream-up-to-date"] == "true"
    raw = await client.get(f"/v1/sessions/{SID}/events?offset=-1", headers=AI_HEADERS)
    assert len(raw.json()) == 4 and raw.headers["etag"] != compact.headers["etag"]
    again = await client.get(
        url, headers={**AI_HEADERS, "if-none-match": compact.headers["etag"]}
    )
    assert again.status_code == 304


async def test_http_compact_view_hides_staff_messages(
    client: httpx.AsyncClient,
) -> None:
    """A customer's compact read has no staff message; staff see it."""
    await post(client, start("s1", "staff"), delta("s1", 0, "whisper"), end("s1"))
    await post(client, *streamed("m1", "Hello"))
    url = f"/v1/sessions/{SID}/events?offset=-1&view=compact"
    customer = (await client.get(url, headers=CUSTOMER_HEADERS)).json()
    assert [e["data"]["message_id"] for e in customer] == ["m1"]
    assert customer[0]["offset"].endswith("_0000000000000003")
    staff = (await client.get(url, headers=AI_HEADERS)).json()
    assert [e["data"]["message_id"] for e in staff] == ["s1", "m1"]


async def test_http_unknown_view_is_invalid_view(client: httpx.AsyncClient) -> None:
    """A view other than raw or compact is 400 invalid_view."""
    response = await client.get(
        f"/v1/sessions/{SID}/events?view=folded", headers=CUSTOMER_HEADERS
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_view"


async def test_http_compact_long_poll_answers_new_events_compacted() -> None:
    """A compact long-poll at the tail answers what arrives, folded from there."""
    app = create_app(
        Config(store="memory://", auth=True, secret=SECRET, long_poll_timeout=0.05)
    )
    async with asgi_client(app) as client:
        await client.post("/v1/sessions", json={"id": SID}, headers=CUSTOMER_HEADERS)
        tail = await post(client, start("m1"), delta("m1", 0, "a"))
        url = f"/v1/sessions/{SID}/events?offset={tail}&view=compact&live=long-poll"
        idle = await client.get(url, headers=AI_HEADERS)
        assert idle.status_code == 200 and idle.json() == []
        assert idle.headers["stream-next-offset"] == tail
        await post(client, delta("m1", 1, "b"), delta("m1", 2, "c"))
        [coalesced] = (await client.get(url, headers=AI_HEADERS)).json()
        assert coalesced["data"]["parts"][0]["text"] == "bc"


# SSE, on a real server


Serve = Callable[..., tuple[ServerThread, WaitCounter]]


async def sse_events(response: httpx.Response) -> AsyncGenerator[SSEEvent, None]:
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.receive_data(chunk):
            yield event


async def test_sse_compact_catch_up_then_live_raw(serve: Serve) -> None:
    """The catch-up is compacted (ids only where resumable), then events go raw."""
    server, _ = serve(auth=True, secret=SECRET)
    async with httpx.AsyncClient(base_url=server.url, timeout=5_000 * MS) as client:
        await client.post("/v1/sessions", json={"id": SID}, headers=CUSTOMER_HEADERS)
        await post(client, start("m1"), delta("m1", 0, "a"))
        inner = await post(client, start("m2", role="system"))
        tail = await post(client, delta("m1", 1, "b"), end("m1"))
        url = f"/v1/sessions/{SID}/events?offset=-1&live=sse&view=compact"
        received: list[tuple[str | None, dict[str, Any]]] = []
        async with client.stream("GET", url, headers=AI_HEADERS) as response:
            async with contextlib.aclosing(sse_events(response)) as events:
                async for event in events:
                    received.append((event.id, json.loads(event.data)))
                    if len(received) == 2:
                        live = await post(client, delta("m2", 0, "c"))
                    if len(received) == 3:
                        break
    (first_id, opened), (second_id, message), (third_id, raw) = received
    # m2's start (inside m1) is not resumable: the last event id stays unset.
    assert opened["type"] == "message.start" and opened["offset"] == inner
    assert first_id is None
    assert message["type"] == "message" and second_id == tail
    assert raw["type"] == "message.delta" and "compacted" not in raw
    assert third_id == live
