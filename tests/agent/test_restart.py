"""A worker killed mid-reply (SIGKILL) and restarted: the customer gets an
answer and no message stays open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.agent.conftest import (
    TIMEOUT,
    MakeClient,
    of_type,
    staff_log,
    state_of,
    until,
)
from tests.client.conftest import token

SCRIPT = Path(__file__).parent / "worker_process.py"


@contextlib.asynccontextmanager
async def worker_process(
    url: str, mode: str, *sessions: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The worker script in a subprocess, once it printed ``ready``; killed after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_TOKEN"] = token("bot", "ai")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        url,
        mode,
        *sessions,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(3 * TIMEOUT):
            line = await process.stdout.readline()
        assert line == b"ready\n", line + await process.stdout.read()
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_worker_killed_mid_reply_answers_after_its_restart(
    make_client: MakeClient, http: httpx.AsyncClient, server
):
    """SIGKILL mid-stream, then a restart with the same device (finding the
    session by discovery): the stale reply and run end (error, by the restarted
    worker's cleanup or the server's lease), the message is answered, and
    nothing stays open."""
    service = await make_client()
    await service.create_session("s1", customer="cust")
    customer = (await make_client("cust", "customer")).session("s1")
    async with customer.subscribe("-1") as events:
        async with worker_process(server.url, "hang", "s1") as process:
            await customer.send_message("where is my order?")
            first = await until(events, of_type("run.start"))
            await until(events, of_type("message.delta"))
            process.kill()  # SIGKILL: no chance to end anything
            await process.wait()
        async with worker_process(server.url, "answer"):
            stale = await until(events, of_type("run.end", run_id=first.data["run_id"]))
            second = await until(events, of_type("run.start"))
            done = await until(events, of_type("run.end", run_id=second.data["run_id"]))
    assert stale.data["status"] == "error"
    assert stale.data["reason"] in ("producer_restarted", "producer_lost")
    assert second.data["in_reply_to"] == first.data["in_reply_to"]
    assert done.data["status"] == "complete"
    state = await state_of(http, "s1")
    assert state["messages"] == [] and state["runs"] == []
    log = await staff_log(http, "s1")
    ends = [e["data"]["status"] for e in log if e["type"] == "message.end"]
    assert ends == ["error", "complete"]
    texts = [e["data"]["text"] for e in log if e["type"] == "message.delta"]
    assert texts == ["Thinking", "Answer: where is my order?"]
