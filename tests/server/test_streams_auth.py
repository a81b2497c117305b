"""Tokens and grants on ``/v1/stream``, and the stream namespace's isolation."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import jwt
import pytest

from tests.server.conftest import SECRET
from tests.server.harness import RawConnection, ServerThread, call_asgi
from threadline.auth import create_token
from threadline.server import Config, create_app
from threadline.server.app import Application
from threadline.storage import LogConfig, LogKey, LogStore, open_log_store

JSON = {"content-type": "application/json"}
EVERYTHING = {"read": ["**"], "write": ["**"]}


def bearer(
    *,
    streams: dict[str, list[str]] | None = None,
    secret: str = SECRET,
    **kwargs: object,
) -> dict[str, str]:
    """An Authorization header for a service token."""
    token = create_token(secret, sub="tester", streams=streams or EVERYTHING, **kwargs)  # type: ignore[arg-type]
    return {"authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def make_stream(
    client: httpx.AsyncClient, path: str = "/v1/stream/chat/a"
) -> str:
    """Create a JSON stream holding one record, with an all-powerful token."""
    admin = bearer()
    assert (await client.put(path, headers={**JSON, **admin})).status_code == 201
    assert (
        await client.post(path, headers={**JSON, **admin}, content=b"[1]")
    ).status_code == 204
    return path


async def tail(client: httpx.AsyncClient, path: str) -> str:
    return (await client.head(path, headers=bearer())).headers["stream-next-offset"]


# Authentication


async def test_request_without_token_is_unauthorized(
    auth_client: httpx.AsyncClient,
) -> None:
    """A request without a bearer token gets 401 ``missing_token`` and a challenge."""
    path = await make_stream(auth_client)
    response = await auth_client.get(path)
    assert_error(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_request_with_other_scheme_is_unauthorized(
    auth_client: httpx.AsyncClient,
) -> None:
    """A Basic credential is not a bearer token: 401 ``missing_token``."""
    path = await make_stream(auth_client)
    response = await auth_client.get(
        path, headers={"authorization": "Basic dXNlcjpwYXNz"}
    )
    assert_error(response, 401, "missing_token")


async def test_token_signed_with_other_secret_is_unauthorized(
    auth_client: httpx.AsyncClient,
) -> None:
    """A token signed with another secret gets 401 ``invalid_token``."""
    path = await make_stream(auth_client)
    response = await auth_client.get(path, headers=bearer(secret="not-the-secret-" * 3))
    assert_error(response, 401, "invalid_token")


async def test_token_with_altered_claims_is_unauthorized(
    auth_client: httpx.AsyncClient,
) -> None:
    """Editing a signed token's claims (here: widening its grants) breaks it: 401."""
    path = await make_stream(auth_client)
    token = create_token(SECRET, sub="tester", streams={"read": ["other"], "write": []})
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["streams"] = EVERYTHING
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await auth_client.get(
        path, headers={"authorization": f"Bearer {header}.{forged}.{signature}"}
    )
    assert_error(response, 401, "invalid_token")


async def test_unsigned_token_is_unauthorized(auth_client: httpx.AsyncClient) -> None:
    """A token with ``alg: none`` is refused: the algorithm is pinned to HS256."""
    path = await make_stream(auth_client)
    claims = {"sub": "tester", "exp": int(time.time()) + 600, "streams": EVERYTHING}
    token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    response = await auth_client.get(path, headers={"authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "Bearer"])
async def test_malformed_token_is_unauthorized(
    auth_client: httpx.AsyncClient, token: str
) -> None:
    """Garbage after ``Bearer`` gets 401 ``invalid_token``."""
    path = await make_stream(auth_client)
    response = await auth_client.get(path, headers={"authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")


async def test_expired_token_is_unauthorized(auth_client: httpx.AsyncClient) -> None:
    """A token expired longer ago than the leeway gets 401 ``token_expired``."""
    path = await make_stream(auth_client)
    headers = bearer(now=time.time() - 3600, ttl_seconds=60)
    response = await auth_client.get(path, headers=headers)
    assert_error(response, 401, "token_expired")


async def test_unauthorized_write_changes_nothing(
    auth_client: httpx.AsyncClient,
) -> None:
    """A POST refused for its token appends nothing."""
    path = await make_stream(auth_client)
    before = await tail(auth_client, path)
    response = await auth_client.post(
        path, headers={**JSON, **bearer(secret="wrong-secret-" * 3)}, content=b"[2]"
    )
    assert_error(response, 401, "invalid_token")
    assert await tail(auth_client, path) == before


# Authorization


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
async def test_token_without_write_grant_is_forbidden(
    auth_client: httpx.AsyncClient, method: str
) -> None:
    """A read-only token gets 403 ``forbidden`` on every write; nothing changes."""
    path = await make_stream(auth_client)
    before = await tail(auth_client, path)
    reader = bearer(streams={"read": ["chat/*"], "write": []})
    response = await auth_client.request(
        method, path, headers={**JSON, **reader}, content=b"[2]"
    )
    assert_error(response, 403, "forbidden")
    assert await tail(auth_client, path) == before


async def test_read_grant_allows_get_and_head(auth_client: httpx.AsyncClient) -> None:
    """A read-only glob that matches the stream allows GET and HEAD."""
    path = await make_stream(auth_client)
    reader = bearer(streams={"read": ["chat/*"], "write": []})
    get = await auth_client.get(path, headers=reader)
    head = await auth_client.head(path, headers=reader)
    assert get.status_code == 200 and get.json() == [1]
    assert head.status_code == 200


async def test_write_grant_alone_does_not_allow_reading(
    auth_client: httpx.AsyncClient,
) -> None:
    """Write and read are separate grants: a write-only token gets 403 on GET."""
    path = await make_stream(auth_client)
    writer = bearer(streams={"read": [], "write": ["chat/*"]})
    assert (
        await auth_client.post(path, headers={**JSON, **writer}, content=b"[2]")
    ).status_code == 204
    assert_error(await auth_client.get(path, headers=writer), 403, "forbidden")


async def test_single_star_glob_stays_within_a_segment(
    auth_client: httpx.AsyncClient,
) -> None:
    """``chat/*`` grants ``chat/a`` but not ``chat/a/b``."""
    path = await make_stream(auth_client, "/v1/stream/chat/a/b")
    reader = bearer(streams={"read": ["chat/*"], "write": []})
    assert_error(await auth_client.get(path, headers=reader), 403, "forbidden")


async def test_fork_needs_read_grant_on_source(auth_client: httpx.AsyncClient) -> None:
    """Forking a stream the token may not read gets 403 and creates nothing."""
    await make_stream(auth_client, "/v1/stream/secret/a")
    token = bearer(streams={"read": ["mine/*"], "write": ["mine/*"]})
    response = await auth_client.put(
        "/v1/stream/mine/copy",
        headers={**JSON, **token, "stream-forked-from": "/v1/stream/secret/a"},
    )
    assert_error(response, 403, "forbidden")
    assert (
        await auth_client.head("/v1/stream/mine/copy", headers=token)
    ).status_code == 404


async def test_streams_are_scoped_by_tenant(auth_client: httpx.AsyncClient) -> None:
    """A token of another tenant does not see a stream of the same name (404)."""
    path = await make_stream(auth_client)
    other = bearer(tenant="acme")
    assert_error(await auth_client.get(path, headers=other), 404, "not_found")
    assert (await auth_client.put(path, headers={**JSON, **other})).status_code == 201


# CORS and headers


async def test_preflight_needs_no_token(auth_client: httpx.AsyncClient) -> None:
    """An OPTIONS preflight is answered without a token, allowing protocol headers."""
    response = await auth_client.options(
        "/v1/stream/chat/a",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "if-none-match", "producer-id"):
        assert name in allowed


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (bearer(streams={"read": ["other/*"], "write": []}), 403)],
)
async def test_auth_errors_carry_security_and_cors_headers(
    auth_client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    """401 and 403 carry CORS, ``nosniff`` and Cross-Origin-Resource-Policy too."""
    path = await make_stream(auth_client)
    response = await auth_client.get(
        path, headers={"origin": "https://x.example", **headers}
    )
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] in (
        "cross-origin",
        "same-site",
        "same-origin",
    )
    assert response.headers["cache-control"] == "no-store"


async def test_authorized_reads_are_private_to_the_token(
    auth_client: httpx.AsyncClient,
) -> None:
    """With auth on, a GET is cacheable only privately and varies on Authorization."""
    path = await make_stream(auth_client)
    response = await auth_client.get(path, headers=bearer())
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("private")
    vary = [v.strip().lower() for v in response.headers["vary"].split(",")]
    assert "authorization" in vary


async def test_reads_without_auth_are_public(client: httpx.AsyncClient) -> None:
    """With auth off, a GET may be cached by shared caches."""
    await client.put("/v1/stream/s", headers=JSON)
    response = await client.get("/v1/stream/s")
    assert response.headers["cache-control"].startswith("public")


# Namespace disjointness

SESSION = LogKey("default", "session:abc")

ALIASES = [
    "/v1/stream/session:abc",
    "/v1/stream/session%3Aabc",
    "/v1/stream/session%3aabc",
    "/v1/stream/%73ession:abc",
    "/v1/stream/SESSION:abc",
    "/v1/stream/session:abc/",
    "/v1/stream//session:abc",
    "/v1/stream/./session:abc",
    "/v1/stream/../session:abc",
    "/v1/stream/..%2Fsession:abc",
    "/v1/stream/..%2fsession:abc",
    "/v1/stream/%2E%2E/session:abc",
    "/v1/stream/%2e%2e%2fsession:abc",
    "/v1/stream/x/../../session:abc",
    "/v1/stream/stream:../session:abc",
    "/v1/stream/default/session:abc",
    "/v1/stream/default%2Fsession:abc",
    "/v1/stream/abc",
    "/v1/stream/:abc",
    "/v1/stream/session",
    "/v1/stream/session:",
    "/v1/stream/session:abc%20",
    "/v1/stream/session:abc;",
    "/v1/stream/session:abc?x=1",
    "/v1/stream/session:abc#frag",
    "/v1/stream/session%253Aabc",
]


async def seed_session(store: LogStore) -> bytes:
    """Create a non-stream log holding one record; return what a direct read sees."""
    await store.create(
        SESSION, LogConfig("application/json"), records=[b'{"secret":1}']
    )
    return await snapshot(store)


async def snapshot(store: LogStore) -> bytes:
    result = await store.read(SESSION, None, max_bytes=1 << 20)
    info = result.info
    return repr((info.tail, info.closed, [r.data for r in result.records])).encode()


def decoded(target: str) -> str:
    """The path as an ASGI server hands it over: no query, escapes decoded."""
    from urllib.parse import unquote

    return unquote(target.split("?", 1)[0].split("#", 1)[0])


@pytest.mark.parametrize("target", ALIASES)
async def test_stream_paths_never_reach_session_logs(
    app: Application, client: httpx.AsyncClient, target: str
) -> None:
    """No stream path, however encoded, touches a log outside the stream namespace."""
    before = await seed_session(app.store)
    for path in {target, decoded(target)}:
        for method in ("GET", "HEAD", "DELETE"):
            result = await call_asgi(app, method, path)
            assert result.status in (400, 404), (method, path, result.status)
            assert b"secret" not in result.body
        append = await call_asgi(
            app,
            "POST",
            path,
            headers=[(b"content-type", b"application/json")],
            receive=_body(b'{"evil":1}'),
        )
        assert append.status in (400, 404), (path, append.status)
    assert await snapshot(app.store) == before


async def test_stream_named_like_session_is_a_separate_log(
    app: Application, client: httpx.AsyncClient
) -> None:
    """A stream named ``session:abc`` is a new stream; the session log is untouched."""
    before = await seed_session(app.store)
    response = await client.put("/v1/stream/session:abc", headers=JSON, content=b"[7]")
    assert response.status_code == 201
    assert (await client.get("/v1/stream/session:abc")).json() == [7]
    assert (await client.delete("/v1/stream/session:abc")).status_code == 204
    assert await snapshot(app.store) == before


async def test_stream_paths_over_http_never_reach_session_logs() -> None:
    """Over a real socket too, raw targets with dot segments and escapes all miss."""
    store = open_log_store("memory://")

    async def seed() -> bytes:
        await store.start()
        return await seed_session(store)

    before = await seed()
    server = ServerThread(
        create_app(Config(store="memory://", auth=False), store=store)
    )
    await asyncio.to_thread(server.start)
    try:
        for target in ALIASES:
            for method in ("GET", "HEAD", "DELETE"):
                connection = await RawConnection.open(server.url)
                try:
                    await connection.send(method, target)
                    response = await connection.response(head=method == "HEAD")
                finally:
                    await connection.close()
                assert response.status in (400, 404), (method, target, response.status)
    finally:
        await asyncio.to_thread(server.stop)
    await store.start()
    assert await snapshot(store) == before


def _body(data: bytes):
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive
