"""The live session workloads: T (token fan-out) and M (many sessions).

Each runs against a server already started (``servers.running``) and returns
a :class:`~common.Result`; M's also holds its ramp, one :class:`Step` per
number of sessions tried. R is in ``replay.py``. See ``bench/README.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from common import CpuMeter, Result, Target, proc_cpu_seconds
from servers import BENCH
from wsload import (
    Agent,
    AgentTotals,
    Latencies,
    LatencyStats,
    Subscriber,
    close_all,
    create_sessions,
    token,
    wait_until,
)

T_CUSTOMERS = 50
T_STAFF = 50
T_STAFF_EVERY = 10  # every 10th message is staff-only
T_RATE = 1950.0  # events/s: just under the server's limit per staff token (2,000)
PER_MESSAGE = 100  # deltas per message
M_RATE = 20.0  # deltas per second per session
M_SLOTS = 50  # the pacer's phases: one every 1 ms over the 50 ms period
M_MAX_IN_FLIGHT = 64  # the server's limit per connection; past it, a tick is skipped
M_P99_MS = 25.0
DRAIN = 5.0  # seconds for every subscriber to get what was acknowledged
LATE = 2.0  # seconds after a window for its deltas to arrive
OPEN_PARALLEL = 32


async def _open_all(target: Target, subs: list[Subscriber]) -> None:
    """Connect and subscribe, a few at a time."""
    gate = asyncio.Semaphore(OPEN_PARALLEL)

    async def one(sub: Subscriber) -> None:
        async with gate:
            await sub.open(target.host, target.port)

    await asyncio.gather(*(one(s) for s in subs))


def _check(subs: list[Subscriber], agents: list[AgentTotals], result: Result) -> None:
    """Every subscriber got every event of its view exactly once."""
    by_session = {a.session: a for a in agents}
    short = 0
    for agent in agents:
        result.problems += agent.problems
        if agent.in_flight:
            result.problems.append(
                f"{agent.session}: {agent.in_flight} publishes never answered"
            )
    for sub in subs:
        result.problems += sub.problems
        agent = by_session[sub.session]
        want = _want(sub, agent)
        if sub.events != want:
            short += abs(want - sub.events)
            if len(result.problems) < 20:
                result.problems.append(
                    f"{sub.name}: {sub.events} events, expected {want}"
                )
        want_s = agent.deltas["s"] if sub.staff else 0
        got_a, got_s = sub.next_n[b"a"], sub.next_n[b"s"]
        if (got_a, got_s) != (agent.deltas["a"], want_s) and len(result.problems) < 20:
            result.problems.append(
                f"{sub.name}: deltas a{got_a}/s{got_s},"
                f" expected a{agent.deltas['a']}/s{want_s}"
            )
    result.metrics["missing"] = short


def _want(sub: Subscriber, agent: AgentTotals) -> int:
    """Events of the session in the subscriber's view."""
    return agent.acked_events - (0 if sub.staff else agent.acked_staff_events)


def _drained(subs: list[Subscriber], agents: list[AgentTotals]) -> bool:
    by_session = {a.session: a for a in agents}
    return all(sub.events >= _want(sub, by_session[sub.session]) for sub in subs)


def _latency(result: Result, stats: LatencyStats, lat: Latencies) -> None:
    result.metrics["p50 ms"] = stats.p50
    result.metrics["p99 ms"] = stats.p99
    result.metrics["max ms"] = stats.max
    result.metrics["latency samples"] = stats.count
    late = lat.expected - lat.received
    result.metrics["late"] = late
    if late:
        result.problems.append(
            f"{late} deliveries of deltas sent in the window had not arrived"
            f" {LATE:.0f} s after it"
        )


# T: token fan-out


class AgentProcess:
    """An :class:`~wsload.Agent` run by ``agentproc.py`` in a child process."""

    def __init__(self, settings: dict[str, object]) -> None:
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        """Start the child; return once its agent has said hello."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH / "agentproc.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        answer = await self._call(self.settings, 30.0)
        if not answer.get("ready"):
            raise RuntimeError(f"agent process: {answer}")

    async def start(self, start: int, end: int) -> None:
        """Start publishing; count deltas written in ``[start, end)`` ns."""
        await self._call({"cmd": "start", "window": [start, end]}, 10.0)

    async def stop(self) -> dict[str, Any]:
        """Stop publishing; the child's statistics once all is answered."""
        return await self._call({"cmd": "stop"}, 30.0)

    def cpu_seconds(self) -> float:
        """CPU time the child used so far."""
        return 0.0 if self.proc is None else proc_cpu_seconds(self.proc.pid)

    async def close(self) -> None:
        """End the child (at once if it still runs)."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()

    async def _call(self, message: dict[str, object], timeout: float) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(orjson.dumps(message) + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("agent process ended")
        answer: dict[str, Any] = orjson.loads(line)
        return answer


async def run_fanout(
    target: Target, window: int, warmup: float, duration: float
) -> Result:
    """Workload T: one agent, ``window`` publishes unanswered, 100 subscribers."""
    result = Result(f"T{window}", target.name)
    lat = Latencies()
    session = f"t-w{window}"
    customer = "cust-t"
    await create_sessions(target.host, target.port, [(session, customer)])
    customer_token = token(customer, "customer")
    subs = [
        Subscriber(f"c{i}", session, customer_token, staff=False, lat=lat)
        for i in range(T_CUSTOMERS)
    ] + [
        Subscriber(f"a{i}", session, token(f"agent-{i}", "agent"), staff=True, lat=lat)
        for i in range(T_STAFF)
    ]
    agent = AgentProcess(
        {
            "host": target.host,
            "port": target.port,
            "session": session,
            "token": token("bot-t", "ai"),
            "device": "agent-t",
            "window": window,
            "per_message": PER_MESSAGE,
            "staff_every": T_STAFF_EVERY,
            "fanout": [T_CUSTOMERS + T_STAFF, T_STAFF],
            "rate": T_RATE,
        }
    )
    try:
        await _open_all(target, subs)
        await agent.open()
        t0 = time.perf_counter_ns() + int(warmup * 1e9)
        t1 = t0 + int(duration * 1e9)
        lat.set_window(t0, t1)
        await agent.start(t0, t1)
        await asyncio.sleep(max(0, t0 - time.perf_counter_ns()) / 1e9)
        meter = CpuMeter(target.pid)
        events0, frames0 = _totals(subs)
        agent_cpu0 = agent.cpu_seconds()
        meter.start()
        await asyncio.sleep(duration)
        meter.stop()
        agent_cpu = 100 * (agent.cpu_seconds() - agent_cpu0) / meter.wall
        events1, frames1 = _totals(subs)
        stats = await agent.stop()
        lat.expected = int(stats["expected"])
        totals = AgentTotals(**stats["totals"])
        await wait_until(lambda: lat.received >= lat.expected, LATE)
        await wait_until(lambda: _drained(subs, [totals]), DRAIN)
    finally:
        await agent.close()
        await close_all([s.conn for s in subs])
    wall = meter.wall
    frames = frames1 - frames0
    result.metrics["delivered events/s"] = (events1 - events0) / wall
    result.metrics["frames/s"] = frames / wall
    result.metrics["events/frame"] = (events1 - events0) / frames if frames else 0
    p0, e0, throttled0 = stats["at_start"]
    p1, e1, throttled1 = stats["at_end"]
    result.metrics["throttled"] = throttled1 - throttled0
    result.metrics["publishes/s"] = (p1 - p0) / duration
    result.metrics["published events/s"] = (e1 - e0) / duration
    _latency(result, lat.stats(), lat)
    meter.fill(result)
    result.metrics["agent cpu"] = agent_cpu
    result.extra["subscribers"] = f"{T_CUSTOMERS} customers + {T_STAFF} staff"
    result.extra["publishes unanswered (at most)"] = str(window)
    _check(subs, [totals], result)
    return result


def _totals(subs: list[Subscriber]) -> tuple[int, int]:
    events = sum(s.events for s in subs)
    frames = sum(s.conn.frames_received for s in subs if s.conn is not None)
    return events, frames


# M: many sessions


@dataclass(slots=True)
class Step:
    """One number of sessions held for one window."""

    sessions: int
    sent_per_s: float
    delivered_per_s: float
    stats: LatencyStats
    late: int
    skipped: int
    max_lag_ms: float
    server_cpu: float | None
    gen_cpu: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """p99 within the bound, every delivery on time, the rate kept."""
        return not self.problems and self.stats.p99 <= M_P99_MS


@dataclass
class ManyResult(Result):
    """Workload M: its ramp, and the largest number of sessions that held."""

    steps: list[Step] = field(default_factory=list)


class _Pacer:
    """Sends one delta per active agent every 50 ms, agents spread over 50 phases."""

    def __init__(self, agents: list[Agent]) -> None:
        self.agents = agents
        self.buckets: list[list[Agent]] = [[] for _ in range(M_SLOTS)]
        self.running = True
        self.sent = 0
        self.skipped = 0
        self.max_lag = 0

    def activate(self, count: int) -> None:
        """Let the first ``count`` agents stream; pause the others."""
        self.buckets = [[] for _ in range(M_SLOTS)]
        for i, agent in enumerate(self.agents[:count]):
            self.buckets[i % M_SLOTS].append(agent)

    def reset(self) -> None:
        """Start counting afresh."""
        self.sent = self.skipped = self.max_lag = 0

    async def run(self) -> None:
        slot_ns = int(1e9 / M_RATE / M_SLOTS)
        tick = 0
        due = time.perf_counter_ns()
        while self.running:
            now = time.perf_counter_ns()
            while due <= now:
                for agent in self.buckets[tick % M_SLOTS]:
                    if len(agent.in_flight) >= M_MAX_IN_FLIGHT:
                        self.skipped += 1
                    else:
                        agent.send(1)
                        self.sent += 1
                self.max_lag = max(self.max_lag, now - due)
                tick += 1
                due += slot_ns
            await asyncio.sleep(max(0.0, (due - time.perf_counter_ns()) / 1e9))


def m_plan(quick: bool) -> list[int]:
    """The numbers of sessions to try, in order, before refining."""
    if quick:
        return [25, 50, 100, 200]
    return [25, 50, 100, 200, 300, 400, 500, 600, 800, 1000]


async def run_many(
    target: Target, plan: list[int], settle: float, duration: float, refine: int
) -> ManyResult:
    """Workload M: step the number of sessions up until p99 > 25 ms."""
    result = ManyResult("M", target.name)
    lat = Latencies()
    subs: list[Subscriber] = []
    agents: list[Agent] = []
    pacer = _Pacer(agents)
    task = asyncio.create_task(pacer.run())
    try:
        best, worst = 0, 0
        todo = list(plan)
        while todo:
            count = todo.pop(0)
            await _grow(target, count, subs, agents, lat)
            pacer.activate(count)
            # After an overloaded step, let the server work off its backlog.
            await asyncio.sleep(settle * (3 if worst else 1))
            step = await _step(target, count, duration, pacer, subs, lat)
            result.steps.append(step)
            print(
                f"  M {count:5d} sessions: p99 {step.stats.p99:7.2f} ms,"
                f" sent {step.sent_per_s:8.0f}/s {'ok' if step.ok else 'MISSED'}"
                f" {'; '.join(step.problems[:2])}",
                file=sys.stderr,
            )
            if step.ok:
                best = max(best, count)
            else:
                worst = count if not worst else min(worst, count)
                todo = []
            if not todo and worst and refine > 0:
                refine -= 1
                grain = 5 if worst <= 200 else 25
                middle = (best + worst) // 2 // grain * grain
                if best < middle < worst:
                    todo = [middle]
        pacer.running = False
        await task
        await wait_until(lambda: not any(a.in_flight for a in agents), 15.0)
        await wait_until(lambda: _drained(subs, [a.totals() for a in agents]), DRAIN)
    finally:
        pacer.running = False
        task.cancel()
        await close_all([s.conn for s in subs] + [a.conn for a in agents])
    result.metrics["max sessions"] = best
    result.metrics["first missed"] = worst
    _check(subs, [a.totals() for a in agents], result)
    return result


async def _grow(
    target: Target,
    count: int,
    subs: list[Subscriber],
    agents: list[Agent],
    lat: Latencies,
) -> None:
    """Sessions, subscribers and agents up to ``count`` sessions."""
    start = len(agents)
    if count <= start:
        return
    names = [(f"m-{i}", f"cust-{i}") for i in range(start, count)]
    await create_sessions(target.host, target.port, names)
    new_subs: list[Subscriber] = []
    new_agents: list[Agent] = []
    for session, customer in names:
        i = session.split("-")[1]
        new_subs.append(
            Subscriber(
                f"c{i}", session, token(customer, "customer"), staff=False, lat=lat
            )
        )
        new_subs.append(
            Subscriber(
                f"s{i}", session, token(f"staff-{i}", "agent"), staff=True, lat=lat
            )
        )
        new_agents.append(
            Agent(
                session, token(f"bot-{i}", "ai"), lat, (2, 1), per_message=PER_MESSAGE
            )
        )
    subs += new_subs
    agents += new_agents
    await _open_all(target, new_subs)
    gate = asyncio.Semaphore(OPEN_PARALLEL)

    async def one(agent: Agent) -> None:
        async with gate:
            await agent.open(target.host, target.port, f"dev-{agent.session}")

    await asyncio.gather(*(one(a) for a in new_agents))


async def _step(
    target: Target,
    count: int,
    duration: float,
    pacer: _Pacer,
    subs: list[Subscriber],
    lat: Latencies,
) -> Step:
    meter = CpuMeter(target.pid)
    t0 = time.perf_counter_ns()
    lat.set_window(t0, t0 + int(duration * 1e9))
    events0 = sum(s.events for s in subs)
    pacer.reset()
    meter.start()
    await asyncio.sleep(duration)
    meter.stop()
    sent, skipped, lag = pacer.sent, pacer.skipped, pacer.max_lag
    events1 = sum(s.events for s in subs)
    await wait_until(lambda: lat.received >= lat.expected, LATE)
    stats = lat.stats()
    problems = []
    late = lat.expected - lat.received
    if late:
        problems.append(f"{late} deliveries later than {LATE:.0f} s")
    if skipped:
        problems.append(f"{skipped} deltas not sent: 64 publishes unanswered")
    for sub in subs:
        problems += sub.problems[:1]
    return Step(
        count,
        sent / meter.wall,
        (events1 - events0) / meter.wall,
        stats,
        late,
        skipped,
        lag / 1e6,
        meter.server_cpu,
        meter.gen_cpu,
        problems[:3],
    )
