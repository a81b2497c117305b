"""Session load over WebSocket: agents that stream messages, and subscribers.

An **agent** publishes one ``message.delta`` per ``publish`` (the message's
``message.start`` rides in the publish of its first delta, its
``message.end`` in that of its last), as the SDK's ``stream_message`` does.
Every delta's text is ``{tag}{n}@{t};``: ``tag`` is ``a`` for a message
visible to all and ``s`` for a staff-only one, ``n`` counts the deltas of
that tag in the session (0, 1, 2, …) and ``t`` is the ``perf_counter_ns()``
at which the frame carrying it was written.

A **subscriber** scans each frame it receives with ``bytes`` searches and one
regular expression (no JSON decoding on the hot path): it counts events
(``"offset":"`` occurs once per envelope), frames and deltas, checks that the
``n`` of each tag goes up by exactly one (no gap, no duplicate), that a
customer never sees an ``s`` delta, and records each delta's latency (arrival
minus ``t``) into a shared :class:`Latencies`. Frames holding anything but
``events`` (``subscribed``, ``error``, ``gone``) take a slow path that decodes
them.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from common import percentile
from rawhttp import Client, HttpError
from ws import WsConnection, connect

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
TOKEN_TTL = 6 * 3600.0

_DELTA = re.compile(rb'"text":"([as])(\d+)@(\d+);"')
_OFFSET = b'"offset":"'
# Events the server writes itself (participant.joined when a subscriber's
# device appears): not the agent's, so not counted against its totals.
_SERVER = b'"role":"server"'
_SLOW = (b'"type":"subscribed"', b'"type":"error"', b'"type":"gone"')
_PUBLISHED_RID = re.compile(rb'"type":"published","rid":"(\d+)"')


def token(sub: str, role: str) -> str:
    """A bearer token reaching every session (``sessions=["**"]``)."""
    from threadline.auth import create_token

    return create_token(
        SECRET, sub=sub, role=role, sessions=["**"], ttl_seconds=TOKEN_TTL
    )


async def create_sessions(
    host: str, port: int, sessions: Iterable[tuple[str, str]], parallel: int = 8
) -> None:
    """Create ``(session, customer)`` pairs over HTTP, a few requests at a time.

    Raises:
        HttpError: a create was not answered 201 or 200.
    """
    headers = {
        "Authorization": f"Bearer {token('bench-setup', 'service')}",
        "Content-Type": "application/json",
    }
    todo = list(sessions)

    async def worker() -> None:
        client = Client(host, port)
        try:
            while todo:
                session, customer = todo.pop()
                body = orjson.dumps({"id": session, "customer": customer})
                resp = await client.call("POST", "/v1/sessions", headers, body)
                if resp.status not in (200, 201):
                    raise HttpError(f"create {session} -> {resp.status} {resp.body!r}")
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(parallel)))


class Latencies:
    """Delta deliveries of one measurement window, by the deltas' send time.

    Only deltas *sent* in ``[start, end)`` count, however late they arrive:
    agents add each one's fan-out to :attr:`expected` as they write it, and
    subscribers record the latency of each delivery of one.
    """

    def __init__(self) -> None:
        self.start = self.end = 0
        self.expected = 0
        self.samples = array("q")

    def set_window(self, start: int, end: int) -> None:
        """Measure the deltas sent in ``[start, end)`` (``perf_counter_ns``)."""
        self.start, self.end = start, end
        self.expected = 0
        self.samples = array("q")

    @property
    def received(self) -> int:
        """Deliveries so far of the deltas sent in the window."""
        return len(self.samples)

    def stats(self) -> LatencyStats:
        """Percentiles of what was received."""
        return LatencyStats.of(sorted(self.samples))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles of one window, in milliseconds."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, ordered: list[int]) -> LatencyStats:
        """Statistics of sorted latencies in ns."""
        return cls(
            percentile(ordered, 50) / 1e6,
            percentile(ordered, 99) / 1e6,
            (ordered[-1] if ordered else 0) / 1e6,
            len(ordered),
        )


# Subscribers


class Subscriber:
    """One WebSocket subscribed to one session from ``now``."""

    def __init__(
        self, name: str, session: str, bearer: str, *, staff: bool, lat: Latencies
    ) -> None:
        self.name = name
        self.session = session
        self.bearer = bearer
        self.staff = staff
        self.lat = lat
        self.conn: WsConnection | None = None
        self.subscribed: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )
        self.events = 0
        self.deltas = 0
        self.next_n = {b"a": 0, b"s": 0}
        self.problems: list[str] = []

    async def open(self, host: str, port: int) -> None:
        """Connect, say hello and subscribe; wait for ``subscribed``."""
        self.conn = await connect(host, port, self.on_message)
        hello = {"type": "hello", "token": self.bearer, "device": self.name}
        subscribe = {
            "type": "subscribe",
            "rid": "1",
            "session": self.session,
            "offset": "now",
            "view": "raw",
        }
        self.conn.send_text(orjson.dumps([hello, subscribe]))
        await asyncio.wait_for(self.subscribed, 30.0)

    def on_message(self, payload: bytes, now: int) -> None:
        """Count and check one frame (``now``: when its bytes were read)."""
        if _SLOW[0] in payload or _SLOW[1] in payload or _SLOW[2] in payload:
            self._slow(payload, now)
            return
        self.events += payload.count(_OFFSET) - payload.count(_SERVER)
        self._deltas(payload, now)

    def _deltas(self, payload: bytes, now: int) -> None:
        lat = self.lat
        start, end, record = lat.start, lat.end, lat.samples.append
        next_n = self.next_n
        found = _DELTA.findall(payload)
        for tag, n_text, t_text in found:
            n, t = int(n_text), int(t_text)
            expected = next_n[tag]
            if n != expected:
                what = "duplicate" if n < expected else "gap"
                self._problem(f"{what} {tag.decode()}{n} (expected {expected})")
            if n >= expected:
                next_n[tag] = n + 1
            if start <= t < end:
                record(now - t)
        self.deltas += len(found)
        if not self.staff and next_n[b"s"]:
            self._problem("a customer received a staff delta")
            next_n[b"s"] = 0

    def _slow(self, payload: bytes, now: int) -> None:
        for message in orjson.loads(payload):
            kind = message.get("type")
            if kind == "subscribed":
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif kind == "events":
                self.events += sum(
                    1 for e in message["events"] if e["actor"]["role"] != "server"
                )
                self._deltas(orjson.dumps(message), now)
            elif kind == "presence":
                pass  # devices coming and going: not what is measured
            else:
                self._problem(f"unexpected message {orjson.dumps(message)[:200]!r}")
                if not self.subscribed.done():
                    self.subscribed.set_exception(RuntimeError(self.problems[-1]))

    def _problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(f"{self.name}: {text}")


# Agents


@dataclass(frozen=True, slots=True)
class AgentTotals:
    """What an agent had answered and written, for the exactly-once checks."""

    session: str
    acked_events: int
    acked_staff_events: int
    deltas: dict[str, int]  # written, by tag (``a``, ``s``)
    in_flight: int
    problems: list[str]


@dataclass(frozen=True, slots=True)
class _Sent:
    events: int
    staff_events: int  # of those, how many only staff see


class Agent:
    """One AI participant streaming messages into one session.

    Args:
        session: Where it publishes.
        bearer: Its token (role ``ai``).
        lat: Where the deltas it sends are counted.
        fanout: Deliveries due per delta visible to all, and per staff delta.
        per_message: Deltas per message.
        staff_every: Every ``staff_every``-th message is published with
            ``visibility: staff`` (0: none).
        window: Publishes kept unanswered (closed loop, after :meth:`start`);
            ``None`` for an agent paced from outside with :meth:`send`.
        rate: Events per second a closed-loop agent spends at most, from a
            bucket of ``rate / 20`` events (``None``: no limit). The server
            answers a token that publishes faster than its limit (staff:
            2,000 events/s, bursts of 5,000) with ``rate_limited``, which
            would break the message's delta sequence.
    """

    def __init__(
        self,
        session: str,
        bearer: str,
        lat: Latencies,
        fanout: tuple[int, int],
        *,
        per_message: int = 100,
        staff_every: int = 0,
        window: int | None = None,
        rate: float | None = None,
    ) -> None:
        self.session = session
        self.bearer = bearer
        self.lat = lat
        self.fanout = fanout
        self.per_message = per_message
        self.staff_every = staff_every
        self.window = window
        self.rate = rate
        self.throttled = 0
        """Times the rate, not the window, held back a closed-loop agent."""
        self._budget = 0.0 if rate is None else rate / 20
        self._budget_at = time.perf_counter()
        self._waiting = False
        self.running = False
        self.conn: WsConnection | None = None
        self.in_flight: dict[int, _Sent] = {}
        self.acked_events = 0
        self.acked_staff_events = 0
        self.acked_publishes = 0
        self.problems: list[str] = []
        self._rid = 0
        self._delta = 0  # deltas written, over all messages
        self._n = {"a": 0, "s": 0}
        self._session_json = orjson.dumps(session)

    async def open(self, host: str, port: int, device: str) -> None:
        """Connect and say hello."""
        self.conn = await connect(host, port, self.on_message)
        hello = {"type": "hello", "token": self.bearer, "device": device}
        self.conn.send_text(orjson.dumps([hello]))

    def sent_deltas(self, tag: str) -> int:
        """Deltas written so far of messages visible to all (``a``) or staff (``s``)."""
        return self._n[tag]

    def totals(self) -> AgentTotals:
        """The counts the checks compare subscribers with."""
        return AgentTotals(
            self.session,
            self.acked_events,
            self.acked_staff_events,
            dict(self._n),
            len(self.in_flight),
            list(self.problems),
        )

    def start(self) -> None:
        """Start a closed-loop agent: fill its window."""
        self.running = True
        self._refill()

    def on_message(self, payload: bytes, now: int) -> None:
        """Account for ``published`` answers (and errors); refill the window."""
        for rid in _PUBLISHED_RID.findall(payload):
            sent = self.in_flight.pop(int(rid), None)
            if sent is not None:
                self.acked_publishes += 1
                self.acked_events += sent.events
                self.acked_staff_events += sent.staff_events
        if b'"type":"error"' in payload:
            for message in orjson.loads(payload):
                if message.get("type") == "error":
                    self.in_flight.pop(int(message.get("rid") or -1), None)
                    if len(self.problems) < 5:
                        self.problems.append(f"publish error: {message}")
        self._refill()

    def _refill(self) -> None:
        if not self.running or self.window is None:
            return
        room = self.window - len(self.in_flight)
        if self.rate is None or room <= 0:
            self.send(room)
            return
        now = time.perf_counter()
        cap = self.rate / 20
        self._budget = min(cap, self._budget + (now - self._budget_at) * self.rate)
        self._budget_at = now
        allowed = min(room, int(self._budget))
        if allowed < room:
            self.throttled += 1
            if not self._waiting:
                self._waiting = True
                # Wake when a few events' worth is back: small batches, no stall.
                delay = (min(room, 4) - self._budget) / self.rate
                asyncio.get_running_loop().call_later(delay, self._wake)
        if allowed > 0:
            self._budget -= self.send(allowed)

    def _wake(self) -> None:
        self._waiting = False
        self._refill()

    def send(self, count: int = 1) -> int:
        """Write ``count`` publishes (one delta each) in one frame; return the
        number of events they hold."""
        if self.conn is None or count <= 0:
            return 0
        now = time.perf_counter_ns()
        parts = [self._publish(now) for _ in range(count)]
        self.conn.send_text(b"[" + b",".join(parts) + b"]")
        return sum(p.count(b'{"type":"message.') for p in parts)

    def _publish(self, now: int) -> bytes:
        index = self._delta
        self._delta += 1
        number, seq = divmod(index, self.per_message)
        every = self.staff_every
        staff = every > 0 and number % every == every - 1
        tag = "s" if staff else "a"
        n = self._n[tag]
        self._n[tag] = n + 1
        mid = f"m{number}".encode()
        events = []
        if seq == 0:
            events.append(
                b'{"type":"message.start","id":"%s-s",%s"data":{"message_id":"%s",'
                b'"role":"assistant"}}'
                % (mid, b'"visibility":"staff",' if staff else b"", mid)
            )
        events.append(
            b'{"type":"message.delta","id":"%s-%d","data":{"message_id":"%s",'
            b'"seq":%d,"part_index":0,"part_type":"text","text":"%s%d@%d;"}}'
            % (mid, seq, mid, seq, tag.encode(), n, now)
        )
        if seq == self.per_message - 1:
            events.append(
                b'{"type":"message.end","id":"%s-e","data":{"message_id":"%s",'
                b'"status":"complete"}}' % (mid, mid)
            )
        self._rid += 1
        rid = self._rid
        self.in_flight[rid] = _Sent(len(events), len(events) if staff else 0)
        lat = self.lat
        if lat.start <= now < lat.end:
            lat.expected += self.fanout[1 if staff else 0]
        return b'{"type":"publish","rid":"%d","session":%s,"events":[%s]}' % (
            rid,
            self._session_json,
            b",".join(events),
        )


async def wait_until(
    predicate: Callable[[], bool], timeout: float, step: float = 0.01
) -> bool:
    """Poll ``predicate()`` until true; False if ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def close_all(conns: Iterable[WsConnection | None], grace: float = 1.0) -> None:
    """Close connections (1000), then drop any the server has not closed."""
    live = [c for c in conns if c is not None]
    for conn in live:
        try:
            conn.close()
        except Exception:  # already gone
            conn.abort()
    if live:
        waiters = [asyncio.ensure_future(c.closed) for c in live]
        await asyncio.wait(waiters, timeout=grace)
        for waiter in waiters:
            waiter.cancel()
    for conn in live:
        conn.abort()
