"""JWKS files and URLs: reading, fetching, caching and refreshing on rotation.

The URL tests serve a JWKS from ``http.server`` on 127.0.0.1 (port 0) in a
thread, and move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import SECRET, SigningKey, jwks
from tests.server.harness import asgi_client
from tests.utils import MS
from threadline.auth import AuthError, Keyset, create_token, verify_token
from threadline.auth.jwks import (
    MAX_JWKS_BYTES,
    MIN_REFRESH_INTERVAL,
    JWKSClient,
    read_jwks_file,
)
from threadline.server import Config, create_app

JSON = {"content-type": "application/json"}


def claims() -> dict[str, Any]:
    return {"sub": "svc", "role": "service", "exp": int(time.time()) + 600}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class JWKSServer:
    """What the local JWKS endpoint serves, and how often it was asked."""

    url: str = ""
    body: bytes = b""
    status: int = 200
    location: str | None = None
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, *keys: SigningKey) -> None:
        self.body = json.dumps(jwks(*keys)).encode()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A JWKS endpoint on 127.0.0.1, port 0, served from a thread."""
    state = JWKSServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            self.send_response(state.status)
            if state.location:
                self.send_header("location", state.location)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(10 * MS,), daemon=True)
    thread.start()
    try:
        state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Files


def test_jwks_file_keys_verify_tokens(tmp_path: Path, ed_key: SigningKey) -> None:
    """Keys read from a JWKS file verify tokens signed by their private halves."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(ed_key)))
    keyset = Keyset(keys=read_jwks_file(path))
    assert verify_token(ed_key.sign(claims()), keyset).sub == "svc"


def test_missing_jwks_file_is_a_value_error(tmp_path: Path) -> None:
    """An unreadable JWKS file raises ``ValueError`` naming it."""
    with pytest.raises(ValueError, match="nope.json"):
        read_jwks_file(tmp_path / "nope.json")


def test_jwks_file_without_usable_key_is_a_value_error(tmp_path: Path) -> None:
    """A JWKS file whose keys are all skipped is refused rather than accepted empty."""
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": []}')
    with pytest.raises(ValueError, match="no usable"):
        read_jwks_file(path)


def test_malformed_jwks_file_is_a_value_error(tmp_path: Path) -> None:
    """A JWKS file that is not JSON raises ``ValueError`` naming the file."""
    path = tmp_path / "jwks.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="jwks.json"):
        read_jwks_file(path)


# URL


async def test_first_kid_token_fetches_the_keys(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """Without ``start()``, the first token with a kid fetches the JWKS and verifies."""
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url)
    try:
        assert (await client.verify(ed_key.sign(claims()))).sub == "svc"
    finally:
        await client.aclose()
    assert jwks_server.requests == 1


async def test_cached_keys_verify_without_fetching(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """Once fetched, keys verify tokens with no further request."""
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=Clock())
    try:
        assert await client.start()
        for _ in range(3):
            await client.verify(ed_key.sign(claims()))
    finally:
        await client.aclose()
    assert jwks_server.requests == 1


async def test_unknown_kid_refreshes_once_and_verifies(
    jwks_server: JWKSServer, ed_key: SigningKey, ed_key_2: SigningKey
) -> None:
    """A rotated-in kid triggers one fetch, after which its token verifies."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    try:
        await client.start()
        jwks_server.serve(ed_key, ed_key_2)
        clock.now += MIN_REFRESH_INTERVAL
        assert (await client.verify(ed_key_2.sign(claims()))).sub == "svc"
    finally:
        await client.aclose()
    assert jwks_server.requests == 2


async def test_unknown_kid_within_a_minute_does_not_fetch(
    jwks_server: JWKSServer, ed_key: SigningKey, ed_key_2: SigningKey
) -> None:
    """Within 60 s of the last fetch, an unknown kid is refused without a request."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    try:
        await client.start()
        jwks_server.serve(ed_key, ed_key_2)
        clock.now += MIN_REFRESH_INTERVAL - 1
        with pytest.raises(AuthError):
            await client.verify(ed_key_2.sign(claims()))
    finally:
        await client.aclose()
    assert jwks_server.requests == 1


async def test_made_up_kids_fetch_at_most_once_a_minute(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """A burst of tokens with made-up kids costs one fetch, not one each."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    try:
        await client.start()
        clock.now += MIN_REFRESH_INTERVAL
        for n in range(5):
            impostor = SigningKey(f"made-up-{n}", "EdDSA", ed_key.private)
            with pytest.raises(AuthError):
                await client.verify(impostor.sign(claims()))
    finally:
        await client.aclose()
    assert jwks_server.requests == 2


async def test_keys_refresh_in_background_after_interval(
    jwks_server: JWKSServer, ed_key: SigningKey, ed_key_2: SigningKey
) -> None:
    """After the refresh interval a verify starts a background fetch of new keys."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, refresh_interval=300, clock=clock)
    try:
        await client.start()
        jwks_server.serve(ed_key_2)
        clock.now += 300
        await client.verify(ed_key.sign(claims()))  # served from the cache
        await client.wait_refreshed()
        assert client.keyset.key("ed-2") is not None
        assert client.keyset.key("ed-1") is None
    finally:
        await client.aclose()
    assert jwks_server.requests == 2


async def test_failed_fetch_keeps_cached_keys(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """When the JWKS URL fails, the keys fetched before keep verifying."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    try:
        await client.start()
        jwks_server.status = 500
        clock.now += MIN_REFRESH_INTERVAL
        assert not await client.refresh()
        assert (await client.verify(ed_key.sign(claims()))).sub == "svc"
    finally:
        await client.aclose()


async def test_redirect_is_refused(jwks_server: JWKSServer, ed_key: SigningKey) -> None:
    """A redirecting JWKS URL is a failed fetch: redirects could swap the keys."""
    jwks_server.serve(ed_key)
    jwks_server.status, jwks_server.location = 302, "http://127.0.0.1:9/keys"
    client = JWKSClient(jwks_server.url)
    try:
        assert not await client.start()
        assert client.keyset.keys == ()
    finally:
        await client.aclose()


async def test_oversized_jwks_is_refused(jwks_server: JWKSServer) -> None:
    """A JWKS body over 1 MiB is a failed fetch."""
    jwks_server.body = b" " * (MAX_JWKS_BYTES + 1)
    client = JWKSClient(jwks_server.url)
    try:
        assert not await client.start()
    finally:
        await client.aclose()


async def test_concurrent_unknown_kids_share_one_fetch(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """Tokens verified concurrently before any fetch wait on a single request."""
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url)
    try:
        results = await asyncio.gather(
            *(client.verify(ed_key.sign(claims())) for _ in range(5))
        )
    finally:
        await client.aclose()
    assert [c.sub for c in results] == ["svc"] * 5
    assert jwks_server.requests == 1


async def test_base_secret_still_verifies_hs256(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """With a JWKS URL, HS256 tokens keep verifying with the base secret."""
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, base=Keyset(SECRET), clock=Clock())
    try:
        await client.start()
        token = create_token(SECRET, sub="svc")
        assert (await client.verify(token)).sub == "svc"
        assert (await client.verify(ed_key.sign(claims()))).sub == "svc"
    finally:
        await client.aclose()


async def test_closed_client_verifies_but_never_fetches(
    jwks_server: JWKSServer, ed_key: SigningKey, ed_key_2: SigningKey
) -> None:
    """After ``aclose()`` cached keys still verify, and unknown kids fetch nothing."""
    clock = Clock()
    jwks_server.serve(ed_key)
    client = JWKSClient(jwks_server.url, clock=clock)
    await client.start()
    await client.aclose()
    clock.now += 3600
    assert (await client.verify(ed_key.sign(claims()))).sub == "svc"
    with pytest.raises(AuthError):
        await client.verify(ed_key_2.sign(claims()))
    assert jwks_server.requests == 1


def test_jwks_url_must_be_http() -> None:
    """Only http and https JWKS URLs are accepted."""
    with pytest.raises(ValueError):
        JWKSClient("file:///etc/passwd")


# The server


async def test_server_verifies_tokens_by_jwks_url(
    jwks_server: JWKSServer, ed_key: SigningKey
) -> None:
    """``/v1/stream`` accepts an EdDSA token whose key the JWKS URL serves."""
    jwks_server.serve(ed_key)
    app = create_app(Config(store="memory://", jwks_url=jwks_server.url))
    token = ed_key.sign({**claims(), "streams": {"read": ["**"], "write": ["**"]}})
    async with asgi_client(app) as client:
        response = await client.put(
            "/v1/stream/s",
            headers={"authorization": f"Bearer {token}", **JSON},
        )
    assert response.status_code == 201, response.text


async def test_server_refuses_unknown_kid(
    jwks_server: JWKSServer, ed_key: SigningKey, ed_key_2: SigningKey
) -> None:
    """``/v1/stream`` answers 401 to a token whose kid the JWKS does not hold."""
    jwks_server.serve(ed_key)
    app = create_app(Config(store="memory://", jwks_url=jwks_server.url))
    async with asgi_client(app) as client:
        response = await client.get(
            "/v1/stream/s",
            headers={"authorization": f"Bearer {ed_key_2.sign(claims())}"},
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_server_verifies_tokens_by_jwks_file(
    tmp_path: Path, rsa_key: SigningKey
) -> None:
    """``/v1/stream`` accepts an RS256 token whose key the JWKS file holds."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(rsa_key)))
    app = create_app(Config(store="memory://", jwks_path=str(path)))
    token = rsa_key.sign({**claims(), "streams": {"read": ["**"], "write": ["**"]}})
    async with asgi_client(app) as client:
        response: httpx.Response = await client.put(
            "/v1/stream/s", headers={"authorization": f"Bearer {token}", **JSON}
        )
    assert response.status_code == 201, response.text
