"""Compact replay: server time for a compact read of 10,000 deltas in 100 messages.

Issue 3 point 13's target: a session with 100 streamed messages of 100 deltas
each, read with ``view=compact`` from ``-1``, in at most 10 ms of server time
from request to last byte. This script calls the ASGI app in-process (no
socket, no HTTP parser), so what it measures is the server's own work: auth,
routing, the state, the index scan, the planned log reads, folding, encoding.

    .venv/bin/python bench/compact_replay.py [--store sqlite|memory] [--runs N] [--json]

``--json`` prints one JSON object per line instead of text (``bench/sessions.py``
runs it that way, pinned to the server core, for workload R). Not run by the
test suite. The SQLite store is restarted after populating, so
reads come from the database file, not from the store's recent-records cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from threadline.auth import create_token
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.server import Config, create_app
from threadline.server.app import Application

SECRET = "bench-secret-0123456789abcdef0123456789"
SESSION = "order-1"
MESSAGES = 100
DELTAS = 100
AI = Actor("bot", "ai", "Assistant")


def drafts(number: int) -> list[EventDraft]:
    """One streamed message: start, DELTAS text deltas (about 5 bytes each), end."""
    mid = f"m{number}"
    out = [
        EventDraft(
            "message.start", f"{mid}-s", {"message_id": mid, "role": "assistant"}
        )
    ]
    for seq in range(DELTAS):
        data = {
            "message_id": mid,
            "seq": seq,
            "part_index": 0,
            "part_type": "text",
            "text": "tok. ",
        }
        out.append(EventDraft("message.delta", f"{mid}-{seq}", data))
    end = {"message_id": mid, "status": "complete"}
    out.append(EventDraft("message.end", f"{mid}-e", end))
    return out


async def timed_get(
    app: Application, query: bytes, token: str
) -> tuple[float, int, int]:
    """Seconds from the call to the last body byte, body size, status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/v1/sessions/{SESSION}/events",
        "raw_path": f"/v1/sessions/{SESSION}/events".encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    size = status = 0
    done = 0.0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        nonlocal size, status, done
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                done = time.perf_counter()

    began = time.perf_counter()
    await app(scope, receive, send)
    return done - began, size, status


async def run(store: str, runs: int, as_json: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory://" if store == "memory" else f"sqlite:///{Path(tmp) / 'c.db'}"
        config = Config(store=url, auth=True, secret=SECRET)
        app = create_app(config)
        await app.store.start()
        await app.sessions.create("default", SESSION, customer="cust_1")
        # 10,200 events at once are past the staff rate limit's burst (5,000).
        app.sessions.limiter = None
        for number in range(MESSAGES):
            await app.sessions.publish("default", SESSION, AI, drafts(number))
        if store == "sqlite":
            await app.store.stop()
            app = create_app(config)
            await app.store.start()
        try:
            for role, sub in (("ai", "bot"), ("customer", "cust_1")):
                token = create_token(SECRET, sub=sub, role=role, sessions=["**"])
                for view in ("compact", "raw"):  # raw: its first 1 MiB page
                    query = f"offset=-1&view={view}".encode()
                    seconds = []
                    for _ in range(runs):
                        elapsed, size, status = await timed_get(app, query, token)
                        assert status == 200, status
                        seconds.append(elapsed * 1000)
                    ordered = sorted(seconds)
                    median = statistics.median(ordered)
                    p90 = ordered[len(ordered) * 9 // 10]
                    if as_json:
                        row = {
                            "store": store,
                            "role": role,
                            "view": view,
                            "runs": runs,
                            "first_ms": seconds[0],
                            "median_ms": median,
                            "min_ms": ordered[0],
                            "p90_ms": p90,
                            "body_bytes": size,
                        }
                        print(json.dumps(row), flush=True)
                        continue
                    print(
                        f"{store:6} {role:8} view={view:7} median {median:6.2f} ms"
                        f"  min {ordered[0]:6.2f} ms  p90 {p90:6.2f} ms"
                        f"  body {size:,} bytes"
                    )
        finally:
            await app.store.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "memory", "both"], default="both")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    args = parser.parse_args()
    for store in ("sqlite", "memory") if args.store == "both" else (args.store,):
        asyncio.run(run(store, args.runs, args.json))


if __name__ == "__main__":
    main()
