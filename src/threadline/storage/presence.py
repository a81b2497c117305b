"""The presence seam: which devices of which participants are here now.

Presence is ephemeral (PRODUCT.md: "Only presence is ephemeral"): an entry is
keyed by (tenant, session, participant, device), carries the device's status
and expires ``ttl`` seconds after it was last set. Nothing is logged and
nothing is fsync'd. The server's
:class:`~threadline.server.presence.PresenceManager` keeps entries alive for
connected devices, broadcasts changes, and logs membership; the store only
keeps entries and reports the ones that expire.

Every implementation must keep these obligations, which the contract suite
(:data:`threadline.testing.PRESENCE_CHECKS`) checks, restarting the store
between write and read:

* **Keyed by (participant, device).** One entry per device of a participant in
  a session of a tenant; sessions and tenants never see each other's entries.
* **Atomic set.** :meth:`PresenceStore.set` replaces the entry and returns the
  live entry it replaced (``None`` if there was none, or it had expired), in
  one step: two concurrent sets of one device see each other's result.
* **Expiry.** An entry whose ``expires`` is at or before ``now`` is expired: no
  read returns it, and :meth:`PresenceStore.expire` removes and reports it
  exactly once (unless a ``set`` or ``remove`` came first). Time is always
  the caller's ``now``; stores read no clock.
* **Kept until expiry.** Entries survive a restart of the store until they
  expire, so a server restart shorter than the TTL does not flap presence (a
  memory store keeps them for the life of the object).
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..exceptions import StorageError
from ..protocol.actors import Actor

if TYPE_CHECKING:
    from .base import LogStore

__all__ = [
    "DEFAULT_EXPIRE_LIMIT",
    "MemoryPresenceStore",
    "PresenceEntry",
    "PresenceStore",
    "SQLitePresenceStore",
    "presence_store_for",
]

DEFAULT_EXPIRE_LIMIT: Final = 1000
"""Most entries one :meth:`PresenceStore.expire` call removes."""


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One device of one participant, present in one session until ``expires``."""

    tenant: str
    session: str
    actor: Actor
    """The participant (``id``, ``role``, ``name``) with its ``device`` set."""
    status: str
    """What the device set: ``active``, ``idle`` or ``typing``."""
    expires: float
    """Epoch seconds; the entry is gone at this instant."""

    @property
    def participant(self) -> str:
        """The participant id."""
        return self.actor.id

    @property
    def device(self) -> str:
        """The device id."""
        device = self.actor.device
        assert device is not None  # every stored entry has one
        return device


def _entry(
    tenant: str,
    session: str,
    participant: Actor,
    device: str,
    status: str,
    expires: float,
) -> PresenceEntry:
    actor = Actor(participant.id, participant.role, participant.name, device)
    return PresenceEntry(tenant, session, actor, status, expires)


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError("a presence ttl must be positive")


class PresenceStore(ABC):
    """Abstract presence store. See the module docstring for the contract.

    All methods are coroutines meant for one event loop; backend failures are
    :class:`~threadline.exceptions.StorageError`.
    """

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open the store (idempotent)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close the store (idempotent); entries stay until they expire."""

    @abstractmethod
    async def set(
        self,
        tenant: str,
        session: str,
        participant: Actor,
        device: str,
        status: str,
        ttl: float,
        now: float,
    ) -> PresenceEntry | None:
        """Make the device present until ``now + ttl``, with ``status``.

        Replaces the device's entry whatever its expiry was (a shorter ``ttl``
        shortens it: that is how a grace period starts).

        Args:
            participant: Whose device: ``id``, ``role`` and ``name`` are kept
                (its ``device`` is ignored; ``device`` is used).

        Returns:
            The live entry replaced, or ``None`` if the device was absent or
            its entry had expired (a newly present device).

        Raises:
            ValueError: ``ttl`` is not positive.
        """

    @abstractmethod
    async def remove(
        self, tenant: str, session: str, participant: str, device: str, now: float
    ) -> PresenceEntry | None:
        """Forget the device's entry.

        Returns:
            The entry removed, or ``None`` if it was absent or expired.
        """

    @abstractmethod
    async def list(
        self, tenant: str, session: str, now: float
    ) -> builtins.list[PresenceEntry]:
        """The session's live entries, by participant id then device id.

        Expired entries are left out (and left for :meth:`expire` to report).
        """

    @abstractmethod
    async def expire(
        self, now: float, limit: int = DEFAULT_EXPIRE_LIMIT
    ) -> builtins.list[PresenceEntry]:
        """Remove entries expired at ``now``, soonest first, at most ``limit``.

        Every tenant and session. Each expired entry is returned by exactly
        one call; call again while a call returns ``limit`` entries.
        """


class MemoryPresenceStore(PresenceStore):
    """Presence in a dict, with a heap of expiry times.

    Where it stops working: one process. Entries live as long as the object
    (a "restart" that keeps the object keeps them).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], dict[tuple[str, str], PresenceEntry]] = {}
        self._heap: list[tuple[float, int, str, str, str, str]] = []
        self._seq = itertools.count()

    async def set(
        self,
        tenant: str,
        session: str,
        participant: Actor,
        device: str,
        status: str,
        ttl: float,
        now: float,
    ) -> PresenceEntry | None:
        _check_ttl(ttl)
        entries = self._entries.setdefault((tenant, session), {})
        key = (participant.id, device)
        previous = entries.get(key)
        entry = _entry(tenant, session, participant, device, status, now + ttl)
        entries[key] = entry
        heapq.heappush(
            self._heap,
            (entry.expires, next(self._seq), tenant, session, participant.id, device),
        )
        if previous is None or previous.expires <= now:
            return None
        return previous

    async def remove(
        self, tenant: str, session: str, participant: str, device: str, now: float
    ) -> PresenceEntry | None:
        entries = self._entries.get((tenant, session))
        if entries is None:
            return None
        removed = entries.pop((participant, device), None)
        if not entries:
            del self._entries[(tenant, session)]
        if removed is None or removed.expires <= now:
            return None
        return removed

    async def list(
        self, tenant: str, session: str, now: float
    ) -> builtins.list[PresenceEntry]:
        entries = self._entries.get((tenant, session), {})
        return [entries[key] for key in sorted(entries) if entries[key].expires > now]

    async def expire(
        self, now: float, limit: int = DEFAULT_EXPIRE_LIMIT
    ) -> builtins.list[PresenceEntry]:
        heap = self._heap
        expired: builtins.list[PresenceEntry] = []
        while heap and heap[0][0] <= now and len(expired) < limit:
            expires, _, tenant, session, participant, device = heapq.heappop(heap)
            entries = self._entries.get((tenant, session))
            entry = None if entries is None else entries.get((participant, device))
            # Stale heap items (the entry was set again or removed) are skipped.
            if entry is None or entry.expires != expires:
                continue
            assert entries is not None
            del entries[(participant, device)]
            if not entries:
                del self._entries[(tenant, session)]
            expired.append(entry)
        return expired


_SCHEMA: Final = 1
_CREATE: Final = (
    "CREATE TABLE presence ("
    " tenant TEXT NOT NULL, session TEXT NOT NULL,"
    " participant TEXT NOT NULL, device TEXT NOT NULL,"
    " role TEXT NOT NULL, name TEXT, status TEXT NOT NULL, expires REAL NOT NULL,"
    " PRIMARY KEY (tenant, session, participant, device)) WITHOUT ROWID",
    "CREATE INDEX presence_expires ON presence (expires)",
)
_COLUMNS: Final = "tenant, session, participant, device, role, name, status, expires"
_Row = tuple[str, str, str, str, str, "str | None", str, float]


def _from_row(row: _Row) -> PresenceEntry:
    tenant, session, participant, device, role, name, status, expires = row
    actor = Actor(participant, role, name, device)  # type: ignore[arg-type]
    return PresenceEntry(tenant, session, actor, status, expires)


class SQLitePresenceStore(PresenceStore):
    """Presence in its own SQLite file, beside the log store's.

    A file of its own (``<store path>-presence``, see
    :func:`presence_store_for`), not a table of the log store's: presence
    writes are frequent and need no fsync (``synchronous=OFF``), and must never
    wait for the log store's write lock, held across its group commits. Calls
    run on the event loop thread; each is one short transaction on a small,
    indexed table.

    A file of another schema version is emptied rather than migrated: its
    entries would expire within seconds anyway.

    Where it stops working: one server process, like the SQLite log store
    whose exclusive lock it lives under.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        if self._conn is not None:
            return
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("PRAGMA busy_timeout=1000")
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        self._conn = conn

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA:
            return
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DROP TABLE IF EXISTS presence")
        for statement in _CREATE:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={_SCHEMA}")
        conn.execute("COMMIT")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the presence store is not started")
        return self._conn

    async def set(
        self,
        tenant: str,
        session: str,
        participant: Actor,
        device: str,
        status: str,
        ttl: float,
        now: float,
    ) -> PresenceEntry | None:
        _check_ttl(ttl)
        conn = self._db()
        key = (tenant, session, participant.id, device)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM presence WHERE tenant = ? AND session = ?"
                    " AND participant = ? AND device = ? AND expires > ?",
                    (*key, now),
                ).fetchone()
                conn.execute(
                    f"INSERT OR REPLACE INTO presence ({_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, participant.role, participant.name, status, now + ttl),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"presence set failed: {exc}") from exc
        return None if row is None else _from_row(row)

    async def remove(
        self, tenant: str, session: str, participant: str, device: str, now: float
    ) -> PresenceEntry | None:
        try:
            row = (
                self._db()
                .execute(
                    f"DELETE FROM presence WHERE tenant = ? AND session = ?"
                    f" AND participant = ? AND device = ? RETURNING {_COLUMNS}",
                    (tenant, session, participant, device),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StorageError(f"presence remove failed: {exc}") from exc
        if row is None or row[7] <= now:
            return None
        return _from_row(row)

    async def list(
        self, tenant: str, session: str, now: float
    ) -> builtins.list[PresenceEntry]:
        try:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_COLUMNS} FROM presence WHERE tenant = ? AND session = ?"
                    " AND expires > ? ORDER BY participant, device",
                    (tenant, session, now),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StorageError(f"presence list failed: {exc}") from exc
        return [_from_row(row) for row in rows]

    async def expire(
        self, now: float, limit: int = DEFAULT_EXPIRE_LIMIT
    ) -> builtins.list[PresenceEntry]:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM presence WHERE expires <= ?"
                    " ORDER BY expires LIMIT ?",
                    (now, limit),
                ).fetchall()
                conn.executemany(
                    "DELETE FROM presence WHERE tenant = ? AND session = ?"
                    " AND participant = ? AND device = ?",
                    [row[:4] for row in rows],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"presence expiry failed: {exc}") from exc
        return [_from_row(row) for row in rows]


def presence_store_for(store: LogStore) -> PresenceStore:
    """The presence store that goes with a log store.

    A SQLite log store on ``PATH`` gets :class:`SQLitePresenceStore` on
    ``PATH-presence`` (in memory for ``:memory:``); any other store gets a
    :class:`MemoryPresenceStore`.
    """
    from .sqlite import SQLiteLogStore

    if isinstance(store, SQLiteLogStore):
        path = store.path
        return SQLitePresenceStore(path if path == ":memory:" else f"{path}-presence")
    return MemoryPresenceStore()
