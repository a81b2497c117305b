"""Benchmark Threadline against the Node reference server (and a no-op app).

Usage::

    python bench/run.py [--quick] [--only W1,L,...] [--ours-cmd CMD]

Runs every workload (W1, W2, L, F, C; the no-op ceiling goes with W1) against
each server, starting a fresh server pinned to core 0 for every workload while
this process (the load generator) is pinned to core 1. Prints the report and
writes it to ``docs/benchmarks.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop

from appends import run_appends
from catchup import run_catchup
from common import Result, Target
from live import run_fanout, run_latency
from report import NOOP, OURS, REFERENCE, render
from servers import (
    NOOP_CMD,
    OURS_CMD,
    REFERENCE_CMD,
    ROOT,
    ServerError,
    ServerSpec,
    ours_available,
    reference_available,
    running,
)

WORKLOADS = ("W1", "W2", "L", "F", "C")
GEN_CPU = 1


@dataclass(frozen=True, slots=True)
class Settings:
    """Durations and repetitions for one mode (full or quick)."""

    append_seconds: float
    warmup_seconds: float
    live_seconds: float
    fanout_seconds: float
    catchup_repeats: int


FULL = Settings(10.0, 2.0, 10.0, 10.0, 5)
QUICK = Settings(2.0, 0.5, 3.0, 2.0, 3)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (< 1 minute)")
    p.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="comma-separated workloads out of W1,W2,L,F,C (default: all)",
    )
    p.add_argument(
        "--ours-cmd",
        default=OURS_CMD,
        help="command template for our server; placeholders {port} {tmpdir}"
        " {python} {root} {bench} (default: %(default)s)",
    )
    p.add_argument(
        "--ours-url",
        default="",
        help="measure an already running server as 'ours' instead of starting one",
    )
    p.add_argument(
        "--reference-cmd", default=REFERENCE_CMD, help="command template (Node)"
    )
    p.add_argument("--no-ours", action="store_true", help="skip our server")
    p.add_argument("--no-reference", action="store_true", help="skip the reference")
    p.add_argument("--no-noop", action="store_true", help="skip the no-op ceiling")
    p.add_argument(
        "--output",
        default=str(ROOT / "docs" / "benchmarks.md"),
        help="where to write the report (default: %(default)s)",
    )
    p.add_argument("--no-write", action="store_true", help="only print the report")
    args = p.parse_args(argv)
    args.only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(args.only) - set(WORKLOADS))
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)}")
    return args


def _servers(args: argparse.Namespace) -> tuple[list[ServerSpec], dict[str, str]]:
    """The servers to run, and why any was skipped."""
    specs: list[ServerSpec] = []
    skipped: dict[str, str] = {}
    if args.no_ours:
        skipped[OURS] = "--no-ours"
    elif args.ours_url:
        specs.append(ServerSpec(OURS, url=args.ours_url))
    elif why := ours_available(args.ours_cmd):
        skipped[OURS] = why
    else:
        specs.append(ServerSpec(OURS, args.ours_cmd))
    if args.no_reference:
        skipped[REFERENCE] = "--no-reference"
    elif why := reference_available():
        skipped[REFERENCE] = why
    else:
        specs.append(ServerSpec(REFERENCE, args.reference_cmd))
    if not args.no_noop and "W1" in args.only:
        specs.append(ServerSpec(NOOP, NOOP_CMD))
    return specs, skipped


def _job(
    workload: str, settings: Settings, run_id: str, server: str
) -> Callable[[Target], Awaitable[Result]] | None:
    s = settings
    if workload in ("W1", "W2"):
        per_post = 1 if workload == "W1" else 50
        if server == NOOP and workload != "W1":
            return None
        return lambda t: run_appends(
            t, workload, run_id, per_post, s.append_seconds, s.warmup_seconds,
            validate=server != NOOP,
        )
    if server == NOOP:
        return None
    if workload == "L":
        return lambda t: run_latency(t, run_id, s.live_seconds)
    if workload == "F":
        return lambda t: run_fanout(t, run_id, s.fanout_seconds)
    return lambda t: run_catchup(t, run_id, s.catchup_repeats)


def _summary(r: Result) -> str:
    shown = ", ".join(f"{k} {v:,.2f}" for k, v in list(r.metrics.items())[:3])
    server = "" if r.server_cpu is None else f", server CPU {r.server_cpu:.0f}%"
    status = "ok" if r.valid else "CHECKS FAILED: " + "; ".join(r.problems[:3])
    return f"{shown}; gen CPU {r.gen_cpu:.0f}%{server}; {status}"


def run_all(
    args: argparse.Namespace, specs: list[ServerSpec], workdir: Path
) -> dict[str, dict[str, Result]]:
    """Every selected workload against every server, fresh server each time."""
    settings = QUICK if args.quick else FULL
    run_id = f"{int(time.time())}-{os.getpid()}"
    results: dict[str, dict[str, Result]] = {}
    for workload in args.only:
        for spec in specs:
            job = _job(workload, settings, run_id, spec.name)
            if job is None:
                continue
            print(f"[{workload}] {spec.name} ...", file=sys.stderr, flush=True)
            try:
                with running(spec, workdir) as target:
                    result = uvloop.run(job(target))
            except (ServerError, OSError, asyncio.TimeoutError, RuntimeError) as exc:
                result = Result(workload, spec.name, problems=[f"run failed: {exc}"])
            results.setdefault(workload, {})[spec.name] = result
            print(f"[{workload}] {spec.name}: {_summary(result)}", file=sys.stderr)
    return results


def _pin_generator() -> None:
    """Pin this process (the load generator) to core 1."""
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores; not pinning", file=sys.stderr)
        return
    os.sched_setaffinity(0, {GEN_CPU})


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _pin_generator()
    specs, skipped = _servers(args)
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="threadline-bench-"))
    try:
        results = run_all(args, specs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    text = render(
        results,
        command,
        {s.name: s.describe() for s in specs},
        skipped,
        started,
        time.perf_counter() - t0,
    )
    print(text)
    if not args.no_write:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
