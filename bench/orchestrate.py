"""Running the workloads against the servers, in interleaved rounds.

For each workload every server is started fresh (pinned to core 0) and kept
up for that workload only. The closed-loop append workloads (W1, W2) are
measured in several short rounds, alternating the server order each round,
and each metric is the median over the rounds: on a shared or virtualised
machine this is much steadier than one long run per server. The live and
catch-up workloads run once per server (catch-up repeats its read and takes
the median itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

import uvloop
from appends import run_appends
from catchup import run_catchup
from common import Result, Target
from live import run_fanout, run_latency
from report import NOOP, NOOP_RAW, OURS_MEMORY
from servers import ServerSpec, dead, running

JOB_TIMEOUT = 180.0  # a hung server fails its job instead of the whole run
Job = Callable[[Target], Coroutine[None, None, Result]]


@dataclass(frozen=True, slots=True)
class Settings:
    """Durations and repetitions for one mode (full or quick)."""

    rounds: int  # W1/W2 rounds per server
    append_seconds: float  # W1/W2 measured window per round
    warmup_seconds: float  # before the first round's window
    rewarm_seconds: float  # before later rounds' windows
    live_seconds: float  # L writer duration
    fanout_seconds: float  # F window
    catchup_repeats: int  # C full reads

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"W1/W2: {self.rounds} interleaved round(s) of {self.append_seconds:g} s"
            f" per server (after {self.warmup_seconds:g} s warm-up), median;"
            f" L: {self.live_seconds:g} s; F: {self.fanout_seconds:g} s window;"
            f" C: median of {self.catchup_repeats} reads"
        )


FULL = Settings(3, 4.0, 2.0, 0.5, 10.0, 10.0, 5)
QUICK = Settings(1, 2.0, 0.5, 0.5, 3.0, 2.0, 3)


def _job(
    workload: str, settings: Settings, run_id: str, server: str, first: bool
) -> Job | None:
    """The coroutine factory running ``workload`` against ``server``, if any."""
    s = settings
    ceiling = server in (NOOP, NOOP_RAW)
    if workload in ("W1", "W2"):
        if ceiling and workload != "W1":
            return None
        per_post = 1 if workload == "W1" else 50
        warmup = s.warmup_seconds if first else s.rewarm_seconds
        return lambda t: run_appends(
            t,
            workload,
            run_id,
            per_post,
            s.append_seconds,
            warmup,
            validate=not ceiling,
        )
    if ceiling or server == OURS_MEMORY:
        return None
    if workload == "L":
        return lambda t: run_latency(t, run_id, s.live_seconds)
    if workload == "F":
        return lambda t: run_fanout(t, run_id, s.fanout_seconds)
    return lambda t: run_catchup(t, run_id, s.catchup_repeats)


def merge(rounds: list[Result]) -> Result:
    """Median of each metric over rounds; CPU figures averaged; all problems."""
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    out = Result(first.workload, first.server)
    keys = [k for k in first.metrics if all(k in r.metrics for r in rounds)]
    for key in keys:
        out.metrics[key] = statistics.median(r.metrics[key] for r in rounds)
    for r in rounds:
        for key, value in r.extra.items():
            if value != "n/a" or key not in out.extra:
                out.extra[key] = value
    headline = "records/s" if first.workload == "W2" else "requests/s"
    if all(headline in r.metrics for r in rounds):
        out.extra[f"{headline} per round"] = " / ".join(
            f"{r.metrics[headline]:,.0f}" for r in rounds
        )
    for i, r in enumerate(rounds, 1):
        out.problems += [f"round {i}: {p}" for p in r.problems]
    out.gen_cpu = statistics.fmean(r.gen_cpu for r in rounds)
    server = [r.server_cpu for r in rounds if r.server_cpu is not None]
    out.server_cpu = statistics.fmean(server) if server else None
    for core in first.core_busy:
        values = [r.core_busy[core] for r in rounds if core in r.core_busy]
        out.core_busy[core] = statistics.fmean(values)
    return out


def _summary(r: Result) -> str:
    shown = ", ".join(f"{k} {v:,.2f}" for k, v in list(r.metrics.items())[:3])
    server = "" if r.server_cpu is None else f", server CPU {r.server_cpu:.0f}%"
    status = "ok" if r.valid else "CHECKS FAILED: " + "; ".join(r.problems[:3])
    return f"{shown}; gen CPU {r.gen_cpu:.0f}%{server}; {status}"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run_one(job: Job, target: Target, workload: str) -> Result:
    try:
        result: Result = uvloop.run(asyncio.wait_for(job(target), JOB_TIMEOUT))
    except Exception as exc:  # one broken server must not end the run
        result = Result(workload, target.name)
        result.problems.append(f"run failed: {type(exc).__name__}: {exc}")
    if why := dead(target):
        result.problems.append(why)
    return result


def run_workload(
    workload: str,
    specs: list[ServerSpec],
    settings: Settings,
    run_id: str,
    workdir: Path,
) -> dict[str, Result]:
    """One workload against every applicable server."""
    wanted = [
        s for s in specs if _job(workload, settings, run_id, s.name, True) is not None
    ]
    rounds = settings.rounds if workload in ("W1", "W2") else 1
    done: dict[str, list[Result]] = {}
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        for spec in wanted:
            try:
                targets[spec.name] = stack.enter_context(running(spec, workdir))
            except Exception as exc:
                failed = Result(workload, spec.name, problems=[f"start failed: {exc}"])
                done[spec.name] = [failed]
                _log(f"[{workload}] {spec.name}: {failed.problems[0]}")
        for index in range(rounds):
            order = list(targets) if index % 2 == 0 else list(reversed(targets))
            for name in order:
                job = _job(workload, settings, f"{run_id}r{index}", name, index == 0)
                assert job is not None
                _log(f"[{workload}] {name} round {index + 1}/{rounds} ...")
                result = _run_one(job, targets[name], workload)
                done.setdefault(name, []).append(result)
                _log(f"[{workload}] {name}: {_summary(result)}")
    return {name: merge(results) for name, results in done.items()}


def run_all(
    workloads: list[str], specs: list[ServerSpec], settings: Settings, workdir: Path
) -> dict[str, dict[str, Result]]:
    """Every selected workload against every server."""
    run_id = f"{int(time.time())}-{os.getpid()}"
    return {w: run_workload(w, specs, settings, run_id, workdir) for w in workloads}
