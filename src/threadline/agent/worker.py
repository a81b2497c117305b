"""The agent worker: one process, one WebSocket, many sessions."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from types import TracebackType
from typing import Final

from ..client.backoff import Backoff
from ..client.client import DEFAULT_TIMEOUT, Client, connect
from ..client.tokens import TokenProvider
from ..exceptions import (
    AuthError,
    ConnectionClosed,
    InvalidState,
    ThreadlineError,
    Timeout,
)
from ..protocol.actors import Actor
from ..protocol.queue import SESSIONS_FEED
from .context import Respond
from .metrics import WorkerMetrics
from .sessions import AbsentPolicy, SessionWorker, Settings
from .view import Policy

__all__ = [
    "DEFAULT_ABSENT_GRACE",
    "DEFAULT_DISCOVERY_INTERVAL",
    "DEFAULT_MAX_PAUSE",
    "DEFAULT_MAX_SESSIONS",
    "Worker",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS: Final = 100
"""Sessions one worker serves at most: the server's default limit of
subscriptions per WebSocket (``ws_max_subscriptions``)."""

DEFAULT_DISCOVERY_INTERVAL: Final = 5.0
"""Seconds between two looks at the worker's sessions (``GET /v1/me/sessions``)."""

DEFAULT_ABSENT_GRACE: Final = 10.0
"""Seconds the customer may be away before ``when_customer_absent`` applies
(on top of the server's own presence grace, 5 s by default)."""

DEFAULT_MAX_PAUSE: Final = 20.0
"""Seconds a reply stays paused before it is cancelled: under the server's
30-second lease, which would otherwise end the message as ``producer_lost``."""

_DEVICE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_ROLES: Final = frozenset({"ai", "agent", "service"})


class Worker:
    """Serves sessions for an AI participant: claims each customer message,
    streams ``respond(context)`` as the reply, and stops it when it must.

    One worker holds one :class:`~threadline.client.Client`, hence one
    WebSocket, with one subscription per session served (at most
    ``max_sessions``, 100 by default: the server's limit per connection).
    Run it with :meth:`run`, or as an async context manager::

        async def respond(context):
            yield f"You said: {context.text}"

        async with Worker(url, token, respond, device="agent-1") as worker:
            await worker.serve("order-1234")
            ...

    **Sessions.** A worker serves the sessions given in ``sessions``, those
    passed to :meth:`serve`, and — with ``discover`` — those its identity
    already takes part in (``GET /v1/me/sessions``, every
    ``discovery_interval`` seconds) that have unread messages or a message in
    flight. Serving a session records it there (the worker sets its cursor),
    so a restarted worker, or another replica with the same identity, finds
    it again. Nothing makes a brand-new session known to the worker but
    :meth:`serve` (or ``sessions``): call it where the application creates
    sessions.

    **Replicas.** Run several workers with the same token and a different
    ``device`` each: a customer message is claimed with ``run.start``
    published with ``expected_offset``, so only one replica answers it.

    **Restarts.** The worker's position in each session is its durable
    cursor: it moves to the last customer message that was settled
    (answered, cancelled, answered by a human). A worker that restarts with
    the same ``device`` ends the messages and runs its previous incarnation
    left open (``error``, ``producer_restarted``) and answers the customer
    message again; a reply whose producer never comes back is ended by the
    server's lease (``producer_lost``) and answered again by a replica.

    Args:
        url: The server's base URL.
        token: A token of role ``ai`` (or ``agent``, ``service``).
        respond: ``async def respond(context): yield ...``: text or parts.
        device: This replica's stable id (``[A-Za-z0-9_-]{1,64}``): keep it
            across restarts, and give each replica its own.
        sessions: Sessions to serve from the start.
        discover: Also serve the identity's sessions with unread messages.
        discovery_interval: Seconds between two discoveries.
        follow_new_sessions: Serve every session created with this token's
            role at the floor, as the server announces it in the tenant's
            new-sessions feed (``threadline.sessions``); the worker keeps its
            place there as a cursor, so a restart misses none.
        double_texting: ``interrupt`` (a newer customer message cancels the
            reply in flight, and the newest message is answered) or
            ``enqueue`` (each message is answered in turn).
        when_customer_absent: ``continue`` streaming, ``pause`` (stop pulling
            from ``respond`` until the customer is back, at most
            ``max_pause`` seconds, then cancel), or ``cancel`` the reply.
        absent_grace: Seconds of absence before that policy applies.
        max_pause: Seconds a paused reply waits for the customer.
        max_sessions: Most sessions served at once.
        max_attempts: Most replies to one customer message whose producers
            died before finishing.
        token_provider: Refreshes the token (see :func:`threadline.connect`).
        timeout: Seconds one operation may take.
        backoff: Waits between reconnects.

    Raises:
        ValueError: an argument is out of range, or the token's role may
            not answer customers.
    """

    def __init__(
        self,
        url: str,
        token: str,
        respond: Respond,
        *,
        device: str,
        sessions: Iterable[str] = (),
        discover: bool = True,
        discovery_interval: float = DEFAULT_DISCOVERY_INTERVAL,
        follow_new_sessions: bool = False,
        double_texting: Policy = "interrupt",
        when_customer_absent: AbsentPolicy = "continue",
        absent_grace: float = DEFAULT_ABSENT_GRACE,
        max_pause: float = DEFAULT_MAX_PAUSE,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_attempts: int = 3,
        token_provider: TokenProvider | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        if not isinstance(device, str) or not _DEVICE.match(device):
            raise ValueError("device must match [A-Za-z0-9_-]{1,64}")
        if double_texting not in ("interrupt", "enqueue"):
            raise ValueError("double_texting must be 'interrupt' or 'enqueue'")
        if when_customer_absent not in ("continue", "pause", "cancel"):
            raise ValueError("when_customer_absent must be continue, pause or cancel")
        if absent_grace < 0 or max_pause <= 0 or discovery_interval <= 0:
            raise ValueError(
                "absent_grace, max_pause and discovery_interval are seconds"
            )
        if max_sessions < 1 or max_attempts < 1:
            raise ValueError("max_sessions and max_attempts must be at least 1")
        if not callable(respond):
            raise TypeError("respond must be callable: async def respond(context)")
        self.client: Client = connect(
            url,
            token,
            device=device,
            token_provider=token_provider,
            timeout=timeout,
            backoff=backoff,
        )
        """The worker's client: one WebSocket for every session."""
        claims = self.client.tokens.claims
        role, sub = claims.get("role"), claims.get("sub")
        if role not in _ROLES or not isinstance(sub, str):
            raise ValueError(
                f"the worker needs an ai, agent or service token, not {role!r}"
            )
        self.device = device
        """This replica's device id."""
        self.metrics = WorkerMetrics()
        """The worker's counters."""
        self.settings = Settings(
            client=self.client,
            me=Actor(sub, role, claims.get("name"), device),
            respond=respond,
            metrics=self.metrics,
            double_texting=double_texting,
            when_customer_absent=when_customer_absent,
            absent_grace=absent_grace,
            max_pause=max_pause,
            max_attempts=max_attempts,
        )
        self.discover = discover
        self.discovery_interval = discovery_interval
        self.follow_new_sessions = follow_new_sessions
        self._following: asyncio.Task[None] | None = None
        self.max_sessions = max_sessions
        self._initial = list(sessions)
        self._sessions: dict[str, SessionWorker] = {}
        self._finished: set[str] = set()
        self._discovery: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._started = False
        self._closed = False
        self._error: BaseException | None = None
        self._full_warned = False

    def __repr__(self) -> str:
        return f"<Worker {self.settings.me.id!r} device {self.device!r}>"

    async def __aenter__(self) -> Worker:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Public methods

    @property
    def sessions(self) -> list[str]:
        """The ids of the sessions served now."""
        return list(self._sessions)

    def start(self) -> None:
        """Start serving in the background (``async with`` calls it).

        Serves ``sessions``, and starts discovery. A second call does nothing.

        Raises:
            InvalidState: the worker is closed.
        """
        if self._closed:
            raise InvalidState("the worker is closed")
        if self._started:
            return
        self._started = True
        for session_id in self._initial:
            self._serve(session_id)
        if self.discover:
            self._discovery = asyncio.create_task(
                self._discover(), name="threadline-agent-discovery"
            )
        if self.follow_new_sessions:
            self._following = asyncio.create_task(
                self._follow(), name="threadline-agent-follow"
            )

    async def run(self) -> None:
        """Serve until :meth:`stop` or :meth:`aclose`, then close.

        Cancelling it closes the worker (replies in flight end
        ``producer_stopped``, so that they are answered again).

        Raises:
            AuthError, ConnectionClosedError: the client cannot go on.
        """
        self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.aclose()
        if self._error is not None:
            raise self._error

    async def serve(self, session_id: str) -> None:
        """Serve ``session_id`` too; return once subscribed to it.

        Customer messages already in the session and not answered are
        answered. Serving a session served already does nothing.

        Raises:
            SessionNotFound, Forbidden: the token does not reach it.
            InvalidState: the worker is closed, or serves ``max_sessions``.
            Timeout: no answer in time.
        """
        if self._closed:
            raise InvalidState("the worker is closed")
        worker = self._serve(session_id)
        if worker is None:
            raise InvalidState(
                f"the worker serves {self.max_sessions} sessions already"
            )
        await asyncio.shield(worker.ready)

    def stop(self) -> None:
        """Make :meth:`run` return (it closes the worker). Safe from a signal
        handler of the loop."""
        self._stopped.set()

    async def aclose(self) -> None:
        """Stop serving: end replies in flight (``error``, ``producer_stopped``:
        another replica or a restart answers again), close the client.

        Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        for task in (self._discovery, self._following):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        workers = list(self._sessions.values())
        if workers:
            await asyncio.gather(*(w.aclose() for w in workers), return_exceptions=True)
        await self.client.aclose()

    # Private methods

    def _serve(self, session_id: str) -> SessionWorker | None:
        worker = self._sessions.get(session_id)
        if worker is not None:
            return worker
        if len(self._sessions) >= self.max_sessions:
            return None
        self.client.session(session_id)  # checks the id
        self._finished.discard(session_id)
        worker = SessionWorker(self.settings, session_id)
        self._sessions[session_id] = worker
        self.metrics.sessions = len(self._sessions)
        worker.task.add_done_callback(lambda task: self._ended(session_id, worker))
        return worker

    def _ended(self, session_id: str, worker: SessionWorker) -> None:
        if self._sessions.get(session_id) is worker:
            del self._sessions[session_id]
        self.metrics.sessions = len(self._sessions)
        task = worker.task
        if task.cancelled():
            return
        exc = task.exception()
        if self._closed:
            return
        if exc is None:
            self._finished.add(session_id)  # closed: never again
        elif isinstance(exc, AuthError | ConnectionClosed):
            if self._error is None:
                logger.error("! worker stops: %s", exc)
                self._error = exc
                self._stopped.set()
        elif isinstance(exc, ThreadlineError) and not isinstance(exc, Timeout):
            logger.warning("! session %s not served: %s", session_id, exc)
            self._finished.add(session_id)  # not found, forbidden, gone
        else:
            # Unreachable for a whole timeout, or a bug: try again later.
            logger.error("! session %s failed; retrying", session_id, exc_info=exc)
            asyncio.get_running_loop().call_later(
                self.discovery_interval, self._retry, session_id
            )

    def _retry(self, session_id: str) -> None:
        if not self._closed and session_id not in self._finished:
            if self._serve(session_id) is None:
                logger.warning("! session %s dropped: no slot", session_id)

    async def _follow(self) -> None:
        """Serve each new session announced in the feed, from our cursor."""
        feed = self.client.session(SESSIONS_FEED)
        me = self.settings.me
        while not self._stopped.is_set():
            try:
                state = await feed.state()
                start = next(
                    (
                        c["offset"]
                        for c in state.get("cursors", [])
                        if c.get("participant") == me.id
                    ),
                    "-1",
                )
                async with feed.subscribe(start) as events:
                    async for event in events:
                        data = event.data
                        if (
                            event.type == "session.created"
                            and data.get("controller_role") == me.role
                            and data["session"] not in self._finished
                            and self._serve(data["session"]) is None
                        ):
                            logger.warning(
                                "! session %s not served: no slot", data["session"]
                            )
                        await feed.set_cursor(event.offset)
            except (AuthError, ConnectionClosed) as exc:
                self._error = exc
                self._stopped.set()
                return
            except ThreadlineError as exc:
                logger.warning("! following new sessions failed: %s", exc)
            try:
                async with asyncio.timeout(self.discovery_interval):
                    await self._stopped.wait()
            except TimeoutError:
                pass

    async def _discover(self) -> None:
        while not self._stopped.is_set():
            try:
                listing = await self.client.my_sessions()
            except (AuthError, ConnectionClosed) as exc:
                self._error = exc
                self._stopped.set()
                return
            except ThreadlineError as exc:
                logger.warning("! discovery failed: %s", exc)
            else:
                for item in listing:
                    session_id = item["session"]["id"]
                    if session_id in self._sessions or session_id in self._finished:
                        continue
                    if not (item.get("unread") or item.get("in_flight")):
                        continue  # nothing to answer: left alone until there is
                    if self._serve(session_id) is None:
                        if not self._full_warned:
                            logger.warning(
                                "! serving %d sessions: more are waiting",
                                self.max_sessions,
                            )
                            self._full_warned = True
                        break
            try:
                async with asyncio.timeout(self.discovery_interval):
                    await self._stopped.wait()
            except TimeoutError:
                pass
