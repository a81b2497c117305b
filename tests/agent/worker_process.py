"""A worker in a process of its own, for the kill-and-restart test.

``python tests/agent/worker_process.py URL MODE [SESSION...]`` with the AI's
token in ``THREADLINE_TOKEN``. MODE ``hang`` streams one delta then waits
forever (to be killed mid-reply); ``answer`` answers at once. Without
sessions it relies on discovery. Prints ``ready`` once serving.
"""

from __future__ import annotations

import asyncio
import os
import sys

from threadline.agent import Context, Worker
from threadline.client import ExponentialBackoff


async def main(url: str, mode: str, sessions: list[str]) -> None:
    async def respond(context: Context):
        if mode == "hang":
            yield "Thinking"
            await asyncio.Event().wait()
        yield f"Answer: {context.text}"

    worker = Worker(
        url,
        os.environ["THREADLINE_TOKEN"],
        respond,
        device="agent-1",
        discovery_interval=0.05,
        backoff=ExponentialBackoff(0.005, 0.05),
        timeout=5.0,
    )
    async with worker:
        for session in sessions:
            await worker.serve(session)
        print("ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
