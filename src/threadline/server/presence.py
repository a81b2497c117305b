"""Presence and membership: who is here now, and who joined or left.

A :class:`PresenceManager` keeps the entries of a
:class:`~threadline.storage.presence.PresenceStore`, one per (participant,
device) of a session, and tells the local subscribers of the session about
every change (WebSocket ``presence`` messages, SSE ``event: presence``). It
never writes presence to the log.

**What keeps a device present.** A WebSocket subscription or a session SSE
stream *holds* its device in its session: while held, the manager refreshes
the entry every third of the TTL. A ``presence`` message or
``POST /v1/sessions/{id}/presence`` sets a status and keeps the device present
for one TTL (15 s by default). When the last hold of a device ends (a tab
closes, a socket drops, an SSE response ends to be resumed), the device stays
present for the **grace** period (5 s by default): a reload, a reconnect or an
SSE resume within it changes nothing and broadcasts nothing. A device whose
entry expires is broadcast ``offline``.

**Membership.** ``participant.joined`` is logged (as the server, attributed to
the participant's verified identity) when a participant who is not a member
gets a present device; ``participant.left`` when a member's last device drops
(its grace or TTL ran out, or it said ``offline``). A supervisor's are
staff-only (silent monitoring). The decision is taken against the session's
state at the tail and published with ``expected_offset`` (compare-and-set), and
one participant's decisions are serialized in the process: two devices joining
at once log one ``joined``, and a join racing a leave settles on what presence
says last. A participant who only publishes, without ever being present, is
not logged as joined.

**Visibility.** A supervisor's presence is staff-only like their membership:
customer subscribers never hear of it, and a customer's state snapshot leaves
it out.

Broadcasts are process-local (like the hub's feeds): with a presence store
shared between nodes, each node tells its own subscribers about the changes
it makes and the expiries it sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ..exceptions import ProtocolError, SessionClosed, TailMismatch
from ..protocol.actors import SERVER, Actor
from ..storage.presence import DEFAULT_EXPIRE_LIMIT, PresenceEntry, PresenceStore
from .session_writes import STATE, WorkingState
from .sessions import SessionManager, SessionNotFound

__all__ = [
    "DEFAULT_PRESENCE_GRACE",
    "DEFAULT_PRESENCE_TTL",
    "OFFLINE",
    "STATUSES",
    "Hold",
    "PresenceInbox",
    "PresenceListener",
    "PresenceManager",
    "is_staff_only",
]

logger = logging.getLogger(__name__)

DEFAULT_PRESENCE_TTL: Final = 15.0
"""Seconds a device stays present after it was last heard from."""

DEFAULT_PRESENCE_GRACE: Final = 5.0
"""Seconds a device stays present after its last connection ended."""

STATUSES: Final = ("active", "idle", "typing")
"""The statuses a device sets for itself; a new device is ``active``."""

OFFLINE: Final = "offline"
"""The status broadcast when a device drops."""

_MEMBERSHIP_ATTEMPTS: Final = 8  # compare-and-set tries before a plain publish

_Key = tuple[str, str, str, str]  # tenant, session, participant, device


def is_staff_only(actor: Actor) -> bool:
    """Whether ``actor``'s presence is hidden from customers (a supervisor's)."""
    return actor.role == "supervisor"


class PresenceListener(Protocol):
    """A local subscriber of a session's presence changes."""

    def presence(self, session: str, actor: Actor, status: str) -> None:
        """A device changed status (``offline`` once dropped).

        Runs on the event loop and must not await: the manager calls every
        listener of the session in turn.
        """


class PresenceInbox:
    """A listener that keeps changes until taken, for a transport that pulls
    (session SSE), and lets it wait for either a change or something else.

    Coalesced per device (the latest status wins, moved last), so what waits
    is bounded by the session's devices however slowly the client reads.
    """

    __slots__ = ("_ready", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        self._ready: asyncio.Future[None] | None = None

    @property
    def pending(self) -> bool:
        """Whether changes wait to be taken."""
        return bool(self._waiting)

    def presence(self, session: str, actor: Actor, status: str) -> None:
        self.add(session, actor.to_json(), status)

    def add(self, session: str, actor: dict[str, Any], status: str) -> None:
        """Keep a change (``actor`` as JSON): ``{session, actor, status}``."""
        key = (actor["id"], actor.get("device") or "")
        self._waiting.pop(key, None)  # re-inserted last: changes keep their order
        self._waiting[key] = {"session": session, "actor": actor, "status": status}
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    def take(self) -> list[dict[str, Any]]:
        """Every waiting change, in order; none wait after."""
        taken = list(self._waiting.values())
        self._waiting.clear()
        return taken

    async def wait(self, waiting: Coroutine[Any, Any, bool]) -> bool:
        """Await ``waiting`` (a store wait) unless a change comes first.

        Returns what ``waiting`` returned, or False if a change came first
        (the store wait is then cancelled). Cancelling this cancels
        ``waiting`` too. One waiter at a time.
        """
        if self._waiting:
            waiting.close()
            return False
        loop = asyncio.get_running_loop()
        task = loop.create_task(waiting)
        ready = self._ready = loop.create_future()
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._ready = None
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            return False
        return task.result()


@dataclass(eq=False, slots=True)
class Hold:
    """One connection's hold on a device's presence; end it with
    :meth:`PresenceManager.release`."""

    key: _Key
    released: bool = False


@dataclass(slots=True)
class _Held:
    actor: Actor
    status: str = "active"
    holders: int = 0
    refreshed: float = 0.0
    released_at: float = 0.0
    graced: bool = True
    """The grace period of the last release is written to the store."""


@dataclass(slots=True)
class _Listening:
    listener: PresenceListener
    staff: bool
    own: tuple[str, str] | None


@dataclass(slots=True)
class _Lock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class PresenceManager:
    """The presence of this process's devices, its broadcasts, and membership.

    Args:
        store: Where entries live.
        sessions: Where ``participant.joined`` / ``participant.left`` go.
        ttl: Seconds a device stays present after it was last heard from.
        grace: Seconds a device stays present after its last hold ended.
        clock: Epoch seconds (tests pass a fake clock and call :meth:`tick`).
        interval: Seconds between ticks of the background task (default: a
            quarter of the smaller of ``ttl`` and ``grace``, at most 1 s).

    Raises:
        ValueError: ``ttl`` or ``grace`` is not positive.
    """

    def __init__(
        self,
        store: PresenceStore,
        sessions: SessionManager,
        *,
        ttl: float = DEFAULT_PRESENCE_TTL,
        grace: float = DEFAULT_PRESENCE_GRACE,
        clock: Callable[[], float] = time.time,
        interval: float | None = None,
    ) -> None:
        if not (ttl > 0 and grace > 0):
            raise ValueError("presence ttl and grace must be positive")
        self.store = store
        self.sessions = sessions
        self.ttl = ttl
        self.grace = grace
        self.clock = clock
        self.interval = min(1.0, ttl / 4, grace / 4) if interval is None else interval
        self._held: dict[_Key, _Held] = {}
        self._listeners: dict[tuple[str, str], list[_Listening]] = {}
        self._locks: dict[tuple[str, str, str], _Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # Life

    def start(self) -> None:
        """Start the background task that keeps held devices present and
        sweeps expired ones (every :attr:`interval`)."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(
                self._run(), name="threadline-presence"
            )

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop ticking; wait up to ``timeout`` for membership events in flight.

        Entries stay in the store until they expire: devices that reconnect
        to a restarted server within their TTL do not flap.
        """
        self._closed = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def flush(self) -> None:
        """Wait until no broadcast-driven write or membership event is in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("! presence tick failed")
            await asyncio.sleep(self.interval)

    # Devices

    async def hold(self, tenant: str, session: str, actor: Actor) -> Hold:
        """Hold ``actor``'s device present in ``session`` until released.

        A device that was present already (another connection, or within its
        grace) keeps its status and nothing is broadcast; a new one is
        broadcast ``active`` and may log ``participant.joined``.

        Raises:
            ValueError: ``actor`` has no device.
            StorageError: the presence store failed (the hold is not taken).
        """
        key = _key(tenant, session, actor)
        held = self._held.get(key)
        if held is None or (
            held.holders == 0
            and held.graced
            and self.clock() >= held.released_at + self.grace
        ):
            held = self._held[key] = _Held(actor)  # a new device: ``active``
        held.holders += 1
        if held.holders == 1:
            try:
                await self._write(key, held.actor, held.status, self.ttl)
            except BaseException:
                held.holders -= 1
                raise
        return Hold(key)

    def release(self, hold: Hold) -> None:
        """End a hold (once; later calls do nothing). When a device's last hold
        ends, its grace period starts. Safe to call from ``finally`` blocks and
        synchronous code: the store is written by a task of the manager."""
        if hold.released:
            return
        hold.released = True
        held = self._held.get(hold.key)
        if held is None or held.holders <= 0:
            return
        held.holders -= 1
        if held.holders == 0:
            held.released_at = self.clock()
            held.graced = False
            self._spawn(self._start_grace(hold.key), "grace")

    async def set_status(
        self, tenant: str, session: str, actor: Actor, status: str
    ) -> None:
        """Set ``actor``'s device's status; it stays present one TTL from now.

        Broadcast if it changed (or the device is new, which may log
        ``participant.joined``).

        Raises:
            ProtocolError: ``invalid_presence``: an unknown status.
            ValueError: ``actor`` has no device.
        """
        if status not in STATUSES:
            raise ProtocolError(
                f"presence status must be one of {', '.join(STATUSES)}",
                "invalid_presence",
            )
        key = _key(tenant, session, actor)
        held = self._held.get(key)
        if held is not None:
            held.status = status
        await self._write(key, actor, status, self.ttl)

    async def remove(self, tenant: str, session: str, actor: Actor) -> None:
        """Drop ``actor``'s device now (it said ``offline``), without grace.

        A hold still open keeps it: its next refresh brings it back.

        Raises:
            ValueError: ``actor`` has no device.
        """
        key = _key(tenant, session, actor)
        held = self._held.get(key)
        if held is not None and held.holders == 0:
            del self._held[key]
        removed = await self.store.remove(tenant, session, key[2], key[3], self.clock())
        if removed is not None:
            self._dropped(removed)

    async def snapshot(
        self, tenant: str, session: str, *, staff: bool
    ) -> list[dict[str, Any]]:
        """The session's present devices a reader may see: ``{actor, status}``."""
        entries = await self.store.list(tenant, session, self.clock())
        return [
            {"actor": entry.actor.to_json(), "status": entry.status}
            for entry in entries
            if staff or not is_staff_only(entry.actor)
        ]

    # Listeners

    def add_listener(
        self,
        tenant: str,
        session: str,
        listener: PresenceListener,
        *,
        staff: bool,
        own: Actor | None = None,
    ) -> None:
        """Tell ``listener`` of the session's presence changes it may see.

        Args:
            staff: Whether the listener reads staff-only presence (a
                customer's listener does not).
            own: The listener's own device, which it is not told about.
        """
        mine = None if own is None or own.device is None else (own.id, own.device)
        listening = self._listeners.setdefault((tenant, session), [])
        listening.append(_Listening(listener, staff, mine))

    def remove_listener(
        self, tenant: str, session: str, listener: PresenceListener
    ) -> None:
        """Stop telling ``listener`` (does nothing if it is not listening)."""
        listening = self._listeners.get((tenant, session))
        if listening is None:
            return
        listening[:] = [item for item in listening if item.listener is not listener]
        if not listening:
            del self._listeners[(tenant, session)]

    def _broadcast(self, tenant: str, session: str, actor: Actor, status: str) -> None:
        listening = self._listeners.get((tenant, session))
        if not listening:
            return
        hidden = is_staff_only(actor)
        device = (actor.id, actor.device)
        for item in list(listening):
            if (hidden and not item.staff) or item.own == device:
                continue
            try:
                item.listener.presence(session, actor, status)
            except Exception:
                logger.exception("! presence listener of %s failed", session)

    # Timers

    async def tick(self) -> None:
        """Refresh held devices that are due, then sweep expired entries.

        The background task calls this every :attr:`interval`; tests with a
        fake clock call it directly.
        """
        now = self.clock()
        due = now - self.ttl / 3
        for key, held in list(self._held.items()):
            if held.holders > 0:
                if held.refreshed <= due:
                    await self._write(key, held.actor, held.status, self.ttl)
            elif not held.graced:
                await self._start_grace(key)
            elif now >= held.released_at + self.grace:
                self._held.pop(key, None)
        while True:
            expired = await self.store.expire(self.clock())
            for entry in expired:
                holding = self._held.get(_entry_key(entry))
                if holding is not None and holding.holders > 0:
                    # Held but expired (the loop stalled past the TTL): renew.
                    await self._write(
                        _entry_key(entry), holding.actor, holding.status, self.ttl
                    )
                else:
                    self._dropped(entry)
            if len(expired) < DEFAULT_EXPIRE_LIMIT:
                return

    # Private methods

    async def _write(self, key: _Key, actor: Actor, status: str, ttl: float) -> None:
        tenant, session, _, device = key
        now = self.clock()
        previous = await self.store.set(
            tenant, session, actor, device, status, ttl, now
        )
        held = self._held.get(key)
        if held is not None and held.holders > 0:
            held.refreshed = now
        if previous is None:
            self._broadcast(tenant, session, _with_device(actor, device), status)
            self._reconcile_soon(tenant, session, actor, appeared=True)
        elif previous.status != status:
            self._broadcast(tenant, session, _with_device(actor, device), status)

    async def _start_grace(self, key: _Key) -> None:
        held = self._held.get(key)
        if held is None or held.holders > 0 or held.graced:
            return  # held again meanwhile, or done already
        held.graced = True
        tenant, session, participant, device = key
        now = self.clock()
        left = held.released_at + self.grace - now
        if left <= 0:
            removed = await self.store.remove(tenant, session, participant, device, now)
            if removed is not None:
                self._dropped(removed)
            return
        previous = await self.store.set(
            tenant, session, held.actor, device, held.status, left, now
        )
        if previous is None:
            # It had dropped already (and was broadcast so): keep it dropped.
            await self.store.remove(tenant, session, participant, device, now)

    def _dropped(self, entry: PresenceEntry) -> None:
        self._broadcast(entry.tenant, entry.session, entry.actor, OFFLINE)
        self._reconcile_soon(entry.tenant, entry.session, entry.actor, appeared=False)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        if self._closed:  # shutting down: entries expire on their own
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(
            coro, name=f"threadline-presence-{name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("! presence task failed", exc_info=task.exception())

    # Membership

    def _reconcile_soon(
        self, tenant: str, session: str, actor: Actor, *, appeared: bool
    ) -> None:
        participant = Actor(actor.id, actor.role, actor.name)
        self._spawn(
            self._reconcile(tenant, session, participant, appeared), "membership"
        )

    async def _reconcile(
        self, tenant: str, session: str, participant: Actor, appeared: bool
    ) -> None:
        """Log joined when a device appeared (unless a member), left when one
        dropped and none of the participant's is present (if a member).

        One participant's calls run one at a time, in the order the changes
        happened (the lock is FIFO): a device that comes and goes before its
        turn still logs joined then left, and a leave that finds a device
        back logs nothing.
        """
        lock_key = (tenant, session, participant.id)
        lock = self._locks.get(lock_key)
        if lock is None:
            lock = self._locks[lock_key] = _Lock()
        lock.users += 1
        try:
            async with lock.lock:
                present = appeared
                if not appeared:
                    entries = await self.store.list(tenant, session, self.clock())
                    present = any(e.participant == participant.id for e in entries)
                with contextlib.suppress(SessionNotFound, SessionClosed):
                    await self._log_membership(tenant, session, participant, present)
        finally:
            lock.users -= 1
            if lock.users == 0:
                del self._locks[lock_key]

    async def _log_membership(
        self, tenant: str, session: str, participant: Actor, present: bool
    ) -> None:
        for attempt in range(_MEMBERSHIP_ATTEMPTS):
            raw = await self.sessions.store.index.get(tenant, STATE, session)
            if raw is None:
                return  # no such session (any more)
            working = WorkingState.from_json(raw)
            state = working.state
            draft = state.join(participant) if present else state.leave(participant)
            if draft is None:
                return  # membership already matches presence
            # Compare-and-set on the tail: the decision holds for the state it
            # was taken on. Past the attempts (a busy session), the lock above
            # and the draft's id (derived from the tail) still dedupe.
            last = attempt == _MEMBERSHIP_ATTEMPTS - 1
            try:
                await self.sessions.publish(
                    tenant,
                    session,
                    SERVER,
                    [draft],
                    expected_offset=None if last else working.full_tail,
                )
            except TailMismatch:
                continue
            return


def _key(tenant: str, session: str, actor: Actor) -> _Key:
    if actor.device is None:
        raise ValueError("presence needs the actor's device")
    return (tenant, session, actor.id, actor.device)


def _entry_key(entry: PresenceEntry) -> _Key:
    return (entry.tenant, entry.session, entry.participant, entry.device)


def _with_device(actor: Actor, device: str) -> Actor:
    if actor.device == device:
        return actor
    return Actor(actor.id, actor.role, actor.name, device)
