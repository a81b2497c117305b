"""SSE readers for the live workloads (``GET …?offset=now&live=sse``).

Two ways of consuming the event stream:

* ``timed`` (workload L): events are framed (``event: data`` / ``event:
  control``, ``data:`` with or without a space) and every data payload is kept
  with the time its bytes arrived; the JSON is decoded only after the run, so
  that decoding does not delay the next reader's timestamp.
* counting (workload F): the de-chunked body is scanned for the record marker
  with C-level ``bytes.count``, cheap enough to keep up with any fan-out.

Either way the reader remembers the last ``streamNextOffset`` and reconnects
from it if the server ends the response before the stream is closed.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import quote

from common import MARKER, Target, loads
from rawhttp import HttpConnection, HttpError, build_request, connect

_OFFSET_KEY = b'"streamNextOffset"'
_OFFSET_VALUE = re.compile(rb'"streamNextOffset"\s*:\s*"([^"]*)"')


class SseReader:
    """One SSE subscriber on one connection (reconnecting when needed)."""

    def __init__(self, target: Target, path: str, timed: bool) -> None:
        self.target = target
        self.path = path
        self.timed = timed
        self.count = 0  # records seen (marker occurrences)
        self.payloads: list[tuple[int, bytes]] = []  # timed: (arrival ns, data)
        self.reconnects = 0
        self.problems: list[str] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stream_closed = False
        self._offset = "now"
        self._buf = b""
        self._last_control = b""
        self._stopping = False
        self._conn: HttpConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin reading in a background task."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Close the connection and wait for the task."""
        self._stopping = True
        if self._conn is not None:
            self._conn.close()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._open()
                assert self._conn is not None
                await self._conn.closed
            except (HttpError, OSError) as exc:
                self._fail(f"SSE {self.path}: {exc}")
                return
            if self._stopping or self.stream_closed:
                return
            self._remember_offset()
            self.reconnects += 1
            self._buf = b""

    def _fail(self, problem: str) -> None:
        if not self._stopping:
            self.problems.append(problem)
        if not self.ready.done():
            self.ready.set_exception(HttpError(problem))

    async def _open(self) -> None:
        query = f"offset={quote(self._offset, safe='')}&live=sse"
        raw = build_request(
            "GET",
            f"{self.path}?{query}",
            self.target.authority,
            {"Accept": "text/event-stream"},
        )
        self._conn = await connect(self.target.host, self.target.port)
        sink = self._feed_timed if self.timed else self._feed_count
        head = await self._conn.stream(raw, sink)
        ctype = head.headers.get("content-type", "")
        if head.status != 200 or not ctype.startswith("text/event-stream"):
            raise HttpError(f"status {head.status}, content-type {ctype!r}")

    def _remember_offset(self) -> None:
        control = self._last_control
        if self.timed and control:
            offset = loads(control).get("streamNextOffset")
            if isinstance(offset, str):
                self._offset = offset
        elif control:
            self._offset = control.decode()

    # -- sinks (called from data_received, must be cheap) -----------------------

    def _feed_timed(self, chunk: bytes) -> None:
        now = time.perf_counter_ns()
        data = self._buf + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._buf = events.pop()
        for event in events:
            kind = b""
            lines = []
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    lines.append(line[6:] if line[5:6] == b" " else line[5:])
                elif line.startswith(b"event:"):
                    kind = line[6:].strip()
            payload = b"\n".join(lines)
            if kind == b"data":
                self.payloads.append((now, payload))
                self.count += payload.count(MARKER)
            elif kind == b"control":
                self._last_control = payload
                if not self.ready.done():
                    self.ready.set_result(None)
                if b'"streamClosed"' in payload:
                    self.stream_closed = loads(payload).get("streamClosed") is True

    def _feed_count(self, chunk: bytes) -> None:
        data = self._buf + chunk
        self.count += data.count(MARKER)
        # Keep fewer bytes than the marker, so no marker is counted twice.
        self._buf = data[-(len(MARKER) - 1) :]
        at = data.rfind(_OFFSET_KEY)
        if at >= 0:
            match = _OFFSET_VALUE.match(data, at)
            if match:
                self._last_control = match.group(1)
                if not self.ready.done():
                    self.ready.set_result(None)


async def open_readers(
    target: Target, path: str, n: int, timed: bool, timeout: float = 15.0
) -> list[SseReader]:
    """Start ``n`` readers and wait until each has had its first control event."""
    readers = [SseReader(target, path, timed) for _ in range(n)]
    for reader in readers:
        reader.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(r.ready for r in readers)), timeout)
    except TimeoutError:
        await close_readers(readers)
        ready = sum(r.ready.done() for r in readers)
        raise HttpError(
            f"only {ready} of {n} SSE readers got a first control event"
            f" within {timeout:g} s"
        ) from None
    except BaseException:
        await close_readers(readers)
        raise
    return readers


async def close_readers(readers: list[SseReader]) -> None:
    """Stop every reader."""
    await asyncio.gather(*(r.stop() for r in readers))


async def drain(readers: list[SseReader], want: int, timeout: float) -> None:
    """Wait until every reader has seen ``want`` records, or ``timeout``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(r.count >= want for r in readers):
            return
        await asyncio.sleep(0.02)
