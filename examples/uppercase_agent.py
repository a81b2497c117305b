"""An agent worker that answers every customer message in upper case.

Start a server, create a session for a customer, and run the worker with the
AI's token (``threadline serve --dev`` prints one token per role):

    threadline serve --dev
    THREADLINE_TOKEN=<ai token> python examples/uppercase_agent.py \\
        http://127.0.0.1:4437 order-1234

It serves the sessions named on the command line, and every few seconds the
AI's other sessions that have unread messages. Each customer message gets a
streamed reply; a ``run.cancel``, a human taking the floor or a newer message
stops it. Stop the worker with Ctrl-C (or SIGTERM): a reply in flight is ended
so that a restarted worker answers it again. The script needs only
``pip install threadline`` (no server extra).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

from threadline.agent import Context, Worker


async def respond(context: Context) -> AsyncIterator[str]:
    """The 'model': the customer's words, one delta each, in upper case."""
    for word in context.text.split():
        yield word.upper() + " "


async def main(url: str, token: str, sessions: list[str]) -> None:
    worker = Worker(
        url,
        token,
        respond,
        device=os.environ.get("THREADLINE_DEVICE", "uppercase-1"),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, worker.stop)
    worker.start()
    for session in sessions:
        await worker.serve(session)
    print(f"serving {' '.join(sessions) or 'discovered sessions'}", flush=True)
    await worker.run()  # until a signal; then it closes
    print(f"stopped ({worker.metrics.runs_completed} answered)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: uppercase_agent.py URL [SESSION...]")
    asyncio.run(main(sys.argv[1], os.environ["THREADLINE_TOKEN"], sys.argv[2:]))
