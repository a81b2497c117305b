"""Benchmark the session layer over WebSocket: token fan-out, many sessions, replay.

Usage::

    .venv/bin/python bench/sessions.py [--quick] [--only T,M,R] [--no-write]

Workloads (issue 3 point 13; see ``bench/README.md``):

* **T**, token fan-out: one agent keeps at most 64 (then 8) publishes
  unanswered into one session with 100 WebSocket subscribers;
* **M**, many sessions: N sessions, each streaming 20 deltas/s to 2
  subscribers; N steps up until p99 passes 25 ms;
* **R**, compact replay of 10,000 deltas in 100 messages.

A fresh server (``threadline serve``, SQLite, auth on) is started for every
workload, pinned to core 0; this process, the load generator, pins itself to
core 1. Prints the report and writes it to ``docs/benchmarks-sessions.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from common import Result
from replay import ReplayResult, run_replay, run_replay_in_process
from run import background_load
from servers import ROOT, SERVER_CPU, ServerSpec, kill_all, ours_available, running
from session_report import Settings, render
from session_runs import ManyResult, m_plan, run_fanout, run_many
from wsload import SECRET

WORKLOADS = ("T", "M", "R")
GEN_CPU = 1
SERVER_CMD = (
    "{root}/.venv/bin/threadline serve --store sqlite:///{tmpdir}/bench.db"
    f" --secret {SECRET} --host 127.0.0.1 --port {{port}}"
)
CEILING_CMD = (
    "{root}/.venv/bin/uvicorn --app-dir {bench} ws_noop_app:app --loop uvloop"
    " --http httptools --ws websockets-sansio --host 127.0.0.1 --port {port}"
    " --log-level warning"
)
"""M's ceiling: ``bench/ws_noop_app.py``, which relays the same frames and keeps
nothing (no auth, validation, storage or fsync)."""
FULL = Settings(
    t_warmup=2.0,
    t_duration=10.0,
    t_windows=(64, 32, 24, 16, 8),
    m_plan=tuple(m_plan(quick=False)),
    m_settle=1.0,
    m_duration=5.0,
    m_refine=2,
    r_runs=50,
)
QUICK = Settings(
    t_warmup=0.5,
    t_duration=3.0,
    t_windows=(64, 16, 8),
    m_plan=tuple(m_plan(quick=True)),
    m_settle=0.5,
    m_duration=2.0,
    m_refine=0,
    r_runs=10,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (about 1 minute)")
    p.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="comma-separated workloads out of T,M,R (default: all)",
    )
    p.add_argument(
        "--windows",
        default="",
        help="T's numbers of publishes kept unanswered, comma-separated"
        " (default: 64,32,16,8)",
    )
    p.add_argument(
        "--server-cmd",
        default=SERVER_CMD,
        help="command template for the server; placeholders {port} {tmpdir}"
        " {python} {root} {bench}; it must accept tokens signed with the"
        " benchmark's secret (default: %(default)s)",
    )
    p.add_argument(
        "--output",
        default=str(ROOT / "docs" / "benchmarks-sessions.md"),
        help="where to write the report (default: %(default)s)",
    )
    p.add_argument("--no-write", action="store_true", help="only print the report")
    args = p.parse_args(argv)
    args.only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(args.only) - set(WORKLOADS))
    if unknown:
        p.error(f"unknown workloads: {', '.join(unknown)}")
    return args


def _pin_generator() -> None:
    """Pin this process (the load generator) to core 1."""
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores; not pinning", file=sys.stderr)
        return
    os.sched_setaffinity(0, {GEN_CPU})


def _on_sigterm(workdir: Path) -> None:
    """On SIGTERM/SIGHUP: kill the servers, remove the temp dir, exit at once."""

    def handler(signum: int, _frame: object) -> None:
        kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


_SPEED_LOOP = "import time\nt=time.perf_counter()\nfor i in range(3_000_000): pass\n"
_SPEED_LOOP += "print((time.perf_counter()-t)*1000)"


def cpu_speed() -> float:
    """Milliseconds a 3M-iteration Python loop takes on the server's core.

    This virtual machine's cores run at a speed that drifts over minutes (by
    up to 2× with nothing running inside it); the report shows this next to
    each workload so that runs can be compared.
    """
    argv = ["taskset", "-c", SERVER_CPU, sys.executable, "-c", _SPEED_LOOP]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return float(out.stdout.strip() or "nan")


async def run_all(
    only: list[str],
    spec: ServerSpec,
    settings: Settings,
    workdir: Path,
    speeds: dict[str, float],
) -> tuple[list[Result], list[ManyResult], ReplayResult | None]:
    """Each workload against a fresh server; ``speeds`` gets a CPU check before each.

    M runs twice: against ``spec``, then against the WebSocket no-op ceiling.
    """
    fanout: list[Result] = []
    many: list[ManyResult] = []
    replay: ReplayResult | None = None
    if "T" in only:
        for window in settings.t_windows:
            print(f"T: window {window}", file=sys.stderr)
            speeds[f"T{window}"] = cpu_speed()
            with running(spec, workdir) as target:
                result = await run_fanout(
                    target, window, settings.t_warmup, settings.t_duration
                )
            fanout.append(result)
            print(
                f"  {result.metrics.get('delivered events/s', 0):,.0f} events/s,"
                f" p99 {result.metrics.get('p99 ms', 0):.2f} ms,"
                f" checks {'ok' if result.valid else result.problems[:3]}",
                file=sys.stderr,
            )
    if "M" in only:
        ceiling = ServerSpec("ws no-op ceiling", CEILING_CMD)
        for server, label in ((spec, "M"), (ceiling, "M ceiling")):
            print(f"{label}: ramp", file=sys.stderr)
            speeds[label] = cpu_speed()
            with running(server, workdir) as target:
                result = await run_many(
                    target,
                    list(settings.m_plan),
                    settings.m_settle,
                    settings.m_duration,
                    settings.m_refine,
                )
            many.append(result)
    if "R" in only:
        print("R: compact replay", file=sys.stderr)
        speeds["R"] = cpu_speed()
        with running(spec, workdir) as target:
            replay = await run_replay(target, settings.r_runs)
        replay.rows[:0] = run_replay_in_process(settings.r_runs)
    return fanout, many, replay


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if why := ours_available(args.server_cmd):
        print(f"cannot run the server: {why}", file=sys.stderr)
        return 2
    _pin_generator()
    idle = background_load()
    if any(v > 10 for v in idle.values()):
        print(f"warning: machine not idle: {idle}", file=sys.stderr)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="threadline-sessions-bench-"))
    _on_sigterm(workdir)
    settings = QUICK if args.quick else FULL
    if args.windows:
        windows = tuple(int(w) for w in args.windows.split(","))
        settings = dataclasses.replace(settings, t_windows=windows)
    spec = ServerSpec("ours", args.server_cmd)
    try:
        speeds: dict[str, float] = {}
        fanout, many, replay = uvloop.run(
            run_all(args.only, spec, settings, workdir, speeds)
        )
        speeds["end"] = cpu_speed()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = shlex.join([".venv/bin/python", "bench/sessions.py", *sys.argv[1:]])
    text = render(
        fanout,
        many,
        replay,
        command=command,
        server_command=spec.describe(),
        settings=settings,
        idle=idle,
        speeds=speeds,
        started=started,
        elapsed=time.perf_counter() - t0,
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
