"""Benchmark Threadline against the Node reference server (and a no-op app).

Usage::

    python bench/run.py [--quick] [--only W1,L,...] [--ours-cmd CMD]

Runs every workload (W1, W2, L, F, C; the no-op ceiling goes with W1) against
each server, starting fresh servers pinned to core 0 for every workload while
this process (the load generator) is pinned to core 1. Prints the report and
writes it to ``docs/benchmarks.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import core_times
from orchestrate import FULL, QUICK, run_all
from report import NOOP, NOOP_RAW, OURS, OURS_MEMORY, REFERENCE, render
from servers import (
    NOOP_CMD,
    OURS_CMD,
    OURS_MEMORY_CMD,
    RAW_NOOP_CMD,
    REFERENCE_CMD,
    ROOT,
    ServerSpec,
    kill_all,
    ours_available,
    reference_available,
)

WORKLOADS = ("W1", "W2", "L", "F", "C")
GEN_CPU = 1


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
    p.add_argument("--no-noop", action="store_true", help="skip the no-op ceilings")
    p.add_argument(
        "--no-memory",
        action="store_true",
        help="skip our server on the memory store (W1/W2 without durability)",
    )
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
    wants_appends = "W1" in args.only or "W2" in args.only
    if not (args.no_memory or args.no_ours or args.ours_url) and wants_appends:
        specs.append(ServerSpec(OURS_MEMORY, OURS_MEMORY_CMD))
    if not args.no_noop and "W1" in args.only:
        specs.append(ServerSpec(NOOP, NOOP_CMD))
        specs.append(ServerSpec(NOOP_RAW, RAW_NOOP_CMD))
    return specs, skipped


def _pin_generator() -> None:
    """Pin this process (the load generator) to core 1."""
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores; not pinning", file=sys.stderr)
        return
    os.sched_setaffinity(0, {GEN_CPU})


def _on_sigterm(workdir: Path) -> None:
    """On SIGTERM/SIGHUP: kill the servers, remove the temp dir, exit at once.

    (An exception raised from a signal handler could be swallowed by an
    asyncio callback, so cleanup happens in the handler itself.)
    """

    def handler(signum: int, _frame: object) -> None:
        kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def background_load(seconds: float = 1.0) -> dict[int, float]:
    """Per-core busy % over ``seconds`` before anything is started."""
    before = core_times()
    time.sleep(seconds)
    after = core_times()
    out = {}
    for core, (busy, total) in after.items():
        busy0, total0 = before.get(core, (0, 0))
        if total > total0:
            out[core] = 100 * (busy - busy0) / (total - total0)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _pin_generator()
    specs, skipped = _servers(args)
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    idle = background_load()
    if any(v > 10 for v in idle.values()):
        print(f"warning: machine not idle: {idle}", file=sys.stderr)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="threadline-bench-"))
    _on_sigterm(workdir)
    settings = QUICK if args.quick else FULL
    try:
        results = run_all(args.only, specs, settings, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    text = render(
        results,
        command,
        {s.name: s.describe() for s in specs},
        skipped,
        settings.describe(),
        idle,
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
