"""The dead-producer sweep of :class:`~threadline.server.sessions.SessionManager`:
ending, as the server, the messages and runs whose producer fell silent for a
lease (PRODUCT.md, "Dead producers"; scheduled by :mod:`.sweeper`).

:class:`SessionSweep` is a mixin; ``SessionManager`` inherits it and provides
the store, the clock, the working-state cache and the publish inside a
transaction.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from ..exceptions import SessionNotFound
from ..protocol.actors import SERVER, Actor
from ..protocol.events import EventDraft
from ..protocol.offsets import Offset
from ..protocol.state import LEASE
from ..storage.base import LogStore
from ..storage.index import MAX_SCAN, Txn
from .session_writes import OPEN, STATE, WorkingState

if TYPE_CHECKING:
    from .session_types import Published

__all__ = ["SessionSweep"]


class SessionSweep:
    """Ending what dead producers left open, in every tenant."""

    store: LogStore
    _clock: Callable[[], float]
    _working: OrderedDict[tuple[str, str], WorkingState]

    if TYPE_CHECKING:  # provided by SessionManager

        def _load(self, txn: Txn, session_id: str) -> WorkingState: ...

        def _publish(
            self,
            txn: Txn,
            working: WorkingState,
            session_id: str,
            actor: Actor,
            drafts: Sequence[EventDraft],
            caps: Collection[str],
            expected_offset: Offset | None,
            staff: bool,
        ) -> list[Published]: ...

    async def sweep(self, lease: float = LEASE) -> int:
        """End every message and run silent for ``lease`` seconds, in every
        tenant (``error`` / ``producer_lost``, as the server). Returns how
        many sessions had something ended.

        Sessions are found by their OPEN entries, written in the commits that
        open and end things, so a restart forgets none.
        """
        now = self._clock()
        swept = 0
        for tenant in await self.store.index.tenants(OPEN):
            after: str | None = None
            while True:
                page = await self.store.index.scan(
                    tenant, OPEN, after=after, limit=MAX_SCAN
                )
                for number, (session_id, _) in enumerate(page, 1):
                    if await self._expire(tenant, session_id, now, lease):
                        swept += 1
                    if number % 100 == 0:
                        await asyncio.sleep(0)  # index reads block: let others run
                if len(page) < MAX_SCAN:
                    break
                after = page[-1][0]
        return swept

    async def _expire(
        self, tenant: str, session_id: str, now: float, lease: float
    ) -> bool:
        # Most open work is alive: check without a transaction first, on the
        # cached working state (never behind the store) or else the stored one.
        cached = self._working.get((tenant, session_id))
        if cached is not None:
            if not cached.state.expired(now, lease):
                return False
        else:
            raw = await self.store.index.get(tenant, STATE, session_id)
            if raw is None or not WorkingState.from_json(raw).state.expired(now, lease):
                return False

        def run(txn: Txn) -> bool:
            working = self._load(txn, session_id)
            drafts = working.state.expired(now, lease)
            if not drafts:
                return False
            try:
                self._publish(txn, working, session_id, SERVER, drafts, (), None, True)
            except BaseException:
                self._working.pop((tenant, session_id), None)
                raise
            return True

        try:
            return await self.store.transact(tenant, run)
        except SessionNotFound:
            return False  # deleted meanwhile
