"""``threadline serve`` as a subprocess: start-up, the store lock, SIGTERM, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest

from tests.server.harness import (
    MS,
    Event,
    RawConnection,
    RawResponse,
    ServerProcess,
    serve_args,
    server_process,
    sqlite_available,
    sqlite_url,
    sse_events,
)
from threadline.protocol.offsets import Offset

JSON = {"content-type": "application/json"}

needs_sqlite = pytest.mark.skipif(
    not sqlite_available(), reason="threadline.storage.sqlite cannot be imported yet"
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without THREADLINE_SECRET, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_SECRET"}
    env.update(extra)
    return env


def run_serve(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``threadline serve`` expecting it to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "threadline", "serve", *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=30,
    )


# Start-up


@needs_sqlite
async def test_serve_prints_listening_line_and_answers_healthz(tmp_path: Path) -> None:
    """On start the server prints its URL, and ``/healthz`` answers 200 there."""
    args = serve_args(sqlite_url(tmp_path / "t.db"), "--no-auth")
    async with server_process(args) as process:
        assert re.match(r"http://127\.0\.0\.1:\d+$", process.url)
        assert "auth off" in process.output
        async with httpx.AsyncClient(base_url=process.url) as client:
            response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@needs_sqlite
async def test_serve_refuses_second_process_on_same_file(tmp_path: Path) -> None:
    """A second server on the same SQLite file fails at once, naming the lock."""
    store = sqlite_url(tmp_path / "t.db")
    async with server_process(serve_args(store, "--no-auth")) as first:
        second = ServerProcess(serve_args(store, "--no-auth"))
        second.start()
        try:
            code = await second.wait(15_000 * MS)
        finally:
            await asyncio.to_thread(second.close)
        assert code != 0
        assert "lock" in second.output.lower()
        assert not second.url
        async with httpx.AsyncClient(base_url=first.url) as client:
            assert (await client.get("/healthz")).status_code == 200


def test_serve_without_secret_exits_2() -> None:
    """Without a secret, --dev or --no-auth, serve exits 2 saying what to do."""
    result = run_serve("--store", "memory://", "--port", "0")
    assert result.returncode == 2
    assert "--secret" in result.stderr
    assert "--no-auth" in result.stderr
    assert "listening" not in result.stdout


def test_serve_unknown_store_url_exits_2() -> None:
    """An unknown store URL is refused with exit status 2 and a message."""
    result = run_serve("--store", "redis://x", "--no-auth", "--port", "0")
    assert result.returncode == 2
    assert "redis://x" in result.stderr


def test_serve_port_in_use_exits_2() -> None:
    """A port another socket holds is refused with exit status 2 and a message."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--store", "memory://", "--no-auth", "--port", str(port))
    assert result.returncode == 2
    assert "cannot bind" in result.stderr


SERVICE_LINE = "dev token (service, all sessions and streams): "


async def test_serve_dev_prints_working_token() -> None:
    """``--dev`` turns auth on with a generated secret and prints a token that works."""
    async with server_process(serve_args("memory://", "--dev")) as process:
        await asyncio.to_thread(wait_line, process, SERVICE_LINE)
        match = re.search(re.escape(SERVICE_LINE) + r"(\S+)", process.output)
        assert match, process.output
        token = match[1]
        async with httpx.AsyncClient(base_url=process.url) as client:
            anonymous = await client.put("/v1/stream/s", headers=JSON)
            authorized = await client.put(
                "/v1/stream/s", headers={**JSON, "authorization": f"Bearer {token}"}
            )
    assert anonymous.status_code == 401
    assert authorized.status_code == 201


DEV_ROLES = ["customer", "ai", "agent", "supervisor", "service"]


async def test_serve_dev_prints_one_token_per_role() -> None:
    """``--dev`` prints a token for each role, each accepted by the server."""
    async with server_process(serve_args("memory://", "--dev")) as process:
        await asyncio.to_thread(wait_line, process, SERVICE_LINE)
        tokens = re.findall(r"dev token \((\w+)[^)]*\): (\S+)", process.output)
        async with httpx.AsyncClient(base_url=process.url) as client:
            statuses = [
                (
                    await client.get(
                        "/v1/stream/none", headers={"authorization": f"Bearer {t}"}
                    )
                ).status_code
                for _, t in tokens
            ]
    assert [role for role, _ in tokens] == DEV_ROLES
    claims = [jwt.decode(t, options={"verify_signature": False}) for _, t in tokens]
    assert [c["role"] for c in claims] == DEV_ROLES
    # Only the service token has stream grants; the others verify but are forbidden.
    assert statuses == [403, 403, 403, 403, 404]


def test_serve_with_unreadable_jwks_exits_2(tmp_path: Path) -> None:
    """A --jwks file that cannot be read stops start-up with exit status 2."""
    result = run_serve(
        "--store", "memory://", "--port", "0", "--jwks", str(tmp_path / "no.json")
    )
    assert result.returncode == 2
    assert "no.json" in result.stderr


async def test_serve_with_jwks_file_accepts_eddsa_tokens(tmp_path: Path) -> None:
    """With only --jwks (no secret), an EdDSA token signed by its key is accepted."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from jwt.algorithms import OKPAlgorithm

    from threadline.auth import create_token

    key = ed25519.Ed25519PrivateKey.generate()
    jwk = {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "ed-1"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    token = create_token(
        key,
        sub="t",
        algorithm="EdDSA",
        kid="ed-1",
        streams={"read": ["**"], "write": ["**"]},
    )
    args = serve_args("memory://", "--jwks", str(path))
    async with server_process(args) as process:
        assert "auth on" in process.output
        async with httpx.AsyncClient(base_url=process.url) as client:
            response = await client.put(
                "/v1/stream/s", headers={**JSON, "authorization": f"Bearer {token}"}
            )
    assert response.status_code == 201


async def test_serve_takes_secret_from_environment() -> None:
    """THREADLINE_SECRET configures auth: tokens signed with it are accepted."""
    from threadline.auth import create_token

    secret = "environment-secret-0123456789abcdef"
    env = clean_env(THREADLINE_SECRET=secret)
    async with server_process(serve_args("memory://"), env=env) as process:
        assert "auth on" in process.output
        token = create_token(secret, sub="t", streams={"read": ["**"], "write": ["**"]})
        async with httpx.AsyncClient(base_url=process.url) as client:
            response = await client.put(
                "/v1/stream/s", headers={**JSON, "authorization": f"Bearer {token}"}
            )
    assert response.status_code == 201


def wait_line(process: ServerProcess, text: str, timeout: float = 10_000 * MS) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.output:
        assert time.monotonic() < deadline, process.output
        time.sleep(10 * MS)


# SIGTERM


DRAIN_TIMEOUT = 5.0


@dataclass
class Drained:
    """What clients saw when the server got SIGTERM."""

    poll: RawResponse | None = None
    sse_before: list[Event] = field(default_factory=list)
    sse_after: list[Event] = field(default_factory=list)
    code: int | None = None
    elapsed: float = 0.0
    output: str = ""


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    taken: list[Event] = []
    async with asyncio.timeout(5_000 * MS):
        while len(taken) < count:
            taken.append(await anext(events))
    return taken


async def sigterm_with_waiting_readers(store: str) -> Drained:
    """Open an SSE stream and a long-poll at the tail, then SIGTERM the server."""
    drained = Drained()
    args = serve_args(
        store,
        "--no-auth",
        "--long-poll-timeout",
        "60s",
        "--drain-timeout",
        f"{DRAIN_TIMEOUT}s",
    )
    process = ServerProcess(args)
    process.start()
    try:
        url = await process.started()
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await client.put("/v1/stream/s", headers=JSON)
            appended = await client.post("/v1/stream/s", headers=JSON, content=b"[1]")
            tail = appended.headers["stream-next-offset"]
            poller = await RawConnection.open(url)
            try:
                async with client.stream(
                    "GET", f"/v1/stream/s?offset={tail}&live=sse"
                ) as response:
                    async with contextlib.aclosing(sse_events(response)) as events:
                        drained.sse_before = await take(events, 1)
                        # An established connection, then the long-poll on it; a round
                        # trip on another connection shows the server has parsed it.
                        await poller.send("HEAD", "/v1/stream/s")
                        await poller.response(head=True)
                        await poller.send(
                            "GET", f"/v1/stream/s?offset={tail}&live=long-poll"
                        )
                        assert (await client.get("/healthz")).status_code == 200
                        started = time.monotonic()
                        process.signal(signal.SIGTERM)
                        # Record what arrives; the tests judge it (with the output).
                        with contextlib.suppress(TimeoutError, httpx.HTTPError):
                            async with asyncio.timeout(DRAIN_TIMEOUT):
                                drained.poll = await poller.response()
                                async for event in events:
                                    drained.sse_after.append(event)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    drained.code = await process.wait(DRAIN_TIMEOUT * 2)
                drained.elapsed = time.monotonic() - started
            finally:
                await poller.close()
    finally:
        await asyncio.to_thread(process.close)
        drained.output = process.output
    return drained


async def test_sigterm_answers_pending_long_poll(tmp_path: Path) -> None:
    """On SIGTERM a long-poll waiting at the tail is answered 204 at once."""
    drained = await sigterm_with_waiting_readers(store_url(tmp_path))
    assert drained.poll is not None, drained.output
    assert drained.poll.status == 204, drained.output
    assert drained.poll.headers["stream-up-to-date"] == "true"
    assert "stream-next-offset" in drained.poll.headers


async def test_sigterm_ends_sse_with_control_event(tmp_path: Path) -> None:
    """On SIGTERM an open SSE stream gets a final control event, then ends."""
    drained = await sigterm_with_waiting_readers(store_url(tmp_path))
    assert drained.sse_after, drained.output
    last = drained.sse_after[-1]
    assert last.event == "control", drained.output
    before = json.loads(drained.sse_before[0].data)
    assert json.loads(last.data)["streamNextOffset"] == before["streamNextOffset"]


async def test_sigterm_exits_zero_within_drain_timeout(tmp_path: Path) -> None:
    """With readers waiting, SIGTERM exits 0 within the drain timeout."""
    drained = await sigterm_with_waiting_readers(store_url(tmp_path))
    assert drained.code == 0, drained.output
    assert drained.elapsed < DRAIN_TIMEOUT


def store_url(tmp_path: Path) -> str:
    """SQLite when it exists, else memory (the restart test needs SQLite)."""
    return sqlite_url(tmp_path / "t.db") if sqlite_available() else "memory://"


@needs_sqlite
async def test_sigterm_keeps_every_acknowledged_append(tmp_path: Path) -> None:
    """Appends acknowledged up to SIGTERM, under load, survive a restart."""
    store = sqlite_url(tmp_path / "t.db")
    args = serve_args(store, "--no-auth", "--drain-timeout", f"{DRAIN_TIMEOUT}s")
    acked: dict[str, list[tuple[int, str]]] = {}

    async def writer(
        client: httpx.AsyncClient, path: str, signalled: asyncio.Event
    ) -> None:
        acked[path] = []
        n = 0
        while True:
            try:
                response = await client.post(
                    path, headers=JSON, content=json.dumps(n).encode()
                )
            except httpx.TransportError:
                return
            if response.status_code != 204:
                return  # refused while shutting down: not acknowledged
            acked[path].append((n, response.headers["stream-next-offset"]))
            n += 1
            if n == 20:
                signalled.set()

    async with server_process(args) as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            paths = [f"/v1/stream/w{i}" for i in range(4)]
            for path in paths:
                assert (await client.put(path, headers=JSON)).status_code == 201
            ready = [asyncio.Event() for _ in paths]
            writers = [
                asyncio.create_task(writer(client, path, event))
                for path, event in zip(paths, ready, strict=True)
            ]
            async with asyncio.timeout(10_000 * MS):
                await asyncio.gather(*(event.wait() for event in ready))
            process.signal(signal.SIGTERM)
            async with asyncio.timeout(DRAIN_TIMEOUT * 2):
                await asyncio.gather(*writers)
            await process.wait(DRAIN_TIMEOUT * 2)

    async with server_process(serve_args(store, "--no-auth")) as process:
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            for path, appends in acked.items():
                assert len(appends) >= 20
                records = (await client.get(path)).json()
                # Every acknowledged record is present once, in order, at its offset.
                for n, offset in appends:
                    position = Offset.parse(offset).position
                    assert records[position - 1] == n
                # At most the one request in flight at SIGTERM may also have landed.
                count = len(appends)
                assert records in (list(range(count)), list(range(count + 1)))
