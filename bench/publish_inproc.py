"""The publish path alone: ``SessionManager.publish`` on SQLite, no network.

Usage::

    taskset -c 0 .venv/bin/python bench/publish_inproc.py [SESSIONS] [ROUNDS]

Creates SESSIONS sessions in a fresh SQLite store and publishes ROUNDS deltas
into each (as M's agents do: ``message.start`` with the first delta of a
message, ``message.end`` with its 100th), one round at a time with every
session's publish in flight together, so that they share group commits.
Prints the process's CPU per publish (user and system), publishes per commit
and the commit thread's CPU per commit. What it measures is everything of a
publish but the WebSocket frames and the live feeds: validation, two
envelopes with their audit hashes, the index writes and the commit.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.server.sessions import SessionManager
from threadline.storage.sqlite import SQLiteLogStore

AI = Actor("bot", "ai", "Assistant", "bench")
PER_MESSAGE = 100


def _drafts(session: str, n: int) -> list[EventDraft]:
    number, seq = divmod(n, PER_MESSAGE)
    mid = f"m{number}"
    drafts = []
    if seq == 0:
        drafts.append(
            EventDraft(
                "message.start",
                f"{session}-{mid}-s",
                {"message_id": mid, "role": "assistant"},
            )
        )
    drafts.append(
        EventDraft(
            "message.delta",
            f"{session}-{mid}-{seq}",
            {
                "message_id": mid,
                "seq": seq,
                "part_index": 0,
                "part_type": "text",
                "text": "word ",
            },
        )
    )
    if seq == PER_MESSAGE - 1:
        drafts.append(
            EventDraft(
                "message.end",
                f"{session}-{mid}-e",
                {"message_id": mid, "status": "complete"},
            )
        )
    for draft in drafts:
        draft.check()
    return drafts


async def measure(sessions: int, rounds: int) -> None:
    """Publish and print the costs."""
    with tempfile.TemporaryDirectory(prefix="threadline-publish-") as tmp:
        store = SQLiteLogStore(str(Path(tmp) / "bench.db"))
        await store.start()
        try:
            manager = SessionManager(store)
            ids = [f"s{i}" for i in range(sessions)]
            for session in ids:
                await manager.create("default", session, customer=f"c-{session}")
            done = 0

            async def one_round() -> None:
                nonlocal done
                await asyncio.gather(
                    *(manager.publish("default", s, AI, _drafts(s, done)) for s in ids)
                )
                done += 1

            for _ in range(3):  # warm-up
                await one_round()
            commits0 = store.stats.commits
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            thread0 = time.thread_time()
            for _ in range(rounds):
                await one_round()
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            thread1 = time.thread_time()
            commits = store.stats.commits - commits0
        finally:
            await store.stop()
    count = sessions * rounds
    user = usage1.ru_utime - usage0.ru_utime
    system = usage1.ru_stime - usage0.ru_stime
    loop_cpu = thread1 - thread0
    print(
        f"{sessions} sessions x {rounds} rounds: {1e6 * (user + system) / count:.0f} µs"
        f" CPU per publish (user {1e6 * user / count:.0f}, system"
        f" {1e6 * system / count:.0f}; event loop thread {1e6 * loop_cpu / count:.0f}),"
        f" {count / max(1, commits):.1f} publishes per commit"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    uvloop.run(measure(*(args + [500, 20][len(args) :])))
