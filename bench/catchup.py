"""C: catch-up reads, and the read-back used to validate the other workloads.

A catch-up read starts at offset ``-1`` and follows ``Stream-Next-Offset``
until a response carries ``Stream-Up-To-Date: true``. Records are counted by
their marker, so the check costs one ``bytes.count`` per response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import quote

from common import (
    JSON_HEADERS,
    MARKER,
    CpuMeter,
    Result,
    Target,
    json_batch,
    make_record,
    median,
    stream_path,
)
from rawhttp import Client

CATCHUP_RECORDS = 10_000
POPULATE_BATCH = 100
MAX_REQUESTS = 100_000


@dataclass(slots=True)
class ReadStats:
    """What one full catch-up read saw."""

    records: int = 0
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


async def read_all(
    target: Target, path: str, client: Client | None = None
) -> ReadStats:
    """Read ``path`` from the start until up to date, counting records."""
    own = client is None
    client = client or Client(target.host, target.port)
    stats = ReadStats()
    offset = "-1"
    t0 = time.perf_counter()
    try:
        while stats.requests < MAX_REQUESTS:
            resp = await client.call("GET", f"{path}?offset={quote(offset, safe='')}")
            stats.requests += 1
            if resp.status != 200:
                stats.problems.append(f"GET {path} offset={offset} -> {resp.status}")
                break
            stats.bytes += len(resp.body)
            stats.records += resp.body.count(MARKER)
            next_offset = resp.headers.get("stream-next-offset")
            if next_offset is None:
                stats.problems.append(f"GET {path}: no Stream-Next-Offset")
                break
            if resp.headers.get("stream-up-to-date", "").lower() == "true":
                break
            if next_offset == offset:
                stats.problems.append(f"GET {path}: offset did not advance")
                break
            offset = next_offset
        else:
            stats.problems.append(f"GET {path}: not up to date after {MAX_REQUESTS}")
    finally:
        stats.seconds = time.perf_counter() - t0
        if own:
            client.close()
    return stats


async def run_catchup(target: Target, run_id: str, repeats: int) -> Result:
    """Populate one stream with 10,000 records, then time full reads of it."""
    result = Result("C", target.name)
    path = stream_path(run_id, "c", 0)
    client = Client(target.host, target.port)
    try:
        resp = await client.call("PUT", path, JSON_HEADERS)
        if resp.status not in (200, 201):
            result.problems.append(f"PUT {path} -> {resp.status}")
            return result
        for start in range(0, CATCHUP_RECORDS, POPULATE_BATCH):
            body = json_batch([make_record(start + i) for i in range(POPULATE_BATCH)])
            resp = await client.call("POST", path, JSON_HEADERS, body)
            if resp.status not in (200, 204):
                result.problems.append(f"POST {path} -> {resp.status}")
                return result
        reads: list[ReadStats] = []
        meter = CpuMeter(target.pid)
        meter.start()
        for _ in range(repeats):
            reads.append(await read_all(target, path, client))
        meter.stop()
    finally:
        client.close()
    for stats in reads:
        result.problems += stats.problems
        if stats.records != CATCHUP_RECORDS:
            result.problems.append(f"read {stats.records} of {CATCHUP_RECORDS} records")
    seconds = median([s.seconds for s in reads])
    size = reads[0].bytes
    result.metrics["median ms"] = seconds * 1e3
    result.metrics["MB/s"] = size / 1e6 / seconds if seconds else 0.0
    result.extra["MB read"] = f"{size / 1e6:.2f}"
    result.extra["requests/read"] = str(reads[0].requests)
    meter.fill(result)
    return result
