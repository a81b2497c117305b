"""One session served by a worker: read it, claim customer messages, reply.

Each :class:`SessionWorker` holds one subscription on the worker's shared
WebSocket and runs two tasks:

* the **reader** folds each event into the :class:`~.view.SessionView` and
  reacts at once to what must stop a reply (a ``run.cancel``, a lost floor, a
  newer customer message under ``interrupt``): it cancels the reply's task,
  which closes the ``respond`` iterator;
* the **driver** claims the next customer message (``run.start`` with
  ``expected_offset``), streams the reply, ends the run, and moves the cursor.

A reply runs in a task of its own (:mod:`.runs`), so that the reader never
waits for a publish and the driver never waits for an event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..client.client import Client
from ..client.ids import uuid7
from ..client.subscription import Subscription
from ..exceptions import (
    AlreadyEnded,
    AuthError,
    ConnectionClosed,
    InvalidState,
    SessionRuleError,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.actors import Actor
from ..protocol.offsets import ZERO, Offset
from .context import Respond
from .metrics import WorkerMetrics
from .runs import Run, stream_reply
from .view import (
    LOST_REASONS,
    CustomerMessage,
    CustomerMessageArrived,
    FloorChanged,
    MessageEnded,
    Policy,
    RunCancelRequested,
    RunEnded,
    SessionClosed,
    SessionView,
    Signal,
)

__all__ = ["AbsentPolicy", "SessionWorker", "Settings"]

logger = logging.getLogger(__name__)

AbsentPolicy = Literal["continue", "pause", "cancel"]
"""What a reply does once the customer has been away for the grace period."""

_RETRY_DELAY: Final = 1.0  # seconds after an unexpected failure of a step
CLOSE_GRACE: Final = 1.0
"""Seconds :meth:`SessionWorker.aclose` lets a stopped reply publish its end;
past it (the server may be gone) the server's lease sweep ends it
(``producer_lost``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What every session of a worker shares."""

    client: Client
    me: Actor
    respond: Respond
    metrics: WorkerMetrics
    double_texting: Policy = "interrupt"
    when_customer_absent: AbsentPolicy = "continue"
    absent_grace: float = 10.0
    max_pause: float = 20.0
    max_attempts: int = 3


class SessionWorker:
    """Serves one session until it closes, fails, or :meth:`aclose`.

    Args:
        settings: The worker's settings.
        session_id: The session.
    """

    def __init__(self, settings: Settings, session_id: str) -> None:
        self.settings = settings
        self.session = settings.client.session(session_id)
        self.view = SessionView(settings.me, max_attempts=settings.max_attempts)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once subscribed (or failed to)."""
        self.run: Run | None = None
        """The reply in progress, if any."""
        self.log = logging.LoggerAdapter(logger, {"session": session_id})
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._advanced = asyncio.Event()
        self._cursor: Offset | None = None
        self._published: Offset | None = None
        self._closing = False
        self._absent_since: float | None = None
        self._absent_timer: asyncio.TimerHandle | None = None
        self._pause_timer: asyncio.TimerHandle | None = None
        self._subscription: Subscription | None = None
        self._driver: asyncio.Task[None] | None = None
        self._stale: tuple[list[str], list[str]] = ([], [])
        self.task = asyncio.create_task(
            self._main(), name=f"threadline-agent-{session_id}"
        )
        """The session's task: it ends when the session does."""

    def __repr__(self) -> str:
        return f"<SessionWorker {self.session.id!r}>"

    # Public methods

    async def aclose(self) -> None:
        """Stop: end the reply in flight (``producer_stopped``, so that another
        replica or a restart answers again), unsubscribe. Safe to call twice."""
        self._set_closing()
        run, driver = self.run, self._driver
        if driver is not None and not driver.done():
            if run is not None:
                self._stop(run, "producer_stopped")
                # The driver ends the run, if the server is still there.
                grace = min(self.settings.client.timeout, CLOSE_GRACE)
                await asyncio.wait([driver], timeout=grace)
            driver.cancel()
        if not self.task.done():
            self.task.cancel()
        await asyncio.wait([self.task])

    # The session's task

    async def _main(self) -> None:
        try:
            subscription = await self._subscribe()
        except BaseException as exc:
            if not self.ready.done():
                failure = exc
                if isinstance(exc, asyncio.CancelledError):
                    failure = InvalidState("the worker closed")
                self.ready.set_exception(failure)
                self.ready.exception()  # retrieved: serve() may not wait
            raise
        self.ready.set_result(None)
        self._driver = asyncio.create_task(
            self._drive(), name=f"threadline-agent-driver-{self.session.id}"
        )
        try:
            async with subscription:
                async for event in subscription:
                    arrival = self._loop.time()
                    self._react(self.view.apply(event), arrival)
                    self._advanced.set()
                    self._changed.set()
            self.log.info("= session %s ended", self.session.id)
        finally:
            subscription.remove_presence_callback(self._on_presence)
            self._cancel_timers()
            self._set_closing()
            run = self.run
            if run is not None:
                self._stop(
                    run, "session_closed" if self.view.closed else "producer_stopped"
                )
            if not self._driver.done():
                await asyncio.wait([self._driver], timeout=self.settings.client.timeout)
                self._driver.cancel()

    def _set_closing(self) -> None:
        self._closing = True
        self._changed.set()
        self._advanced.set()

    async def _subscribe(self) -> Subscription:
        """Find the cursor, subscribe after it, take the state snapshot."""
        # Moving the cursor to ZERO changes nothing (it never moves back) but
        # answers where it is, and makes the session one of the worker's
        # sessions (GET /v1/me/sessions): a restarted worker finds it again.
        cursor = await self.session.set_cursor(ZERO)
        self._cursor = cursor
        start = "-1" if cursor.position == 0 else str(cursor)
        # Compact: the catch-up costs O(messages), not O(deltas); live
        # events are raw.
        subscription = self.session.subscribe(start, view="compact")
        self._subscription = subscription
        await subscription.start()
        self._stale = self.view.load(subscription.state or {})
        subscription.add_presence_callback(self._on_presence)
        self._on_presence(subscription)
        self.log.debug("= serving %s from %s", self.session.id, start)
        return subscription

    async def _end_stale(self, messages: list[str], runs: list[str]) -> None:
        """End what an earlier incarnation of this worker (same identity and
        device) left open, so that the customer's message is answered again.

        Until the server's lease ends them (``producer_lost``) they would keep
        the session busy; a restart with the same device ends them at once.
        """
        drafts: list[tuple[str, dict[str, Any]]] = [
            ("message.end", {"message_id": m, "status": "error"}) for m in messages
        ] + [("run.end", {"run_id": r, "status": "error"}) for r in runs]
        for type_, data in drafts:
            data["reason"] = "producer_restarted"
            try:
                offset = await self.session.publish(type_, data)
            except (AlreadyEnded, SessionRuleError) as exc:
                self.log.debug("= stale %s already ended: %s", type_, exc)
                continue
            self._published = offset
            self.settings.metrics.stale_ended += 1
            self.log.info("= ended a stale %s (%s)", type_, data)

    # The reader's reactions (no awaiting: a stop must be immediate)

    def _react(self, signals: list[Signal], arrival: float) -> None:
        # The run may still be claiming: stopping it then is harmless (a lost
        # claim is dropped) and right (a won claim must not stream).
        run = self.run
        if run is None:
            return
        for signal in signals:
            if isinstance(signal, RunCancelRequested):
                if signal.run_id in (None, run.run_id):
                    self._stop(run, "cancelled", arrival)
            elif isinstance(signal, CustomerMessageArrived):
                if (
                    self.settings.double_texting == "interrupt"
                    and signal.message.offset > run.target.offset
                ):
                    self._stop(run, "interrupted", arrival)
            elif isinstance(signal, FloorChanged):
                if not self.view.holds_floor:
                    self._stop(run, "floor_lost", arrival)
            elif isinstance(signal, RunEnded):
                if signal.run_id == run.run_id and not self.view.is_mine(signal.actor):
                    run.ended_by_server = True
                    self._stop(run, signal.reason or "ended", arrival)
            elif isinstance(signal, MessageEnded):
                if signal.message_id == run.message_id and signal.actor.is_server:
                    self._stop(run, signal.reason or "ended", arrival)
            elif isinstance(signal, SessionClosed):
                self._stop(run, "session_closed", arrival)

    def _stop(self, run: Run, reason: str, at: float | None = None) -> bool:
        """Stop ``run``'s reply now; whether this call stopped it."""
        if not run.stop(reason, self._loop.time() if at is None else at):
            return False
        self._cancel_timers()
        self.log.info("= stopping run %s: %s", run.run_id, reason)
        return True

    # Presence

    def _on_presence(self, subscription: Subscription) -> None:
        if not self.view.set_presence(subscription.presence):
            return
        if self.view.customer_present:
            self._absent_since = None
            self._cancel_timers()
            run = self.run
            if run is not None and run.paused:
                self.log.info("= customer back: resuming run %s", run.run_id)
                run.resume()
        else:
            self._absent_since = self._loop.time()
            self._arm_absence()

    def _arm_absence(self) -> None:
        """Apply the absence policy to the reply in flight after the grace."""
        settings, run = self.settings, self.run
        if (
            run is None
            or settings.when_customer_absent == "continue"
            or self._absent_since is None
            or self._absent_timer is not None
        ):
            return
        delay = self._absent_since + settings.absent_grace - self._loop.time()
        self._absent_timer = self._loop.call_later(
            max(0.0, delay), self._absent_expired
        )

    def _absent_expired(self) -> None:
        self._absent_timer = None
        run, metrics = self.run, self.settings.metrics
        if run is None or self.view.customer_present or run.stop_reason is not None:
            return
        if self.settings.when_customer_absent == "cancel":
            self._stop(run, "customer_absent")
            return
        if not run.paused:
            self.log.info("= customer away: pausing run %s", run.run_id)
            run.pause()
            metrics.pauses += 1
            self._pause_timer = self._loop.call_later(
                self.settings.max_pause, self._pause_expired
            )

    def _pause_expired(self) -> None:
        self._pause_timer = None
        run = self.run
        if run is not None and run.paused:
            self._stop(run, "customer_absent")

    def _cancel_timers(self) -> None:
        for timer in (self._absent_timer, self._pause_timer):
            if timer is not None:
                timer.cancel()
        self._absent_timer = self._pause_timer = None

    # The driver

    async def _drive(self) -> None:
        # Ended here, not before the reader starts: the reader must drain
        # the catch-up while these publishes wait for their answers on the
        # same WebSocket.
        try:
            await self._end_stale(*self._stale)
        except (AuthError, ConnectionClosed, InvalidState):
            return
        while not self._closing:
            await self._changed.wait()
            self._changed.clear()
            if self._closing:
                return
            try:
                await self._step()
            except (AuthError, ConnectionClosed, InvalidState):
                return  # the client is done; the reader ends the session
            except Exception:
                self.log.exception("! session %s: step failed", self.session.id)
                await asyncio.sleep(_RETRY_DELAY)
                self._changed.set()

    async def _step(self) -> None:
        await self._move_cursor()
        target = self.view.next_claim(self.settings.double_texting)
        if target is None:
            return
        # Our own publishes must be folded first, or the claim would be
        # refused for a tail we moved ourselves.
        if self._published is not None and not await self._reach(self._published):
            self._changed.set()
            return
        await self._claim(target)
        self._changed.set()  # look again: the next message, the cursor

    async def _claim(self, target: CustomerMessage) -> None:
        run_id = uuid7()
        expected = self.view.last_offset
        run = Run(run_id, target, message_id=uuid7())
        self.run = run  # from here a cancel or an interrupt reaches it
        try:
            try:
                (offset,) = await self.session.publish_many(
                    [
                        {
                            "type": "run.start",
                            "data": {
                                "run_id": run_id,
                                "in_reply_to": target.message_id,
                            },
                        }
                    ],
                    expected_offset=expected,
                )
            except TailMismatch as exc:
                # Another replica, or any newer event: read up to the tail,
                # then decide again (someone may answer it now; a newer
                # message may change what to answer).
                self.settings.metrics.claims_lost += 1
                self.log.debug("= claim of %s lost (%s)", target.message_id, exc)
                await self._reach(exc.tail)
                return
            except SessionRuleError as exc:
                self.log.info("= cannot claim %s: %s", target.message_id, exc)
                return
            self._published = offset
            self.settings.metrics.runs += 1
            await self._reply(run)
        finally:
            self.run = None
            self._cancel_timers()
            if run.task is not None and not run.task.done():
                run.task.cancel()  # the driver itself was cancelled

    async def _reply(self, run: Run) -> None:
        """Stream the reply, then end the message (if need be) and the run."""
        settings = self.settings
        if run.stop_reason is None:
            self._arm_absence()
            run.task = asyncio.create_task(
                stream_reply(self, run), name=f"threadline-agent-run-{run.run_id}"
            )
            await asyncio.wait([run.task])
        status, reason = run.outcome()
        self._count(status, reason)
        if status == "error" and reason == "producer_error":
            exc = run.task.exception() if run.task is not None else None
            self.log.error("! run %s failed", run.run_id, exc_info=exc)
        if run.latency is not None:
            settings.metrics.stop_latency_max = max(
                settings.metrics.stop_latency_max, run.latency
            )
        if run.ended_by_server:
            return  # the server ended the message and the run (floor, lease, close)
        if run.stream is not None and run.stream.status is None:
            await self._publish_quietly(
                "message.end",
                {
                    "message_id": run.message_id,
                    "status": "cancelled" if status == "cancelled" else "error",
                    "reason": reason or "ended",
                },
            )
        data: dict[str, Any] = {"run_id": run.run_id, "status": status}
        if reason is not None:
            data["reason"] = reason
        await self._publish_quietly("run.end", data)
        if status == "error" and reason in LOST_REASONS:
            self.log.info("= run %s stopped; the message stays open", run.run_id)

    def _count(self, status: str, reason: str | None) -> None:
        metrics = self.settings.metrics
        if status == "complete":
            metrics.runs_completed += 1
        elif reason == "producer_error":
            metrics.errors += 1
        elif reason == "cancelled":
            metrics.cancels += 1
        elif reason == "interrupted":
            metrics.interrupts += 1
        elif reason == "floor_lost":
            metrics.floor_lost += 1
        elif reason == "customer_absent":
            metrics.absent_stops += 1

    async def _publish_quietly(self, type_: str, data: dict[str, Any]) -> None:
        """Publish, unless the session already ended what it names."""
        try:
            self._published = await self.session.publish(type_, data)
        except SessionRuleError as exc:  # already ended, floor or session gone
            self.log.debug("= %s not published: %s", type_, exc)

    async def _move_cursor(self) -> None:
        watermark = self.view.watermark
        if watermark is None or (
            self._cursor is not None and watermark <= self._cursor
        ):
            return
        try:
            self._cursor = await self.session.set_cursor(watermark)
        except ThreadlineError as exc:
            self.log.warning("! cursor not moved: %s", exc)

    async def _reach(self, offset: Offset) -> bool:
        """Wait until the view has folded ``offset``; whether it did in time."""
        try:
            async with asyncio.timeout(self.settings.client.timeout):
                while self.view.last_offset is None or self.view.last_offset < offset:
                    if self._closing:
                        return False
                    self._advanced.clear()
                    await self._advanced.wait()
        except TimeoutError:
            return False
        return True
