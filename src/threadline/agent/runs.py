"""One reply: pull from ``respond(context)``, stream it, stop it at once.

A :class:`Run` is the state the session's reader and driver share about the
reply in flight; :func:`stream_reply` is the task that makes it. Stopping a
reply cancels that task: the ``CancelledError`` reaches ``respond`` where it
waits, its iterator is closed (``aclose``), and the message ends
``cancelled``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..client.session import Session
from ..client.streaming import MessageStream
from ..exceptions import (
    AlreadyEnded,
    ConnectionClosed,
    NotInControl,
    SessionClosed,
    Timeout,
)
from ..protocol.actors import Actor
from .context import Chunk, Context, HistoryMessage, history_from
from .view import LOST_REASONS, CustomerMessage

if TYPE_CHECKING:
    from .sessions import SessionWorker

__all__ = ["Run", "fetch_history", "stream_reply"]

_MAX_PAGES = 1000  # history pages read for one reply, at most
_READ_ATTEMPTS = 4  # tries of one history page that times out


class Run:
    """The reply in flight in one session.

    Args:
        run_id: Its run.
        target: The customer message it answers.
        message_id: The id of the message it streams.
    """

    def __init__(
        self, run_id: str, target: CustomerMessage, *, message_id: str
    ) -> None:
        self.run_id = run_id
        self.target = target
        self.message_id = message_id
        self.task: asyncio.Task[None] | None = None
        """The task streaming the reply, once it started."""
        self.context: Context | None = None
        self.stream: MessageStream | None = None
        """The message, once its start was sent."""
        self.stop_reason: str | None = None
        self.stop_at: float | None = None
        self.closed_at: float | None = None
        """When the ``respond`` iterator was closed."""
        self.finishing = False
        """``respond`` is done: the message is ending normally, not stopped."""
        self.ended_by_server = False
        """The server (or another producer) ended the run."""
        self._running = asyncio.Event()
        self._running.set()

    # Control, from the session's reader

    def stop(self, reason: str, at: float) -> bool:
        """Stop the reply (cancel its task); whether it was not stopping already."""
        if self.stop_reason is not None or self.finishing:
            return False
        self.stop_reason, self.stop_at = reason, at
        if self.context is not None:
            self.context.stop_reason, self.context.stop_requested_at = reason, at
        if self.task is not None and not self.task.done():
            self.task.cancel()
        return True

    @property
    def paused(self) -> bool:
        """Whether the worker stopped pulling from ``respond`` for now."""
        return not self._running.is_set()

    def pause(self) -> None:
        """Stop pulling from ``respond`` until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Pull from ``respond`` again."""
        self._running.set()

    async def wait_running(self) -> None:
        """Return at once, or when the reply is resumed."""
        await self._running.wait()

    # Results

    @property
    def latency(self) -> float | None:
        """Seconds from the stopping event to ``respond`` closed, if stopped."""
        if self.stop_at is None or self.closed_at is None:
            return None
        return max(0.0, self.closed_at - self.stop_at)

    def outcome(self) -> tuple[str, str | None]:
        """The run's ``status`` and ``reason`` for its ``run.end``."""
        task, reason = self.task, self.stop_reason
        if task is not None and task.done() and not task.cancelled():
            exc = task.exception()
            if exc is None:
                return "complete", None
            if isinstance(exc, AlreadyEnded | NotInControl | SessionClosed):
                # The floor passed or the session closed under the reply.
                return "cancelled", reason or "floor_lost"
            if isinstance(exc, Timeout | ConnectionClosed) and reason is None:
                # The server did not answer the reply's reads or writes in
                # time: as if its producer was lost, it is answered again.
                return "error", "producer_lost"
            if reason is None:
                return "error", "producer_error"
        reason = reason or "cancelled"
        return ("error" if reason in LOST_REASONS else "cancelled"), reason


async def fetch_history(session: Session) -> list[HistoryMessage]:
    """The session's messages, from a compact read of the whole session.

    A page that times out is read again (reads are idempotent), up to
    ``_READ_ATTEMPTS`` times with a growing pause: a busy server delays the
    reply rather than failing it.
    """
    events = []
    offset = "-1"
    for _ in range(_MAX_PAGES):
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                page = await session.read(offset, view="compact")
                break
            except Timeout:
                if attempt == _READ_ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        events.extend(page.events)
        if page.up_to_date or not page.events:
            break
        offset = str(page.next_offset)
    return history_from(events)


async def stream_reply(worker: SessionWorker, run: Run) -> None:
    """Make the reply of ``run``: the task that :meth:`Run.stop` cancels."""
    settings, view = worker.settings, worker.view
    loop = asyncio.get_running_loop()
    history = [
        message
        for message in await fetch_history(worker.session)
        if message.start_offset <= run.target.offset
    ]
    message = next(
        (m for m in history if m.message_id == run.target.message_id),
        HistoryMessage(
            run.target.message_id,
            "user",
            Actor("customer", "customer"),
            [],
            run.target.offset,
        ),
    )
    context = Context(
        worker.session,
        run.run_id,
        message,
        history,
        customer_present=lambda: view.customer_present,
    )
    run.context = context
    stream = worker.session.stream_message(run_id=run.run_id, message_id=run.message_id)
    run.stream = stream  # its start may be stored even if cancelled while sent
    metrics = settings.metrics
    async with stream:
        replies = aiter(settings.respond(context))
        try:
            while True:
                await run.wait_running()
                try:
                    chunk = await anext(replies)
                except StopAsyncIteration:
                    break
                await run.wait_running()  # a chunk made while paused waits too
                if run.stop_reason is not None:  # respond swallowed the cancel
                    raise asyncio.CancelledError
                if await _write(stream, chunk):
                    metrics.deltas += 1
                    if not view.customer_present:
                        metrics.deltas_customer_absent += 1
        finally:
            aclose = getattr(replies, "aclose", None)
            if aclose is not None:
                await aclose()
            run.closed_at = loop.time()
        run.finishing = True


async def _write(stream: MessageStream, chunk: Chunk) -> bool:
    """Write one chunk; whether it published a delta."""
    if isinstance(chunk, str):
        if not chunk:
            return False
        await stream.write(chunk)
        return True
    if isinstance(chunk, Mapping):
        await stream.write_part(chunk)
        return True
    raise TypeError(f"respond yielded {type(chunk).__name__}, not text or a part")
