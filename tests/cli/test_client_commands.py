"""``threadline tail`` and ``publish`` against a real server, as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

import threadline
from tests.client.conftest import SECRET, token
from tests.client.proxy import Proxy, proxy_to
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS, wait_for
from threadline.cli import _event_line, main
from threadline.client import Client
from threadline.protocol.actors import Actor
from threadline.protocol.events import GENESIS_HASH, Event
from threadline.protocol.offsets import Offset


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with serve_in_thread(auth=True, secret=SECRET) as (server, _):
        yield server


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[Client]:
    """A service client with the session ``s1`` created."""
    async with threadline.connect(server.url, token(), timeout=5_000 * MS) as client:
        await client.create_session("s1", customer="cust_1")
        yield client


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_TOKEN"] = token()
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Tail:
    """``threadline tail`` running in a subprocess; its lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 10_000 * MS)
        assert raw, "tail exited"
        return raw.decode().rstrip("\n")


@pytest.fixture
async def tail(server: ServerThread) -> AsyncIterator[object]:
    """Start ``threadline tail ARGS`` (with --url of the server unless given)."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*args: str, url: str | None = None) -> Tail:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "threadline",
            "tail",
            *args,
            "--url",
            url or server.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment(),
        )
        processes.append(process)
        return Tail(process)

    try:
        yield start
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def publish_cli(server: ServerThread, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline",
        "publish",
        *args,
        "--url",
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    out, err = await asyncio.wait_for(process.communicate(), 30_000 * MS)
    assert process.returncode is not None
    return process.returncode, out.decode().strip(), err.decode()


async def test_tail_prints_history_then_live_events_one_line_each(tail, client):
    """Each event is one line with its actor, type and text, history first."""
    session = client.session("s1")
    await session.send_message("Where is my order?", role="user")
    watching = await tail("s1")
    first = await watching.line()
    await session.send_message("It ships today.")
    second = await watching.line()
    assert "svc (service)" in first and "message" in first
    assert first.endswith("user: Where is my order?")
    assert second.endswith("assistant: It ships today.")


async def test_tail_json_prints_the_envelopes(tail, client):
    """With --json each line is an event's JSON envelope."""
    offset = await client.session("s1").publish("x.order", {"order": 7})
    watching = await tail("s1", "--json")
    event = json.loads(await watching.line())
    assert (event["offset"], event["data"]) == (str(offset), {"order": 7})


async def test_tail_resumes_after_a_drop(tail, client, server: ServerThread):
    """Cut off mid-session, tail reconnects and prints what came meanwhile, once."""
    async with proxy_to(server.url) as proxy:
        session = client.session("s1")
        await session.publish("x.n", {"n": 0})
        watching = await tail("s1", url=proxy.url)
        assert '"n":0' in await watching.line()
        await _cut_until_reconnected(proxy, session)
        lines = [await watching.line() for _ in range(2)]
    assert ['"n":1' in lines[0], '"n":2' in lines[1]] == [True, True]


async def _cut_until_reconnected(proxy: Proxy, session: threadline.client.Session):
    accepted = proxy.accepted
    proxy.refuse()
    proxy.cut()
    await session.publish("x.n", {"n": 1})
    await wait_for(lambda: proxy.refused > 0, 10_000 * MS)
    proxy.accept()
    await wait_for(lambda: proxy.accepted > accepted, 10_000 * MS)
    await session.publish("x.n", {"n": 2})


async def test_tail_ends_when_the_session_closes(tail, client):
    """tail exits 0 after printing session.closed."""
    await client.session("s1").publish("session.closed", {"reason": "resolved"})
    watching = await tail("s1")
    assert "session.closed" in await watching.line()
    assert await asyncio.wait_for(watching.process.wait(), 10_000 * MS) == 0


async def test_publish_text_prints_the_offset_of_the_message(server, client):
    """publish --text stores a message and prints its offset."""
    code, out, err = await publish_cli(server, "s1", "--text", "Hello")
    assert code == 0, err
    state = await client.session("s1").state()
    assert out == state["offset"]


async def test_publish_type_and_data_stores_that_event(server, client):
    """publish --type --data stores the event as given."""
    code, out, err = await publish_cli(
        server, "s1", "--type", "x.order", "--data", '{"order": 7}', "--id", "o-7"
    )
    assert code == 0, err
    async with client.session("s1").subscribe() as events:
        async for event in events:
            if event.id == "o-7":
                break
    assert (str(event.offset), event.type, event.data) == (out, "x.order", {"order": 7})


async def test_publish_with_bad_data_fails_clearly(server, client):
    """publish --data that is not a JSON object exits 1 with a message."""
    code, _, err = await publish_cli(server, "s1", "--type", "x.n", "--data", "[1]")
    assert code == 1
    assert "JSON object" in err


# In-process: the line format and the argument checks


def make_event(type: str, data: dict[str, object], **actor: str) -> Event:
    return Event(
        offset=Offset(1, 7),
        ts="2026-11-26T06:10:27.123456Z",
        type=type,
        id="e1",
        actor=Actor(actor.get("id", "bot"), actor.get("role", "ai"), actor.get("name")),  # type: ignore[arg-type]
        visibility="staff" if type == "note" else "all",
        data=data,
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
    )


@pytest.mark.parametrize(
    ("type", "data", "summary"),
    [
        (
            "message",
            {"role": "user", "parts": [{"type": "text", "text": "Hi"}]},
            "user: Hi",
        ),
        ("message.start", {"message_id": "m1", "role": "assistant"}, "assistant m1 …"),
        ("message.delta", {"message_id": "m1", "seq": 0, "text": "Yo"}, "'Yo'"),
        (
            "message.end",
            {"message_id": "m1", "status": "cancelled", "reason": "floor_lost"},
            "cancelled (floor_lost)",
        ),
        ("note", {"text": "refund limit"}, "refund limit [staff]"),
        (
            "participant.joined",
            {"participant": {"id": "ag_1", "role": "agent"}},
            "ag_1 (agent)",
        ),
        ("x.order", {"order": 7}, '{"order":7}'),
    ],
)
def test_tail_line_summarizes_each_event_type(type, data, summary):
    """A tail line is time, actor, type, then a summary of the event's data."""
    line = _event_line(make_event(type, data, name="Dana"))
    assert line.startswith("06:10:27.123  Dana (ai)")
    assert type in line
    assert line.endswith(summary)


def test_tail_without_token_exits_2(capsys, monkeypatch):
    """tail needs --token or THREADLINE_TOKEN."""
    monkeypatch.delenv("THREADLINE_TOKEN", raising=False)
    assert main(["tail", "s1"]) == 2
    assert "THREADLINE_TOKEN" in capsys.readouterr().err


def test_publish_to_unknown_session_exits_1_with_the_error(server, capsys):
    """publish reports a refused publish by its exception and exits 1."""
    assert (
        main(
            [
                "publish",
                "s2",
                "--url",
                server.url,
                "--token",
                token(),
                "--type",
                "x.n",
                "--data",
                "{}",
            ]
        )
        == 1
    )
    assert "SessionNotFound" in capsys.readouterr().err
