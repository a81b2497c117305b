"""Hold workload M at a fixed number of sessions, for profiling the server.

Usage::

    .venv/bin/python bench/m_hold.py SESSIONS SECONDS

Starts a fresh server like ``bench/sessions.py`` (core 0; this process on
core 1), grows to SESSIONS sessions, paces them for SECONDS and prints the
server's CPU per publish and the delivery latency. Attach a profiler to the
printed pid meanwhile. ``M_CMD`` in the environment replaces the server's
command template (placeholders as in ``bench/sessions.py``), e.g. to hold M's
ceiling, ``bench/ws_noop_app.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from servers import ServerSpec, running
from session_runs import _grow, _Pacer
from sessions import SERVER_CMD, _pin_generator
from wsload import Agent, Latencies, Subscriber


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def hold(count: int, seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="threadline-m-hold-"))
    try:
        with running(
            ServerSpec("ours", os.environ.get("M_CMD", SERVER_CMD)), workdir
        ) as target:
            pid = target.pid
            assert pid is not None
            print(f"server pid {pid}", file=sys.stderr, flush=True)
            lat = Latencies()
            subs: list[Subscriber] = []
            agents: list[Agent] = []
            pacer = _Pacer(agents)
            task = asyncio.create_task(pacer.run())
            await _grow(target, count, subs, agents, lat)
            pacer.activate(count)
            await asyncio.sleep(1.0)
            pacer.reset()
            cpu0, t0 = _cpu_seconds(pid), time.monotonic()
            start = time.perf_counter_ns()
            lat.set_window(start, start + int(seconds * 1e9))
            print("holding", file=sys.stderr, flush=True)
            await asyncio.sleep(seconds)
            cpu1, t1 = _cpu_seconds(pid), time.monotonic()
            stats = lat.stats()
            pacer.running = False
            await task
            sent = pacer.sent
            print(
                f"{count} sessions: {sent / (t1 - t0):.0f} publishes/s, server"
                f" {100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of a core,"
                f" {1e6 * (cpu1 - cpu0) / max(1, sent):.0f} us CPU per publish;"
                f" delivery p50 {stats.p50:.1f} ms, p99 {stats.p99:.1f} ms,"
                f" max {stats.max:.1f} ms",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    _pin_generator()
    uvloop.run(hold(int(sys.argv[1]), float(sys.argv[2])))
