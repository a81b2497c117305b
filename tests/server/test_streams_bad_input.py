"""Bad input on ``/v1/stream``: a documented 4xx with a code, and nothing changes."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import httpx
import pytest

from tests.server.conftest import MAX_BODY
from tests.server.harness import MS, call_asgi
from threadline.protocol.offsets import Offset
from threadline.server.app import Application
from threadline.server.streams import DISCARD_LIMIT

JSON = {"content-type": "application/json"}
BYTES = {"content-type": "application/octet-stream"}
PRODUCER = {"producer-id": "p1", "producer-epoch": "0", "producer-seq": "0"}


async def state(client: httpx.AsyncClient, path: str) -> tuple[Any, ...]:
    """What a reader can observe of a stream: HEAD status and tail, and its body."""
    head = await client.head(path)
    if head.status_code != 200:
        return (head.status_code,)
    body = await client.get(path)
    return (
        head.status_code,
        head.headers["stream-next-offset"],
        head.headers.get("stream-closed"),
        body.content,
    )


async def json_stream(client: httpx.AsyncClient, path: str = "/v1/stream/s") -> str:
    """Create a JSON stream holding two records; return its path."""
    assert (await client.put(path, headers=JSON)).status_code == 201
    assert (await client.post(path, headers=JSON, content=b"[1,2]")).status_code == 204
    assert (
        await client.post(path, headers=JSON, content=b'{"a":3}')
    ).status_code == 204
    return path


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The response is ``status`` with the JSON error body carrying ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


# PUT headers


@pytest.mark.parametrize("ttl", ["+1", "01", "1.0", "1e3", "-1", "", "0x10", "ten"])
async def test_put_malformed_ttl_is_refused(
    client: httpx.AsyncClient, ttl: str
) -> None:
    """A Stream-TTL that is not a strict decimal gets 400 and creates nothing."""
    response = await client.put("/v1/stream/s", headers={**JSON, "stream-ttl": ttl})
    assert_error(response, 400, "invalid_expiry")
    assert await state(client, "/v1/stream/s") == (404,)


async def test_put_ttl_and_expires_at_together_are_refused(
    client: httpx.AsyncClient,
) -> None:
    """Sending both Stream-TTL and Stream-Expires-At gets 400 and creates nothing."""
    headers = {**JSON, "stream-ttl": "60", "stream-expires-at": "2099-01-01T00:00:00Z"}
    response = await client.put("/v1/stream/s", headers=headers)
    assert_error(response, 400, "invalid_expiry")
    assert await state(client, "/v1/stream/s") == (404,)


@pytest.mark.parametrize(
    "expires_at",
    [
        "tomorrow",
        "2099-01-01T00:00:00",
        "2099-13-01T00:00:00Z",
        "2099-01-01",
        "1700000000",
    ],
)
async def test_put_malformed_expires_at_is_refused(
    client: httpx.AsyncClient, expires_at: str
) -> None:
    """A Stream-Expires-At not RFC 3339 with a zone gets 400 and creates nothing."""
    response = await client.put(
        "/v1/stream/s", headers={**JSON, "stream-expires-at": expires_at}
    )
    assert_error(response, 400, "invalid_expiry")
    assert await state(client, "/v1/stream/s") == (404,)


async def test_put_bad_headers_leave_existing_stream_alone(
    client: httpx.AsyncClient,
) -> None:
    """A re-create with a malformed TTL is refused; the existing stream is untouched."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.put(
        path, headers={**JSON, "stream-ttl": "01"}, content=b"[9]"
    )
    assert_error(response, 400, "invalid_expiry")
    assert await state(client, path) == before


async def test_put_invalid_json_body_creates_nothing(client: httpx.AsyncClient) -> None:
    """A JSON stream created with an invalid body gets 400 and does not exist."""
    response = await client.put("/v1/stream/s", headers=JSON, content=b"[1,")
    assert_error(response, 400, "invalid_json")
    assert await state(client, "/v1/stream/s") == (404,)


# POST headers


@pytest.mark.parametrize(
    "headers",
    [
        {"producer-id": "p1"},
        {"producer-epoch": "0"},
        {"producer-seq": "0"},
        {"producer-id": "p1", "producer-epoch": "0"},
        {"producer-id": "p1", "producer-seq": "0"},
        {"producer-epoch": "0", "producer-seq": "0"},
    ],
)
async def test_post_partial_producer_headers_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Producer headers come all three or none: a partial set gets 400."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers={**JSON, **headers}, content=b"[4]")
    assert_error(response, 400, "producer_headers")
    assert await state(client, path) == before


@pytest.mark.parametrize(
    "epoch", ["1.5", "x", "-1", "+1", "01", "9007199254740992", ""]
)
async def test_post_non_integer_producer_epoch_is_refused(
    client: httpx.AsyncClient, epoch: str
) -> None:
    """A Producer-Epoch not a decimal in 0..2^53-1 gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    headers = {**JSON, **PRODUCER, "producer-epoch": epoch}
    response = await client.post(path, headers=headers, content=b"[4]")
    assert_error(response, 400, "producer_headers")
    assert await state(client, path) == before


@pytest.mark.parametrize("seq", ["1.0", "one", "-1", "00"])
async def test_post_non_integer_producer_seq_is_refused(
    client: httpx.AsyncClient, seq: str
) -> None:
    """A Producer-Seq that is not a decimal integer gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    headers = {**JSON, **PRODUCER, "producer-seq": seq}
    response = await client.post(path, headers=headers, content=b"[4]")
    assert_error(response, 400, "producer_headers")
    assert await state(client, path) == before


@pytest.mark.parametrize("producer_id", ["", "   "])
async def test_post_empty_producer_id_is_refused(
    client: httpx.AsyncClient, producer_id: str
) -> None:
    """An empty Producer-Id gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    headers = {**JSON, **PRODUCER, "producer-id": producer_id}
    response = await client.post(path, headers=headers, content=b"[4]")
    assert_error(response, 400, "producer_headers")
    assert await state(client, path) == before


async def test_post_body_without_content_type_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """An append with a body but no Content-Type gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, content=b"[4]")
    assert_error(response, 400, "content_type_required")
    assert await state(client, path) == before


# POST bodies


@pytest.mark.parametrize(
    "body", [b"[1,", b"{", b"nope", b"[1] [2]", b"\xff\xfe", b"   "]
)
async def test_post_invalid_json_is_refused(
    client: httpx.AsyncClient, body: bytes
) -> None:
    """A JSON append whose body is not one JSON value gets 400, appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers=JSON, content=body)
    assert_error(response, 400, "invalid_json")
    assert await state(client, path) == before


@pytest.mark.parametrize(
    "body", [b"NaN", b"[NaN]", b"Infinity", b"[1, -Infinity]", b'{"a": NaN}']
)
async def test_post_non_standard_json_constants_are_refused(
    client: httpx.AsyncClient, body: bytes
) -> None:
    """NaN and Infinity are not JSON (RFC 8259): refused, so reads stay parseable."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers=JSON, content=body)
    assert_error(response, 400, "invalid_json")
    assert await state(client, path) == before


async def test_post_big_integer_is_accepted_verbatim(client: httpx.AsyncClient) -> None:
    """Integers beyond 64 bits are valid JSON: stored and served back verbatim."""
    path = await json_stream(client)
    big = b"123456789012345678901234567890"
    assert (await client.post(path, headers=JSON, content=big)).status_code == 204
    assert (await client.get(path)).content.endswith(b"," + big + b"]")


@pytest.mark.parametrize("body", [b"[]", b" [ ] ", b"[\n]"])
async def test_post_empty_json_array_is_refused(
    client: httpx.AsyncClient, body: bytes
) -> None:
    """An append of an empty JSON array gets 400 ``empty_array`` and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers=JSON, content=body)
    assert_error(response, 400, "empty_array")
    assert await state(client, path) == before


async def test_post_empty_body_is_refused(client: httpx.AsyncClient) -> None:
    """An append without body (nor Stream-Closed) gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers=JSON, content=b"")
    assert_error(response, 400, "empty_body")
    assert await state(client, path) == before


async def test_post_closed_header_other_than_true_does_not_close(
    client: httpx.AsyncClient,
) -> None:
    """An empty append with ``Stream-Closed: yes`` gets 400; it is not a close."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.post(path, headers={**JSON, "stream-closed": "yes"})
    assert_error(response, 400, "empty_body")
    assert await state(client, path) == before


# Offsets


@pytest.mark.parametrize(
    "offset",
    [
        "abc",
        "1",
        "-2",
        "0000000000000001_000000000000000",
        "0000000000000001-0000000000000001",
        "0000000000000001_00000000000000001",
        "NOW",
    ],
)
async def test_get_malformed_offset_is_refused(
    client: httpx.AsyncClient, offset: str
) -> None:
    """An offset neither well-formed nor a sentinel gets 400 ``invalid_offset``."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.get(f"{path}?offset={offset}")
    assert_error(response, 400, "invalid_offset")
    assert await state(client, path) == before


@pytest.mark.parametrize("offset", ["-1,-1", "-1%2C-1", "now%20", "-1+", "%20-1"])
async def test_get_offset_with_comma_or_space_is_refused(
    client: httpx.AsyncClient, offset: str
) -> None:
    """An offset containing a comma or a space gets 400 ``invalid_offset``."""
    path = await json_stream(client)
    response = await client.get(f"{path}?offset={offset}")
    assert_error(response, 400, "invalid_offset")


async def test_get_empty_offset_is_refused(client: httpx.AsyncClient) -> None:
    """``offset=`` (present but empty) gets 400 ``invalid_offset``, not the start."""
    path = await json_stream(client)
    response = await client.get(f"{path}?offset=")
    assert_error(response, 400, "invalid_offset")


async def test_get_repeated_offset_is_refused(client: httpx.AsyncClient) -> None:
    """``offset`` given twice gets 400, even when both values agree."""
    path = await json_stream(client)
    response = await client.get(f"{path}?offset=-1&offset=-1")
    assert_error(response, 400, "invalid_offset")


async def test_get_offset_beyond_tail_is_refused(client: httpx.AsyncClient) -> None:
    """An offset of this generation past the tail gets 400 ``invalid_offset``."""
    path = await json_stream(client)
    tail = Offset.parse((await client.head(path)).headers["stream-next-offset"])
    beyond = Offset(tail.generation, tail.position + 1)
    response = await client.get(f"{path}?offset={beyond}")
    assert_error(response, 400, "invalid_offset")


async def test_get_offset_of_deleted_generation_is_gone(
    client: httpx.AsyncClient,
) -> None:
    """An offset from before a delete and re-create gets 410, new earliest and tail."""
    path = await json_stream(client)
    old = (await client.head(path)).headers["stream-next-offset"]
    assert (await client.delete(path)).status_code == 204
    assert (await client.put(path, headers=JSON)).status_code == 201
    appended = await client.post(path, headers=JSON, content=b'"new"')
    tail = appended.headers["stream-next-offset"]
    before = await state(client, path)

    response = await client.get(f"{path}?offset={old}")

    assert_error(response, 410, "offset_gone")
    assert response.headers["stream-next-offset"] == tail
    earliest = response.headers["stream-earliest-offset"]
    from_earliest = await client.get(f"{path}?offset={earliest}")
    assert from_earliest.json() == ["new"]
    assert await state(client, path) == before


@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_live_read_offset_of_deleted_generation_is_gone(
    client: httpx.AsyncClient, live: str
) -> None:
    """Live reads refuse an offset of a deleted generation with 410, before waiting."""
    path = await json_stream(client)
    old = (await client.head(path)).headers["stream-next-offset"]
    await client.delete(path)
    await client.put(path, headers=JSON)
    response = await client.get(f"{path}?offset={old}&live={live}")
    assert_error(response, 410, "offset_gone")


@pytest.mark.parametrize("live", ["longpoll", "SSE", "true", "", "websocket"])
async def test_get_unknown_live_mode_is_refused(
    client: httpx.AsyncClient, live: str
) -> None:
    """An unknown ``live`` mode gets 400 ``invalid_live``."""
    path = await json_stream(client)
    response = await client.get(f"{path}?offset=-1&live={live}")
    assert_error(response, 400, "invalid_live")


@pytest.mark.parametrize("live", ["long-poll", "sse"])
async def test_live_read_without_offset_is_refused(
    client: httpx.AsyncClient, live: str
) -> None:
    """A live read must name its offset; without one it gets 400 ``offset_required``."""
    path = await json_stream(client)
    response = await client.get(f"{path}?live={live}")
    assert_error(response, 400, "offset_required")


async def test_get_unknown_query_parameter_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    """Unknown query parameters are ignored, as the protocol requires."""
    path = await json_stream(client)
    response = await client.get(f"{path}?offset=-1&foo=bar&foo=baz")
    assert response.status_code == 200
    assert response.json() == [1, 2, {"a": 3}]


# Oversized bodies


async def test_post_body_at_limit_is_accepted(client: httpx.AsyncClient) -> None:
    """A body of exactly the configured maximum is accepted (the limit is inclusive)."""
    path = "/v1/stream/b"
    await client.put(path, headers=BYTES)
    response = await client.post(path, headers=BYTES, content=b"x" * MAX_BODY)
    assert response.status_code == 204


async def test_post_declared_length_over_limit_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """A Content-Length over the limit gets 413 ``body_too_large``, appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    body = b"[" + b"1," * MAX_BODY + b"1]"
    response = await client.post(path, headers=JSON, content=body)
    assert_error(response, 413, "body_too_large")
    assert response.headers["connection"] == "close"
    assert await state(client, path) == before


async def test_put_declared_length_over_limit_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    """A create whose body is over the limit gets 413 and creates nothing."""
    response = await client.put(
        "/v1/stream/b", headers=BYTES, content=b"x" * (MAX_BODY + 1)
    )
    assert_error(response, 413, "body_too_large")
    assert await state(client, "/v1/stream/b") == (404,)


class CountingBody:
    """An ASGI ``receive`` of ``chunks`` chunks (endless if ``None``), counting reads.

    ``at_response`` records how many chunks had been read when the response started.
    """

    def __init__(self, chunk: bytes, chunks: int | None) -> None:
        self.chunk = chunk
        self.chunks = chunks
        self.taken = 0
        self.at_response: int | None = None

    async def __call__(self) -> dict[str, Any]:
        if self.chunks is not None and self.taken >= self.chunks:
            return {"type": "http.disconnect"}
        self.taken += 1
        more = self.chunks is None or self.taken < self.chunks
        return {"type": "http.request", "body": self.chunk, "more_body": more}

    def observe(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.at_response = self.taken


async def test_post_declared_length_over_limit_is_refused_before_reading(
    app: Application, client: httpx.AsyncClient
) -> None:
    """With a Content-Length over the limit the 413 goes out before any body is read."""
    await client.put("/v1/stream/b", headers=BYTES)
    body = CountingBody(b"x" * 1024, 100)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(100 * 1024).encode()),
    ]
    result = await call_asgi(
        app, "POST", "/v1/stream/b", headers=headers, receive=body, observe=body.observe
    )
    assert result.status == 413
    assert body.at_response == 0


async def test_post_chunked_body_over_limit_is_refused_once_past_limit(
    app: Application, client: httpx.AsyncClient
) -> None:
    """A chunked body gets 413 as soon as it passes the limit, and appends nothing."""
    path = "/v1/stream/b"
    await client.put(path, headers=BYTES)
    await client.post(path, headers=BYTES, content=b"first")
    before = await state(client, path)
    body = CountingBody(b"x" * 1024, 100)
    headers = [(b"content-type", b"application/octet-stream")]

    result = await call_asgi(
        app, "POST", path, headers=headers, receive=body, observe=body.observe
    )

    assert result.status == 413
    assert result.headers["connection"] == "close"
    assert json.loads(result.body)["error"]["code"] == "body_too_large"
    assert body.at_response == MAX_BODY // 1024 + 1
    assert await state(client, path) == before


async def test_put_chunked_body_over_limit_creates_nothing(
    app: Application, client: httpx.AsyncClient
) -> None:
    """A create with a chunked body past the limit gets 413 and creates nothing."""
    body = CountingBody(b"x" * 1024, 100)
    headers = [(b"content-type", b"application/octet-stream")]
    result = await call_asgi(
        app, "PUT", "/v1/stream/b", headers=headers, receive=body, observe=body.observe
    )
    assert result.status == 413
    assert body.at_response == MAX_BODY // 1024 + 1
    assert await state(client, "/v1/stream/b") == (404,)


async def test_refused_body_is_not_buffered(
    app: Application, client: httpx.AsyncClient
) -> None:
    """The rest of a refused body is dropped as it arrives: memory stays flat."""
    await client.put("/v1/stream/b", headers=BYTES)
    chunk = b"x" * 65536
    body = CountingBody(chunk, 512)
    headers = [(b"content-type", b"application/octet-stream")]
    tracemalloc.start()
    try:
        result = await call_asgi(
            app, "POST", "/v1/stream/b", headers=headers, receive=body
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == 413
    assert body.taken == 512
    assert peak < 2 * 1024 * 1024


async def test_refused_body_is_discarded_only_up_to_a_bound(
    app: Application, client: httpx.AsyncClient
) -> None:
    """A client that never stops sending a refused body is cut off, bounded."""
    await client.put("/v1/stream/b", headers=BYTES)
    chunk = b"x" * 65536
    body = CountingBody(chunk, None)
    headers = [(b"content-type", b"application/octet-stream")]
    result = await asyncio.wait_for(
        call_asgi(app, "POST", "/v1/stream/b", headers=headers, receive=body),
        10_000 * MS,
    )
    assert result.status == 413
    assert body.taken * len(chunk) <= DISCARD_LIMIT + MAX_BODY + 2 * len(chunk)


# Names and methods


@pytest.mark.parametrize(
    "path", ["/v1/stream/a%00b", "/v1/stream/a\x1fb", "/v1/stream/"]
)
async def test_stream_name_with_control_characters_is_refused(
    app: Application, client: httpx.AsyncClient, path: str
) -> None:
    """Empty names and names with control characters get 400 ``invalid_name``."""
    decoded = path.replace("%00", "\x00")
    result = await call_asgi(app, "PUT", decoded)
    assert result.status == 400
    assert b'"invalid_name"' in result.body


async def test_stream_name_too_long_is_refused(client: httpx.AsyncClient) -> None:
    """A stream name over 1024 characters gets 400 ``invalid_name``."""
    response = await client.put("/v1/stream/" + "n" * 1025, headers=JSON)
    assert_error(response, 400, "invalid_name")


async def test_unsupported_method_is_refused(client: httpx.AsyncClient) -> None:
    """PATCH gets 405 with an Allow header and changes nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    response = await client.request("PATCH", path, headers=JSON, content=b"[5]")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    assert await state(client, path) == before


async def test_malformed_content_length_is_refused(
    app: Application, client: httpx.AsyncClient
) -> None:
    """A non-numeric Content-Length gets 400 and appends nothing."""
    path = await json_stream(client)
    before = await state(client, path)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"lots")]
    result = await call_asgi(app, "POST", path, headers=headers)
    assert result.status == 400
    assert await state(client, path) == before
