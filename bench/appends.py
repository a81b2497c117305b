"""W1 / W2 / no-op: closed-loop appends on 64 keep-alive connections.

Each connection sends one pre-built POST at a time (1 or 50 records of
~256 B), cycling over 100 JSON streams created up front. Every acknowledged
append is counted per stream; afterwards a sample of the streams is read back
and must hold exactly the acknowledged number of records, so a server that
drops or duplicates writes cannot look fast.
"""

from __future__ import annotations

import asyncio
import time

from catchup import read_all
from common import (
    JSON_HEADERS,
    CpuMeter,
    Result,
    Target,
    json_batch,
    loads,
    make_record,
    percentile,
    stream_path,
)
from rawhttp import Client, HttpConnection, HttpError, build_request, connect

CONNECTIONS = 64
STREAMS = 100
VALIDATE_STREAMS = 10
STOP_TIMEOUT = 30.0  # for the requests in flight when the window ends


async def fetch_metrics(target: Target) -> dict[str, int] | None:
    """``GET /v1/metrics`` as a dict of counters, or None if unavailable."""
    client = Client(target.host, target.port)
    try:
        resp = await client.call("GET", "/v1/metrics")
        if resp.status != 200:
            return None
        data = loads(resp.body)
        keys = ("commits", "fsyncs", "appends", "records")
        return {k: int(data[k]) for k in keys} if isinstance(data, dict) else None
    except (HttpError, OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        client.close()


async def create_streams(target: Target, paths: list[str]) -> list[str]:
    """PUT each stream as ``application/json``; return problems."""
    client = Client(target.host, target.port)
    problems = []
    try:
        for path in paths:
            resp = await client.call("PUT", path, JSON_HEADERS)
            if resp.status not in (200, 201):
                problems.append(f"PUT {path} -> {resp.status}")
    finally:
        client.close()
    return problems


class _Load:
    """The shared state of one closed-loop run."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.acks = [0] * len(requests)
        self.errors: dict[str, int] = {}
        self.latencies: list[int] = []
        self.measuring = False
        self.stop = False

    async def worker(self, index: int, conn: HttpConnection) -> None:
        """Send requests back to back, cycling over the streams."""
        n = len(self.requests)
        slot = index % n
        clock = time.perf_counter_ns
        while not self.stop:
            t0 = clock()
            try:
                resp = await conn.request(self.requests[slot])
            except HttpError as exc:
                self.errors[str(exc)[:60]] = self.errors.get(str(exc)[:60], 0) + 1
                return
            if self.measuring:
                self.latencies.append(clock() - t0)
            if resp.status in (200, 204):
                self.acks[slot] += 1
            else:
                key = f"status {resp.status}"
                self.errors[key] = self.errors.get(key, 0) + 1
            slot = (slot + 1) % n


async def run_appends(
    target: Target,
    workload: str,
    run_id: str,
    records_per_post: int,
    duration: float,
    warmup: float,
    validate: bool = True,
) -> Result:
    """Run one closed-loop append workload and return its result."""
    result = Result(workload, target.name)
    paths = [stream_path(run_id, workload, i) for i in range(STREAMS)]
    if validate:
        result.problems += await create_streams(target, paths)
        if result.problems:
            return result
    body = json_batch([make_record(i) for i in range(records_per_post)])
    load = _Load(
        [build_request("POST", p, target.authority, JSON_HEADERS, body) for p in paths]
    )
    before = await fetch_metrics(target) if validate else None
    conns = [
        await connect(target.host, target.port, want_headers=False)
        for _ in range(CONNECTIONS)
    ]
    tasks = [asyncio.create_task(load.worker(i, c)) for i, c in enumerate(conns)]
    try:
        await asyncio.sleep(warmup)
        meter = CpuMeter(target.pid)
        done_before = sum(load.acks)
        load.measuring = True
        meter.start()
        await asyncio.sleep(duration)
        meter.stop()
        done = sum(load.acks) - done_before
        load.measuring = False
        load.stop = True
        await asyncio.wait_for(asyncio.gather(*tasks), STOP_TIMEOUT)
    finally:
        for conn in conns:
            conn.close()
    lat = sorted(load.latencies)
    result.metrics["requests/s"] = done / meter.wall
    result.metrics["records/s"] = done * records_per_post / meter.wall
    result.metrics["p50 ms"] = percentile(lat, 50) / 1e6
    result.metrics["p99 ms"] = percentile(lat, 99) / 1e6
    meter.fill(result)
    result.problems += [f"{n}x {err}" for err, n in load.errors.items()]
    if validate:
        after = await fetch_metrics(target)
        _add_commit_stats(result, before, after)
        result.problems += await _validate(target, paths, load.acks, records_per_post)
    return result


def _add_commit_stats(
    result: Result, before: dict[str, int] | None, after: dict[str, int] | None
) -> None:
    """Per-commit ratios from the deltas of the server's own counters."""
    keys = ("fsyncs/commit", "appends/commit", "records/commit")
    commits = after["commits"] - before["commits"] if before and after else 0
    if before is None or after is None or commits <= 0:
        for key in keys:
            result.extra[key] = "n/a"
        return
    for key in keys:
        counter = key.split("/")[0]
        value = (after[counter] - before[counter]) / commits
        result.extra[key] = f"{value:.2f}" if counter == "fsyncs" else f"{value:.1f}"


async def _validate(
    target: Target, paths: list[str], acks: list[int], records_per_post: int
) -> list[str]:
    """Read back a sample of streams; each must hold exactly what was acked."""
    problems = []
    step = max(1, len(paths) // VALIDATE_STREAMS)
    for i in range(0, len(paths), step):
        got = await read_all(target, paths[i])
        want = acks[i] * records_per_post
        if got.records != want:
            problems.append(f"{paths[i]}: read {got.records} records, acked {want}")
        problems += got.problems
    return problems
