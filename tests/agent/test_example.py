"""examples/uppercase_agent.py runs against a real server (STYLE X9)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.agent.conftest import TIMEOUT, MakeClient, of_type, until
from tests.client.conftest import token

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "uppercase_agent.py"


async def test_uppercase_agent_answers_then_stops_on_sigterm(
    make_client: MakeClient, server
):
    """The example serves a session, answers in upper case, and exits cleanly
    on SIGTERM, reporting its replies."""
    service = await make_client()
    await service.create_session("order-1234", customer="cust")
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_TOKEN"] = token("bot", "ai")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        server.url,
        "order-1234",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(3 * TIMEOUT):
            assert await process.stdout.readline() == b"serving order-1234\n"
        customer = (await make_client("cust", "customer")).session("order-1234")
        async with customer.subscribe("-1") as events:
            await customer.send_message("where is my order")
            await until(events, of_type("message.end", status="complete"))
        page = await customer.read(view="compact")
        texts = [e.data["parts"][0]["text"] for e in page.events if e.type == "message"]
        assert texts == ["where is my order", "WHERE IS MY ORDER "]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(3 * TIMEOUT):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert out == b"stopped (1 answered)\n"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
