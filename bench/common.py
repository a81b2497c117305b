"""Shared pieces of the benchmark: targets, records, results, measuring tools."""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

RECORD_SIZE = 256
# Every benchmark record contains this marker exactly once, and nothing else
# the servers send does, so counting it in a body counts records cheaply.
MARKER = b'"seq":'
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class Target:
    """Where a workload sends its requests, plus how to observe the server."""

    name: str
    host: str
    port: int
    pid: int | None = None  # for server CPU accounting; None if not ours to watch
    log: str = ""  # the server's log file, if we started it

    @property
    def authority(self) -> str:
        """``host:port`` for the Host header."""
        return f"{self.host}:{self.port}"


@dataclass
class Result:
    """One workload against one server."""

    workload: str
    server: str
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    gen_cpu: float = 0.0  # load generator CPU, % of one core
    server_cpu: float | None = None  # server process CPU, % of one core
    core_busy: dict[int, float] = field(default_factory=dict)  # % per core, all

    @property
    def valid(self) -> bool:
        """True when the correctness checks passed."""
        return not self.problems


def make_record(seq: int, t_ns: int = 0, size: int = RECORD_SIZE) -> bytes:
    """A JSON object of exactly ``size`` bytes carrying ``seq`` and ``t``."""
    head = b'{"seq":%d,"t":%d,"pad":"' % (seq, t_ns)
    return head + b"x" * (size - len(head) - 2) + b'"}'


def json_batch(records: list[bytes]) -> bytes:
    """The POST body for ``records``: a JSON array of them."""
    return b"[" + b",".join(records) + b"]"


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 if empty)."""
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def median(values: list[float]) -> float:
    """Median, 0 for an empty list."""
    return statistics.median(values) if values else 0.0


def stream_path(run_id: str, workload: str, index: int) -> str:
    """A unique stream URL path for this run."""
    return f"/v1/stream/bench-{run_id}-{workload.lower()}-{index}"


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user+system, all threads) of ``pid`` and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    except OSError:
        return [pid]
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies from ``/proc/stat``, all processes.

    Busy includes interrupt and softirq time (loopback TCP work is largely
    softirq) and steal; idle and iowait are not busy.
    """
    out = {}
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *values = line.split()
                ticks = [int(v) for v in values[:8]]
                total = sum(ticks)
                out[int(name[3:])] = (total - ticks[3] - ticks[4], total)
    except (OSError, ValueError):
        pass
    return out


class CpuMeter:
    """Wall time, CPU of this process and of the server, core load, for a window.

    Percentages are of one core. ``core_busy`` is what the whole machine did
    on each core (so it exposes interference and softirq work too).
    """

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.wall = 0.0
        self.gen_cpu = 0.0
        self.server_cpu: float | None = None
        self.core_busy: dict[int, float] = {}
        self._t0 = 0.0
        self._r0 = 0.0
        self._s0 = 0.0
        self._c0: dict[int, tuple[int, int]] = {}

    def start(self) -> None:
        """Begin the window."""
        self._t0 = time.perf_counter()
        self._r0 = _self_cpu()
        self._c0 = core_times()
        if self.server_pid is not None:
            self._s0 = proc_cpu_seconds(self.server_pid)

    def stop(self) -> None:
        """End the window and compute percentages of one core."""
        self.wall = time.perf_counter() - self._t0
        self.gen_cpu = 100 * (_self_cpu() - self._r0) / self.wall
        if self.server_pid is not None:
            used = proc_cpu_seconds(self.server_pid) - self._s0
            self.server_cpu = 100 * used / self.wall
        for core, (busy, total) in core_times().items():
            busy0, total0 = self._c0.get(core, (0, 0))
            if total > total0:
                self.core_busy[core] = 100 * (busy - busy0) / (total - total0)

    def fill(self, result: Result) -> None:
        """Copy the measurements into ``result``."""
        result.gen_cpu = self.gen_cpu
        result.server_cpu = self.server_cpu
        result.core_busy = dict(self.core_busy)


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def loads(data: bytes) -> Any:
    """``orjson.loads`` (re-exported so modules share one JSON choice)."""
    return orjson.loads(data)
