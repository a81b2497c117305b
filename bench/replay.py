"""Workload R: compact replay of a session of 100 messages of 100 deltas.

Measured two ways: ``compact_replay.py`` in a child process pinned to the
server core (the ASGI app called in-process: the server's own time from the
request to the last body byte), and over HTTP from the running server, timed
by the load generator from writing the request to the last byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import orjson
from common import Result, Target, median
from rawhttp import Client
from servers import BENCH, SERVER_CPU
from wsload import create_sessions, token

R_MESSAGES = 100
R_DELTAS = 100


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One compact read, measured ``runs`` times."""

    how: str
    role: str
    first_ms: float
    median_ms: float
    p90_ms: float
    body_bytes: int


@dataclass
class ReplayResult(Result):
    """Workload R: in-process server time, and over HTTP."""

    rows: list[ReplayRow] = field(default_factory=list)


def run_replay_in_process(runs: int) -> list[ReplayRow]:
    """``bench/compact_replay.py`` pinned to the server core (SQLite store)."""
    argv = [
        "taskset",
        "-c",
        SERVER_CPU,
        sys.executable,
        str(BENCH / "compact_replay.py"),
        "--store",
        "sqlite",
        "--runs",
        str(runs),
        "--json",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    rows = []
    for line in out.stdout.splitlines():
        row = json.loads(line)
        if row["view"] != "compact":
            continue
        rows.append(
            ReplayRow(
                "in-process (server time)",
                row["role"],
                row["first_ms"],
                row["median_ms"],
                row["p90_ms"],
                row["body_bytes"],
            )
        )
    return rows


async def run_replay(target: Target, runs: int) -> ReplayResult:
    """Workload R over HTTP: client-observed time of ``GET …?view=compact``."""
    result = ReplayResult("R", target.name)
    session, customer = "r-1", "cust-r"
    await create_sessions(target.host, target.port, [(session, customer)])
    client = Client(target.host, target.port)
    try:
        # One producer per message: 10,200 events from one token would pass
        # the staff rate limit's burst.
        for number in range(R_MESSAGES):
            bearer = token(f"bot-r{number}", "ai")
            headers = {
                "Authorization": f"Bearer {bearer}",
                "Content-Type": "application/json",
            }
            body = orjson.dumps({"events": _message(number)})
            resp = await client.call(
                "POST", f"/v1/sessions/{session}/events", headers, body
            )
            if resp.status != 200:
                result.problems.append(f"publish -> {resp.status} {resp.body[:200]!r}")
                return result
        for role, sub in (("customer", customer), ("ai", "bot-r0")):
            headers = {"Authorization": f"Bearer {token(sub, role)}"}
            path = f"/v1/sessions/{session}/events?offset=-1&view=compact"
            times, size = [], 0
            for _ in range(runs):
                began = time.perf_counter()
                resp = await client.call("GET", path, headers)
                times.append((time.perf_counter() - began) * 1000)
                if (
                    resp.status != 200
                    or resp.headers.get("stream-up-to-date") != "true"
                ):
                    result.problems.append(f"{role}: compact read -> {resp.status}")
                    break
                size = len(resp.body)
            ordered = sorted(times)
            result.rows.append(
                ReplayRow(
                    "over HTTP (client-observed)",
                    role,
                    times[0],
                    median(ordered),
                    ordered[len(ordered) * 9 // 10],
                    size,
                )
            )
    finally:
        client.close()
    return result


def _message(number: int) -> list[dict[str, object]]:
    """Message ``number``: start, R_DELTAS text deltas of ~5 bytes, end."""
    mid = f"m{number}"
    events: list[dict[str, object]] = [
        {
            "type": "message.start",
            "id": f"{mid}-s",
            "data": {"message_id": mid, "role": "assistant"},
        }
    ]
    for seq in range(R_DELTAS):
        data = {
            "message_id": mid,
            "seq": seq,
            "part_index": 0,
            "part_type": "text",
            "text": "tok. ",
        }
        events.append({"type": "message.delta", "id": f"{mid}-{seq}", "data": data})
    end = {"message_id": mid, "status": "complete"}
    events.append({"type": "message.end", "id": f"{mid}-e", "data": end})
    return events
