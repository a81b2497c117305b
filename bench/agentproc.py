"""T's agent in a process of its own (on the load generator's core).

In one event loop with the 100 subscribers, the agent would read each batch
of ``published`` answers only after the loop got through the subscribers'
frames that arrived with it, and its next publishes would wait for that: the
closed loop would measure the generator. As a separate process it is woken
by its own socket, like an agent on another machine.

Protocol: the parent writes one JSON line with the agent's settings, then
commands, one JSON line each; the child answers each with one JSON line.

* settings ``{host, port, session, token, device, window, per_message,
  staff_every, fanout}`` → ``{"ready": true}`` once connected;
* ``{"cmd": "start", "window": [start_ns, end_ns]}`` → ``{}``: fill the window
  of publishes, and count the deltas written in ``[start_ns, end_ns)``;
* ``{"cmd": "stop"}`` → the :func:`_stats` once every publish is answered
  (or 15 s passed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from typing import Any

import orjson
import uvloop
from wsload import Agent, Latencies, wait_until


def _stats(agent: Agent, lat: Latencies, marks: dict[str, Any]) -> dict[str, Any]:
    return {
        "totals": dataclasses.asdict(agent.totals()),
        "expected": lat.expected,
        **marks,
    }


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )

    def answer(value: dict[str, Any]) -> None:
        sys.stdout.buffer.write(orjson.dumps(value) + b"\n")
        sys.stdout.flush()

    config = orjson.loads(await reader.readline())
    lat = Latencies()
    agent = Agent(
        config["session"],
        config["token"],
        lat,
        (config["fanout"][0], config["fanout"][1]),
        per_message=config["per_message"],
        staff_every=config["staff_every"],
        window=config["window"],
        rate=config["rate"],
    )
    await agent.open(config["host"], config["port"], config["device"])
    answer({"ready": True})
    marks: dict[str, Any] = {}

    def mark(name: str) -> None:
        marks[name] = [agent.acked_publishes, agent.acked_events, agent.throttled]

    while line := await reader.readline():
        command = orjson.loads(line)
        if command["cmd"] == "start":
            start, end = command["window"]
            lat.set_window(start, end)
            now = time.perf_counter_ns()
            loop.call_later(max(0, start - now) / 1e9, mark, "at_start")
            loop.call_later(max(0, end - now) / 1e9, mark, "at_end")
            agent.start()
            answer({})
        elif command["cmd"] == "stop":
            agent.running = False
            await wait_until(lambda: not agent.in_flight, 15.0)
            answer(_stats(agent, lat, marks))
            break
    if agent.conn is not None:
        agent.conn.abort()


if __name__ == "__main__":
    uvloop.run(_main())
