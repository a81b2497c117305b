"""Turning results into tables, target verdicts and ``docs/benchmarks.md``."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import Result

OURS, REFERENCE, NOOP = "ours", "reference", "noop"
NOOP_RAW = "noop-raw"  # httptools without an ASGI server
OURS_MEMORY = "ours-memory"  # our server on the memory store (not durable)
GEN_BOUND = 90.0
INTEGER_METRICS = {"missing"}  # load generator CPU % above which a number is suspect

TITLES = {
    "W1": "W1: appends, 1 record per POST (64 connections, 100 streams)",
    "W2": "W2: appends, 50 records per POST (64 connections, 100 streams)",
    "L": "L: live SSE latency (1 writer at 200 records/s, 100 SSE readers)",
    "F": "F: SSE fan-out (1 writer, 4 in flight, 50 SSE readers)",
    "C": "C: catch-up read of 10,000 records (~2.6 MB) from offset -1",
}
# (metric key, label); a label ending in "(lower is better)" flips nothing,
# it only tells the reader which way the ratio should go.
ROWS: dict[str, list[tuple[str, str]]] = {
    "W1": [
        ("requests/s", "appends/s"),
        ("p50 ms", "p50 latency ms (lower is better)"),
        ("p99 ms", "p99 latency ms (lower is better)"),
    ],
    "W2": [
        ("records/s", "records/s"),
        ("requests/s", "POSTs/s"),
        ("p50 ms", "p50 latency ms (lower is better)"),
        ("p99 ms", "p99 latency ms (lower is better)"),
    ],
    "L": [
        ("p50 ms", "delivery p50 ms (lower is better)"),
        ("p99 ms", "delivery p99 ms (lower is better)"),
        ("max ms", "delivery max ms (lower is better)"),
        ("missing", "records missing at a reader"),
        ("writer appends/s", "writer appends/s"),
    ],
    "F": [
        ("delivered records/s", "delivered records/s (sum of readers)"),
        ("writer appends/s", "writer appends/s"),
        ("missing", "records missing after drain"),
    ],
    "C": [
        ("MB/s", "MB/s"),
        ("median ms", "median time ms (lower is better)"),
    ],
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target, what was observed, and whether it was met."""

    target: str
    observed: str
    status: str  # "met", "missed" or "n/a"


def _fmt(value: float | None, integer: bool = False) -> str:
    if value is None:
        return "–"
    if integer or value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True
) -> list[str]:
    """A Markdown table padded so that it also reads well in a terminal.

    The first column is left-aligned; the others are right-aligned when
    ``numeric``.
    """
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = [numeric and i > 0 for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + (":" if r else "-")
            for w, r in zip(widths, right, strict=True)
        )
        + "|"
    )
    return [line(header), rule, *(line(r) for r in rows)]


def _cpu(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def workload_table(name: str, results: dict[str, Result]) -> list[str]:
    """The table of one workload: ours / reference / ratio (and extras)."""
    ours, ref = results.get(OURS), results.get(REFERENCE)
    header = ["metric", OURS, REFERENCE, "ours / ref"]
    rows = []
    for key, label in ROWS[name]:
        a = ours.metrics.get(key) if ours else None
        b = ref.metrics.get(key) if ref else None
        ratio = f"{a / b:.2f}×" if a is not None and b else "–"
        integer = key in INTEGER_METRICS
        rows.append([label, _fmt(a, integer), _fmt(b, integer), ratio])
    extras = sorted({k for r in (ours, ref) if r for k in r.extra})
    for key in extras:
        rows.append(
            [
                key,
                ours.extra.get(key, "–") if ours else "–",
                ref.extra.get(key, "–") if ref else "–",
                "",
            ]
        )
    rows.append(
        [
            "server CPU (core 0)",
            _cpu(ours.server_cpu if ours else None),
            _cpu(ref.server_cpu if ref else None),
            "",
        ]
    )
    rows.append(
        [
            "load generator CPU (core 1)",
            _cpu(ours.gen_cpu if ours else None),
            _cpu(ref.gen_cpu if ref else None),
            "",
        ]
    )
    for core, label in (
        (0, "core 0 busy (all processes)"),
        (1, "core 1 busy (all processes)"),
    ):
        rows.append(
            [label, _busy(ours, core), _busy(ref, core), ""],
        )
    rows.append(["checks", _valid(ours), _valid(ref), ""])
    return _table(header, rows)


def _busy(result: Result | None, core: int) -> str:
    if result is None or core not in result.core_busy:
        return "–"
    return f"{result.core_busy[core]:.0f}%"


def _valid(result: Result | None) -> str:
    if result is None:
        return "not run"
    return "ok" if result.valid else "FAILED"


def noop_lines(results: dict[str, Result]) -> list[str]:
    """The no-op ceiling and each server's share of it."""
    noop = results.get(NOOP)
    if noop is None:
        return []
    ceiling = noop.metrics.get("requests/s", 0.0)
    header = ["server", "W1 requests/s", "share of no-op ceiling", "p99 ms"]
    rows = []
    for name in (NOOP_RAW, NOOP, OURS_MEMORY, OURS, REFERENCE):
        r = results.get(name)
        if r is None:
            continue
        rate = r.metrics.get("requests/s", 0.0)
        share = f"{100 * rate / ceiling:.0f}%" if ceiling else "–"
        rows.append([name, _fmt(rate), share, _fmt(r.metrics.get("p99 ms"))])
    gen = f"{noop.gen_cpu:.0f}%"
    lines = [
        *_table(header, rows),
        "",
        f"No-op run: load generator CPU {gen}, server CPU {_cpu(noop.server_cpu)}.",
    ]
    raw = results.get(NOOP_RAW)
    if raw is not None:
        lines[-1] += (
            f" Raw httptools run: load generator CPU {raw.gen_cpu:.0f}%"
            f", server CPU {_cpu(raw.server_cpu)}"
            + (
                " (the generator was the bottleneck: a lower bound)."
                if raw.gen_cpu >= GEN_BOUND
                else "."
            )
        )
    return lines


def memory_lines(workload: str, results: dict[str, Result]) -> list[str]:
    """Ours on the memory store next to ours on SQLite and the reference."""
    memory = results.get(OURS_MEMORY)
    if memory is None:
        return []
    key = "records/s" if workload == "W2" else "requests/s"
    header = ["server", key, "ratio to the reference", "server CPU"]
    ref = results.get(REFERENCE)
    base = ref.metrics.get(key) if ref is not None else None
    rows = []
    for name in (OURS_MEMORY, OURS, REFERENCE):
        r = results.get(name)
        if r is None:
            continue
        rate = r.metrics.get(key, 0.0)
        ratio = f"{rate / base:.2f}×" if base else "–"
        rows.append([name, _fmt(rate), ratio, _cpu(r.server_cpu)])
    return _table(header, rows)


def _ratio(
    results: dict[str, dict[str, Result]], workload: str, key: str
) -> float | None:
    by_server = results.get(workload, {})
    ours, ref = by_server.get(OURS), by_server.get(REFERENCE)
    if ours is None or ref is None or not ref.metrics.get(key):
        return None
    return ours.metrics.get(key, 0.0) / ref.metrics[key]


def verdicts(results: dict[str, dict[str, Result]]) -> list[Verdict]:
    """Evaluate the project's performance targets for our server."""
    out = []

    def valid(workload: str) -> bool:
        both = results.get(workload, {})
        return all(r.valid for r in both.values())

    def ratio_target(label: str, workload: str, key: str, goal: float) -> None:
        ratio = _ratio(results, workload, key)
        if ratio is None:
            out.append(Verdict(label, "not measured", "n/a"))
            return
        status = "met" if ratio >= goal and valid(workload) else "missed"
        note = "" if valid(workload) else " (checks failed)"
        out.append(Verdict(label, f"{ratio:.2f}×{note}", status))

    w1 = _ratio(results, "W1", "requests/s")
    if w1 is None:
        out.append(Verdict("W1 appends/s ≥ 1.5× reference", "not measured", "n/a"))
    else:
        ok = valid("W1")
        status = "met" if w1 >= 1.5 and ok else "missed"
        if w1 < 1.0:
            status = "missed (below the 1.0× floor)"
        note = "" if ok else " (checks failed)"
        out.append(
            Verdict(
                "W1 appends/s ≥ 1.5× reference (never < 1.0×)",
                f"{w1:.2f}×{note}",
                status,
            )
        )
    ratio_target("W2 records/s ≥ 1.5× reference", "W2", "records/s", 1.5)
    ours_l = results.get("L", {}).get(OURS)
    if ours_l is None:
        out.append(Verdict("L p99 ≤ 10 ms, nothing missing", "not measured", "n/a"))
    else:
        label = "L p99 ≤ 10 ms, nothing missing"
        if "p99 ms" not in ours_l.metrics:
            out.append(Verdict(label, "no result (run failed)", "missed"))
        else:
            p99 = ours_l.metrics["p99 ms"]
            missing = int(ours_l.metrics.get("missing", 0))
            ok = p99 <= 10.0 and missing == 0 and ours_l.valid
            note = "" if ours_l.valid else " (checks failed)"
            observed = f"p99 {p99:.2f} ms, {missing} missing{note}"
            out.append(Verdict(label, observed, "met" if ok else "missed"))
    ratio_target("C no slower than reference (MB/s)", "C", "MB/s", 1.0)
    ratio_target(
        "F delivered records/s ≥ 1.5× reference", "F", "delivered records/s", 1.5
    )
    return out


def machine_facts() -> list[str]:
    """Lines describing the machine and toolchain."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"- CPU: {model}, nproc = {os.cpu_count()}, {mem}",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Node {_node_version()}",
        "- Every server process (all its threads) pinned to core 0 with"
        " `taskset -c 0`; the load generator (this process, asyncio + uvloop,"
        " hand-built HTTP/1.1 on keep-alive connections) pinned to core 1.",
        "- Loopback only (127.0.0.1).",
    ]


def _busy_machine(idle: dict[int, float]) -> bool:
    return any(v > 10 for v in idle.values())


def _node_version() -> str:
    try:
        out = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "not installed"


def render(
    results: dict[str, dict[str, Result]],
    command: str,
    server_commands: dict[str, str],
    skipped: dict[str, str],
    settings: str,
    idle: dict[int, float],
    started: str,
    elapsed: float,
) -> str:
    """The complete ``docs/benchmarks.md`` text."""
    lines = [
        "# Threadline benchmarks",
        "",
        f"Generated by `bench/run.py` on {started} (took {elapsed:.0f} s)."
        " See `bench/README.md` for what each workload does.",
        "",
        "## Machine",
        "",
        *machine_facts(),
        "- Background load in the second before the run (all processes): "
        + ", ".join(f"core {c} {v:.0f}%" for c, v in sorted(idle.items()))
        + (" — **not idle, numbers are disturbed**" if _busy_machine(idle) else ""),
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        "Servers (started fresh for every workload, each on a free port):",
        "",
    ]
    for name, cmd in server_commands.items():
        lines.append(f"- {name}: `{cmd}`")
    for name, why in skipped.items():
        lines.append(f"- {name}: **not run** ({why})")
    lines += ["", f"Durations: {settings}.", "", "## Targets", ""]
    rows = [[v.target, v.observed, v.status] for v in verdicts(results)]
    lines += _table(["target", "observed", "status"], rows, numeric=False)
    for workload in ("W1", "W2", "L", "F", "C"):
        if workload not in results:
            continue
        lines += ["", f"## {TITLES[workload]}", ""]
        lines += workload_table(workload, results[workload])
        if workload == "W1" and NOOP in results[workload]:
            lines += [
                "",
                "### No-op ceilings (W1-shaped requests answered at once:"
                " `noop`, a raw ASGI app on uvicorn + uvloop + httptools;"
                " `noop-raw`, an asyncio protocol on httptools, no ASGI server)",
                "",
            ]
            lines += noop_lines(results[workload])
        if OURS_MEMORY in results[workload]:
            lines += [
                "",
                "### Ours without durability (`--store memory://`, same run)",
                "",
            ]
            lines += memory_lines(workload, results[workload])
        problems = [
            f"- {server}: {p}"
            for server, r in results[workload].items()
            for p in r.problems[:10]
        ]
        if problems:
            lines += ["", "Check failures:", "", *problems]
        bound = [
            server for server, r in results[workload].items() if r.gen_cpu >= GEN_BOUND
        ]
        if bound:
            lines += [
                "",
                f"Warning: the load generator used ≥ {GEN_BOUND:.0f}% of its core"
                f" against {', '.join(bound)}; those numbers may be generator-bound.",
            ]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():  # hand-written: what limits the numbers
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n"
