"""L (live SSE latency) and F (SSE fan-out throughput).

L: 100 SSE readers on one stream; one writer appends one record every 5 ms
(200 records/s), each record carrying its send time. Latency is measured
from just before the POST is written to the arrival of the bytes at each
reader, and every reader must end up with every record exactly once.

F: 50 SSE readers on one stream; one writer appends single records as fast
as it can with a few requests in flight. The result is records delivered per
second, summed over the readers, within a fixed window; afterwards every
reader must catch up to exactly the acknowledged count.
"""

from __future__ import annotations

import asyncio
import time

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
from rawhttp import Client, HttpError, build_request, connect
from sse import SseReader, close_readers, drain, open_readers

L_READERS = 100
L_RATE = 200.0
F_READERS = 50
F_IN_FLIGHT = 4
DRAIN_SECONDS = 5.0


async def _create(target: Target, path: str) -> None:
    client = Client(target.host, target.port)
    try:
        resp = await client.call("PUT", path, JSON_HEADERS)
    finally:
        client.close()
    if resp.status not in (200, 201):
        raise HttpError(f"PUT {path} -> {resp.status}")


async def _paced_writer(
    target: Target, path: str, rate: float, duration: float
) -> tuple[int, list[str]]:
    """Append one timestamped record every ``1/rate`` s; return (acked, problems)."""
    client = Client(target.host, target.port)
    problems: list[str] = []
    acked = 0
    interval = 1.0 / rate
    total = int(duration * rate)
    start = time.perf_counter()
    try:
        for seq in range(total):
            delay = start + seq * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json_batch([make_record(seq, time.perf_counter_ns())])
            resp = await client.call("POST", path, JSON_HEADERS, body)
            if resp.status in (200, 204):
                acked += 1
            else:
                problems.append(f"append {seq} -> {resp.status}")
    finally:
        client.close()
    return acked, problems


def _latency_report(readers: list[SseReader], total: int, result: Result) -> None:
    """Decode what the readers got; latencies, missing and duplicate records."""
    latencies: list[int] = []
    missing = duplicates = 0
    for reader in readers:
        seen = bytearray(total)
        for arrived, payload in reader.payloads:
            for record in loads(payload):
                seq = record["seq"]
                if not 0 <= seq < total:
                    result.problems.append(f"unexpected record seq={seq}")
                    continue
                if seen[seq]:
                    duplicates += 1
                    continue
                seen[seq] = 1
                latencies.append(arrived - record["t"])
        missing += total - sum(seen)
    latencies.sort()
    result.metrics["p50 ms"] = percentile(latencies, 50) / 1e6
    result.metrics["p99 ms"] = percentile(latencies, 99) / 1e6
    result.metrics["max ms"] = (latencies[-1] if latencies else 0) / 1e6
    result.metrics["missing"] = missing
    result.extra["records x readers"] = f"{total} x {len(readers)}"
    if missing:
        result.problems.append(f"{missing} records missing across readers")
    if duplicates:
        result.problems.append(f"{duplicates} duplicate deliveries")


async def run_latency(target: Target, run_id: str, duration: float) -> Result:
    """Workload L."""
    result = Result("L", target.name)
    path = stream_path(run_id, "l", 0)
    await _create(target, path)
    readers = await open_readers(target, path, L_READERS, timed=True)
    try:
        meter = CpuMeter(target.pid)
        meter.start()
        acked, problems = await _paced_writer(target, path, L_RATE, duration)
        meter.stop()
        await drain(readers, acked, DRAIN_SECONDS)
    finally:
        await close_readers(readers)
    result.problems += problems
    for reader in readers:
        result.problems += reader.problems
    reconnects = sum(r.reconnects for r in readers)
    if reconnects:
        result.extra["reconnects"] = str(reconnects)
    _latency_report(readers, int(duration * L_RATE), result)
    result.metrics["writer appends/s"] = acked / meter.wall
    meter.fill(result)
    return result


class _FastWriter:
    """Appends single records on a few connections as fast as acked."""

    def __init__(self, target: Target, path: str) -> None:
        self.target = target
        self.path = path
        self.acked = 0
        self.problems: list[str] = []
        self.stop = False

    async def run(self) -> None:
        """Keep ``F_IN_FLIGHT`` requests in flight until stopped."""
        await asyncio.gather(*(self._loop(i) for i in range(F_IN_FLIGHT)))

    async def _loop(self, index: int) -> None:
        conn = await connect(self.target.host, self.target.port, want_headers=False)
        raw = build_request(
            "POST",
            self.path,
            self.target.authority,
            JSON_HEADERS,
            json_batch([make_record(index)]),
        )
        try:
            while not self.stop:
                resp = await conn.request(raw)
                if resp.status in (200, 204):
                    self.acked += 1
                elif len(self.problems) < 5:
                    self.problems.append(f"append -> {resp.status}")
        except HttpError as exc:
            self.problems.append(f"writer: {exc}")
        finally:
            conn.close()


async def run_fanout(target: Target, run_id: str, duration: float) -> Result:
    """Workload F."""
    result = Result("F", target.name)
    path = stream_path(run_id, "f", 0)
    await _create(target, path)
    readers = await open_readers(target, path, F_READERS, timed=False)
    writer = _FastWriter(target, path)
    try:
        meter = CpuMeter(target.pid)
        meter.start()
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(duration)
        delivered = sum(r.count for r in readers)
        acked_in_window = writer.acked
        meter.stop()
        writer.stop = True
        await asyncio.wait_for(task, 30.0)
        await drain(readers, writer.acked, DRAIN_SECONDS)
    finally:
        writer.stop = True
        await close_readers(readers)
    result.metrics["delivered records/s"] = delivered / meter.wall
    result.metrics["writer appends/s"] = acked_in_window / meter.wall
    meter.fill(result)
    result.problems += writer.problems
    short = sum(max(0, writer.acked - r.count) for r in readers)
    extra = sum(max(0, r.count - writer.acked) for r in readers)
    result.metrics["missing"] = short
    if short:
        result.problems.append(
            f"{short} records not delivered {DRAIN_SECONDS:.0f}s after the writer"
            " stopped"
        )
    if extra:
        result.problems.append(f"{extra} records delivered more than once")
    for reader in readers:
        result.problems += reader.problems
    reconnects = sum(r.reconnects for r in readers)
    if reconnects:
        result.extra["reconnects"] = str(reconnects)
    return result
