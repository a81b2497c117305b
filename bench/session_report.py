"""Tables, target verdicts and ``docs/benchmarks-sessions.md`` for the session runs."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from common import Result
from replay import ReplayResult
from report import GEN_BOUND, Verdict, _fmt, _table, machine_facts
from session_runs import M_P99_MS, ManyResult

T_EVENTS = 150_000.0
T_P99_MS = 20.0
M_SESSIONS = 500
R_MS = 10.0

T_ROWS = [
    ("delivered events/s", "delivered events/s (sum of subscribers)"),
    ("frames/s", "frames/s (sum of subscribers)"),
    ("events/frame", "events per frame"),
    ("publishes/s", "publishes answered/s"),
    ("published events/s", "events published/s"),
    ("p50 ms", "delivery p50 ms"),
    ("p99 ms", "delivery p99 ms"),
    ("max ms", "delivery max ms"),
    ("latency samples", "deliveries timed"),
    ("throttled", "times the token's rate limit, not the window, held the agent"),
]


@dataclass(frozen=True, slots=True)
class Settings:
    """Durations of one run."""

    t_warmup: float
    t_duration: float
    t_windows: tuple[int, ...]
    m_plan: tuple[int, ...]
    m_settle: float
    m_duration: float
    m_refine: int
    r_runs: int

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"T: {self.t_warmup:g} s warm-up, then a {self.t_duration:g} s window,"
            f" per window size; M: {self.m_settle:g} s to settle, then a"
            f" {self.m_duration:g} s window per step; R: {self.r_runs} reads per row"
        )


def _cpu(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _busy(result: Result, core: int) -> str:
    value = result.core_busy.get(core)
    return "–" if value is None else f"{value:.0f}%"


def verdicts(
    fanout: list[Result], many: ManyResult | None, replay: ReplayResult | None
) -> list[Verdict]:
    """The three targets of issue 3 point 13."""
    out = []
    label = (
        f"T: ≥ {T_EVENTS:,.0f} events/s with p99 ≤ {T_P99_MS:g} ms"
        " (≤ 64 publishes unanswered)"
    )
    measured = [r for r in fanout if "p99 ms" in r.metrics]
    if not measured:
        out.append(Verdict(label, "not measured", "n/a"))
    else:
        held = [r for r in measured if r.metrics["p99 ms"] <= T_P99_MS and r.valid]
        best = max(held, key=lambda r: r.metrics["delivered events/s"], default=None)
        ok = best is not None and best.metrics["delivered events/s"] >= T_EVENTS
        shown = [r for r in measured if r is best or r.workload == "T64"]
        observed = "; ".join(
            f"{_window(r)}: {r.metrics['delivered events/s']:,.0f} events/s,"
            f" p99 {r.metrics['p99 ms']:.1f} ms{'' if r.valid else ' (checks failed)'}"
            for r in shown
        )
        if best is None:
            observed += f" (no window held p99 ≤ {T_P99_MS:g} ms)"
        out.append(Verdict(label, observed, "met" if ok else "missed"))
    label = f"M: ≥ {M_SESSIONS} sessions at 20 deltas/s with p99 ≤ {M_P99_MS:g} ms"
    if many is None or not many.steps:
        out.append(Verdict(label, "not measured", "n/a"))
    else:
        held_n = int(many.metrics.get("max sessions", 0))
        note = "" if many.valid else " (checks failed)"
        ok = held_n >= M_SESSIONS and many.valid
        status = "met" if ok else "missed"
        out.append(Verdict(label, f"{held_n} sessions{note}", status))
    label = f"R: compact replay of 10,000 deltas ≤ {R_MS:g} ms server time"
    rows = [] if replay is None else [r for r in replay.rows if "server" in r.how]
    if not rows:
        out.append(Verdict(label, "not measured", "n/a"))
    else:
        worst = max(rows, key=lambda r: r.median_ms)
        ok = worst.median_ms <= R_MS
        observed = f"median {worst.median_ms:.2f} ms ({worst.role}, SQLite)"
        out.append(Verdict(label, observed, "met" if ok else "missed"))
    return out


def _window(result: Result) -> str:
    return f"{result.extra.get('publishes unanswered (at most)')} unanswered"


def fanout_table(results: list[Result]) -> list[str]:
    """T: one column per window size."""
    header = ["metric", *(_window(r) for r in results)]
    rows = []
    for key, label in T_ROWS:
        integer = key in ("latency samples", "throttled")
        rows.append([label, *(_fmt(r.metrics.get(key), integer) for r in results)])
    rows.append(["server CPU (core 0)", *(_cpu(r.server_cpu) for r in results)])
    rows.append(
        ["subscribers' process CPU (core 1)", *(_cpu(r.gen_cpu) for r in results)]
    )
    rows.append(
        [
            "agent's process CPU (core 1)",
            *(_cpu(r.metrics.get("agent cpu")) for r in results),
        ]
    )
    rows.append(["core 0 busy (all processes)", *(_busy(r, 0) for r in results)])
    rows.append(["core 1 busy (all processes)", *(_busy(r, 1) for r in results)])
    rows.append(
        ["every event exactly once", *("ok" if r.valid else "FAILED" for r in results)]
    )
    return _table(header, rows)


def many_table(many: ManyResult) -> list[str]:
    """M: one row per step."""
    header = [
        "sessions",
        "deltas sent/s",
        "events delivered/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU",
        "server CPU µs per delta",
        "generator CPU",
        "generator lag max ms",
        "result",
    ]
    rows = []
    for step in many.steps:
        verdict = (
            "ok"
            if step.ok
            else "missed: " + ("; ".join(step.problems) or f"p99 > {M_P99_MS:g} ms")
        )
        rows.append(
            [
                str(step.sessions),
                _fmt(step.sent_per_s),
                _fmt(step.delivered_per_s),
                _fmt(step.stats.p50),
                _fmt(step.stats.p99),
                _fmt(step.stats.max),
                _cpu(step.server_cpu),
                (
                    "–"
                    if step.server_cpu is None or not step.sent_per_s
                    else _fmt(step.server_cpu * 1e4 / step.sent_per_s)
                ),
                _cpu(step.gen_cpu),
                _fmt(step.max_lag_ms),
                verdict,
            ]
        )
    return _table(header, rows)


def replay_table(replay: ReplayResult) -> list[str]:
    """R: one row per way of measuring and role."""
    header = ["measured", "reader", "first ms", "median ms", "p90 ms", "body bytes"]
    rows = [
        [
            r.how,
            r.role,
            _fmt(r.first_ms),
            _fmt(r.median_ms),
            _fmt(r.p90_ms),
            f"{r.body_bytes:,}",
        ]
        for r in replay.rows
    ]
    return _table(header, rows, numeric=False)


def render(
    fanout: list[Result],
    ramps: list[ManyResult],
    replay: ReplayResult | None,
    *,
    command: str,
    server_command: str,
    settings: Settings,
    idle: dict[int, float],
    speeds: dict[str, float],
    started: str,
    elapsed: float,
) -> str:
    """The complete ``docs/benchmarks-sessions.md`` text.

    ``ramps``: M against our server, then (if run) against the WebSocket
    no-op ceiling.
    """
    many = ramps[0] if ramps else None
    ceiling = ramps[1] if len(ramps) > 1 else None
    busy = any(v > 10 for v in idle.values())
    lines = [
        "# Threadline session benchmarks",
        "",
        f"Generated by `bench/sessions.py` on {started} (took {elapsed:.0f} s)."
        " See `bench/README.md` for what each workload does; the Durable Streams"
        " benchmarks are in [benchmarks.md](benchmarks.md).",
        "",
        "## Machine",
        "",
        *machine_facts()[:2],
        f"- Python {platform.python_version()}",
        "- The server (all its threads) pinned to core 0 with `taskset -c 0`; the"
        " load generator (`bench/sessions.py`: asyncio + uvloop, WebSocket frames"
        " written and parsed by hand, no compression) pinned to core 1.",
        "- Loopback only (127.0.0.1).",
        "- Background load in the second before the run (all processes): "
        + ", ".join(f"core {c} {v:.0f}%" for c, v in sorted(idle.items()))
        + (" — **not idle, numbers are disturbed**" if busy else ""),
        "- CPU check, a 3M-iteration Python loop on core 0 (ms; lower is faster;"
        " this VM's speed drifts by up to 2× over minutes): "
        + ", ".join(f"before {k} {v:.0f}" for k, v in speeds.items() if k != "end")
        + (f", at the end {speeds['end']:.0f}" if "end" in speeds else ""),
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Server (started fresh for every workload): `{server_command}`",
        "",
        f"Durations: {settings.describe()}.",
        "",
        "## Targets",
        "",
    ]
    rows = [[v.target, v.observed, v.status] for v in verdicts(fanout, many, replay)]
    lines += _table(["target", "observed", "status"], rows, numeric=False)
    if fanout:
        lines += [
            "",
            "## T: token fan-out (1 agent, 100 WebSocket subscribers of one session)",
            "",
            "The agent streams messages of 100 deltas, one delta per `publish`,"
            " keeping at most N publishes unanswered on one WebSocket and spending"
            " at most 1,950 events/s (the server limits a staff token to 2,000);"
            " every 10th message is staff-only. 50 customer and 50 staff subscribers;"
            " latency is from writing the publish to reading the frame, over every"
            " (delta, subscriber) pair sent in the window.",
            "",
            *fanout_table(fanout),
        ]
        lines += _problems(fanout)
    if many is not None:
        best = many.metrics.get("max sessions", 0)
        lines += [
            "",
            "## M: many sessions (each: 1 agent at 20 deltas/s, 2 subscribers)",
            "",
            "Per session: an agent on its own WebSocket publishing one delta"
            " every 50 ms (the agents spread evenly over the period), a customer"
            " and a staff subscriber, each on its own WebSocket (3 connections per"
            f" session). A step holds if p99 ≤ {M_P99_MS:g} ms, every delivery of a"
            " delta sent in the window arrives, and no agent had 64 publishes"
            " unanswered.",
            "",
            *many_table(many),
            "",
            f"Largest number of sessions that held: **{best:.0f}**."
            " After the ramp, every subscriber was checked for every event of its"
            f" session exactly once: {'ok' if many.valid else 'FAILED'}.",
        ]
        lines += _problems([many])
        if ceiling is not None:
            top = ceiling.metrics.get("max sessions", 0)
            share = f"{100 * best / top:.0f}%" if top else "–"
            lines += [
                "",
                "### M's ceiling: a WebSocket no-op relay",
                "",
                "The same ramp against `bench/ws_noop_app.py` under the same"
                " uvicorn (uvloop, httptools, websockets-sansio), pinned the same"
                " way: it answers each publish and relays it to the session's two"
                " subscribers, and keeps nothing (no auth, validation, storage or"
                " fsync). It is what one Python process on one core can do with"
                " M's frames alone.",
                "",
                *many_table(ceiling),
                "",
                f"The ceiling held **{top:.0f}** sessions; ours held {best:.0f}"
                f" ({share} of the ceiling).",
            ]
            lines += _problems([ceiling])
        steps = many.steps + (ceiling.steps if ceiling is not None else [])
        bound = [str(s.sessions) for s in steps if s.gen_cpu >= GEN_BOUND]
        if bound:
            lines += [
                "",
                f"Warning: the load generator used ≥ {GEN_BOUND:.0f}% of its core at"
                f" {', '.join(bound)} sessions; those steps may be generator-bound.",
            ]
    if replay is not None:
        lines += [
            "",
            "## R: compact replay (100 messages of 100 deltas, `view=compact`"
            " from `-1`)",
            "",
            "In-process: `bench/compact_replay.py --store sqlite` pinned to core 0,"
            " calling the ASGI app directly (no socket): the server's own time from"
            " the request to the last body byte, the SQLite store restarted after"
            " populating (the first read is cold). Over HTTP: the same read from"
            " the running server, timed by the load generator from writing the"
            " request to the last byte (an upper bound: loopback and parsing"
            " included).",
            "",
            *replay_table(replay),
        ]
        lines += _problems([replay])
    analysis = Path(__file__).with_name("analysis-sessions.md")
    if analysis.exists():  # hand-written: what limits the numbers
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def _problems(results: list[Result]) -> list[str]:
    lines = []
    problems = [f"- {r.workload}: {p}" for r in results for p in r.problems[:10]]
    if problems:
        lines += ["", "Check failures:", "", *problems]
    bound = [r.workload for r in results if r.gen_cpu >= GEN_BOUND]
    if bound:
        lines += [
            "",
            f"Warning: the load generator used ≥ {GEN_BOUND:.0f}% of its core in"
            f" {', '.join(bound)}; those numbers may be generator-bound.",
        ]
    return lines
