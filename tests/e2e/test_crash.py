"""The crash test: SIGKILL the server under load, again and again; lose nothing acked.

Writers keep 32 idempotent-producer appends in flight (8 producers x 4 streams)
against ``threadline serve`` on a SQLite file. The server is SIGKILLed at
random moments, by the test or by itself inside a commit
(``THREADLINE_FAULT_KILL_IN_COMMIT``), and restarted on the same file; writers
retry every unacknowledged request with the same producer headers. At the end
every acknowledged record must be present exactly once, in order, at the
offset its append was acknowledged with.

Environment: ``THREADLINE_CRASH_CYCLES`` (default 20), ``THREADLINE_CRASH_SEED``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.server.harness import (
    MS,
    ServerProcess,
    serve_args,
    sqlite_available,
    sqlite_url,
    wait_for,
)
from threadline.protocol.offsets import Offset

CYCLES = int(os.environ.get("THREADLINE_CRASH_CYCLES", "20"))
SEED = int(os.environ.get("THREADLINE_CRASH_SEED", str(random.randrange(1 << 30))))
WRITERS = 8
STREAMS = 4
FAULT_PROBABILITY = "0.03"
"""Chance per commit that the server SIGKILLs itself, on fault cycles."""

JSON = {"content-type": "application/json"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(max(120, CYCLES * 8)),
    pytest.mark.skipif(
        not sqlite_available(),
        reason="threadline.storage.sqlite cannot be imported yet",
    ),
]


@dataclass
class Target:
    """Where writers send requests; ``epoch`` grows with each restart."""

    url: str = ""
    epoch: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def restarted(self, url: str) -> None:
        async with self.changed:
            self.url = url
            self.epoch += 1
            self.changed.notify_all()

    async def wait_newer(self, epoch: int, timeout: float) -> None:
        """Wait for a restart after ``epoch`` or for ``timeout`` (errors may pass)."""
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.epoch > epoch), timeout
                )
            except TimeoutError:
                pass


@dataclass
class Ack:
    """One acknowledged append: the producer seq, and the offset (200 only)."""

    seq: int
    status: int
    offset: str | None


@dataclass
class Totals:
    """Counters the controller reads to decide when to kill, and prints per cycle."""

    new: int = 0
    duplicate: int = 0
    retries: int = 0
    in_flight: int = 0
    anomalies: list[str] = field(default_factory=list)


async def produce(
    client: httpx.AsyncClient,
    target: Target,
    writer: int,
    stream: int,
    acks: list[Ack],
    totals: Totals,
    stop: asyncio.Event,
) -> None:
    """One idempotent producer: seq n+1 only after n is acked; retries keep headers."""
    path = f"/v1/stream/s{stream}"
    seq = 0
    while not stop.is_set():
        body = json.dumps({"w": writer, "n": seq}).encode()
        headers = {
            **JSON,
            "producer-id": f"writer-{writer}",
            "producer-epoch": "0",
            "producer-seq": str(seq),
        }
        while True:
            epoch = target.epoch
            totals.in_flight += 1
            try:
                response = await client.post(
                    target.url + path, headers=headers, content=body
                )
            except httpx.TransportError:
                totals.retries += 1
                await target.wait_newer(epoch, 500 * MS)
                continue
            finally:
                totals.in_flight -= 1
            if response.status_code == 200:
                totals.new += 1
                offset = response.headers["stream-next-offset"]
                acks.append(Ack(seq, 200, offset))
            elif response.status_code == 204:
                totals.duplicate += 1
                acks.append(Ack(seq, 204, None))
            else:
                totals.anomalies.append(
                    f"s{stream} writer-{writer} seq {seq}: "
                    f"{response.status_code} {response.text}"
                )
                stop.set()
                return
            break
        seq += 1


@dataclass
class Cycle:
    number: int
    mode: str
    new: int
    duplicate: int
    in_flight: int
    killed_by: str
    seconds: float


HEADER = "cycle  mode     acked-200  dup-204  in-flight  killed-by     seconds"


def row(c: Cycle) -> str:
    return (
        f"{c.number:5d}  {c.mode:<7s}  {c.new:9d}  {c.duplicate:7d}  {c.in_flight:9d}"
        f"  {c.killed_by:<12s}  {c.seconds:7.2f}"
    )


def table(cycles: list[Cycle], totals: Totals) -> str:
    lines = [f"crash test: seed {SEED}, {WRITERS} writers x {STREAMS} streams", HEADER]
    lines += [row(c) for c in cycles]
    lines.append(
        f"total  {'':7s}  {sum(c.new for c in cycles):9d}  "
        f"{sum(c.duplicate for c in cycles):7d}  "
        f"(retries {totals.retries}, SIGKILLs {len(cycles)})"
    )
    return "\n".join(lines)


def killer(output: str) -> str:
    """Where fault injection killed the server: before or after COMMIT."""
    for where in ("before", "after"):
        if f"SIGKILL {where} COMMIT" in output:
            return f"fault-{where}"
    return "unknown"


def cycle_over(
    totals: Totals, proc: subprocess.Popen[str], goal: int, stop: asyncio.Event
) -> bool:
    """Enough acks this cycle, or the server died, or a writer gave up."""
    return (
        totals.new + totals.duplicate >= goal
        or proc.poll() is not None
        or stop.is_set()
    )


async def read_all(
    client: httpx.AsyncClient, url: str
) -> tuple[list[dict[str, int]], str]:
    """Every record of a stream (following chunks), and the tail."""
    records: list[dict[str, int]] = []
    offset = "-1"
    while True:
        response = await client.get(f"{url}?offset={offset}")
        assert response.status_code == 200, response.text
        records += response.json()
        offset = response.headers["stream-next-offset"]
        if response.headers.get("stream-up-to-date") == "true":
            return records, offset


async def test_crash_loses_no_acknowledged_append(tmp_path: Path) -> None:
    """Across SIGKILLs, every acked append survives once, in order, at its offset."""
    rng = random.Random(SEED)
    store = sqlite_url(tmp_path / "crash.db")
    args = serve_args(store, "--no-auth", "--log-level", "warning")
    drop = ("THREADLINE_SECRET", "THREADLINE_FAULT_KILL_IN_COMMIT")
    base_env = {k: v for k, v in os.environ.items() if k not in drop}
    target = Target()
    totals = Totals()
    stop = asyncio.Event()
    acks: dict[tuple[int, int], list[Ack]] = {
        (w, s): [] for w in range(WRITERS) for s in range(STREAMS)
    }
    cycles: list[Cycle] = []
    processes: list[ServerProcess] = []
    writers: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=WRITERS * STREAMS * 2)

    async def start(env: dict[str, str]) -> ServerProcess:
        process = ServerProcess(args, env)
        processes.append(process)
        process.start()
        await target.restarted(await process.started())
        return process

    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        try:
            process = await start(base_env)
            for s in range(STREAMS):
                created = await client.put(f"{target.url}/v1/stream/s{s}", headers=JSON)
                assert created.status_code == 201
            writers += [
                asyncio.create_task(
                    produce(client, target, w, s, acks[w, s], totals, stop)
                )
                for w in range(WRITERS)
                for s in range(STREAMS)
            ]

            print(f"\ncrash test: seed {SEED}\n{HEADER}", flush=True)
            for number in range(1, CYCLES + 1):
                fault = number % 3 == 0
                if number > 1:
                    env = dict(base_env)
                    if fault:
                        env["THREADLINE_FAULT_KILL_IN_COMMIT"] = FAULT_PROBABILITY
                    process = await start(env)
                began = time.monotonic()
                before = (totals.new, totals.duplicate)
                # Kill after a random number of acks; fault cycles kill themselves.
                goal = sum(before) + (rng.randint(20, 300) if not fault else 1000)
                proc = process.proc
                assert proc is not None
                await wait_for(
                    partial(cycle_over, totals, proc, goal, stop), 20_000 * MS
                )
                in_flight = totals.in_flight
                died = proc.poll() is not None
                if not died:
                    proc.send_signal(signal.SIGKILL)
                code = await process.wait(10)
                await asyncio.to_thread(process.close)
                assert code == -signal.SIGKILL, f"exit {code}:\n{process.output}"
                cycles.append(
                    Cycle(
                        number,
                        "fault" if fault else "sigkill",
                        totals.new - before[0],
                        totals.duplicate - before[1],
                        in_flight,
                        killer(process.output) if died else "test",
                        time.monotonic() - began,
                    )
                )
                print(row(cycles[-1]), flush=True)
                assert not totals.anomalies, totals.anomalies

            # The last restart: no faults; writers finish what is in flight, then stop.
            process = await start(base_env)
            settled = totals.new + totals.duplicate
            await wait_for(
                lambda: totals.new + totals.duplicate >= settled + WRITERS * STREAMS,
                20_000 * MS,
            )
            stop.set()
            async with asyncio.timeout(20_000 * MS):
                await asyncio.gather(*writers)

            print(table(cycles, totals))
            assert not totals.anomalies, totals.anomalies
            assert len(cycles) >= CYCLES

            for s in range(STREAMS):
                url = f"{target.url}/v1/stream/s{s}"
                records, tail = await read_all(client, url)
                generation = Offset.parse(tail).generation
                assert Offset.parse(tail).position == len(records)
                seen_offsets: set[str] = set()
                for w in range(WRITERS):
                    mine = [r["n"] for r in records if r["w"] == w]
                    done = acks[w, s]
                    # Exactly the acked seqs, once each, in order.
                    assert mine == list(range(len(done))), (s, w)
                    assert [a.seq for a in done] == list(range(len(done)))
                    for ack in done:
                        if ack.offset is None:
                            continue
                        offset = Offset.parse(ack.offset)
                        assert offset.generation == generation
                        assert ack.offset not in seen_offsets, (
                            f"offset reused: {ack.offset}"
                        )
                        seen_offsets.add(ack.offset)
                        assert records[offset.position - 1] == {"w": w, "n": ack.seq}
                first = min(seen_offsets) if seen_offsets else "-1"
                assert (await client.get(f"{url}?offset={first}")).status_code == 200
        finally:
            stop.set()
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
            for process in processes:
                await asyncio.to_thread(process.close)
