"""The lease sweep: the server ends what dead producers left open.

PRODUCT.md, "Dead producers": a run or message with no new event for
``lease`` seconds (default 30) is ended by the server with ``status: error,
reason: producer_lost``, so no UI shows "typing" forever. The rule is
:meth:`threadline.protocol.state.SessionState.expired`; this task applies it
every ``interval`` through :meth:`SessionManager.sweep`, so a message is ended
between ``lease`` and ``lease + interval`` after its last event. Sessions with
open work are listed durably (the index's ``open`` table), so a restarted
server ends what its previous run left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Final

from .retention import trim
from .sessions import SessionManager

__all__ = ["LeaseSweeper", "sweep_interval"]

logger = logging.getLogger("threadline.server")

TRIM_INTERVAL: Final = 60.0
"""Seconds between two retention trims."""


def sweep_interval(lease: float) -> float:
    """How often to sweep for a lease: a tenth of it, within 0.1 s and 5 s."""
    return min(5.0, max(0.1, lease / 10))


class LeaseSweeper:
    """Runs :meth:`SessionManager.sweep` every ``interval`` seconds."""

    def __init__(
        self,
        sessions: SessionManager,
        lease: float,
        interval: float | None = None,
        *,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not lease > 0:
            raise ValueError("the lease must be positive")
        self.sessions = sessions
        self.lease = lease
        self.interval = interval if interval is not None else sweep_interval(lease)
        self.retention = retention
        """Seconds a closed session is kept (``None``: forever); see
        :mod:`.retention`. Trimmed at most once a minute."""
        self._clock = clock
        self._trimmed = -math.inf
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping (on the running loop)."""
        self._task = asyncio.create_task(self._run(), name="threadline-lease-sweep")

    async def _run(self) -> None:
        while True:
            try:
                ended = await self.sessions.sweep(self.lease)
            except Exception:  # a failing store must not end the sweeps
                logger.exception("! lease sweep failed")
            else:
                if ended:
                    logger.info("lease sweep: ended producers in %d sessions", ended)
            now = self._clock()
            if self.retention is not None and now - self._trimmed >= TRIM_INTERVAL:
                self._trimmed = now
                try:
                    await trim(self.sessions, self.retention, now)
                except Exception:
                    logger.exception("! retention trim failed")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        """Stop sweeping (a sweep in progress is cancelled; its commit is
        all or nothing)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
