"""Reconnect strategies: how long to wait before the next attempt.

A strategy is any object with ``compute(failures) -> seconds`` and ``reset()``
(:class:`Backoff`); the client calls ``compute`` with the number of attempts
that failed in a row and ``reset`` once a connection is up.
"""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["Backoff", "ConstantBackoff", "ExponentialBackoff"]


class Backoff(Protocol):
    """How long to wait before reconnecting."""

    def compute(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (0 after a
        connection that was up dropped)."""
        ...

    def reset(self) -> None:
        """Forget past failures: a connection is up."""
        ...


class ExponentialBackoff:
    """Exponential backoff with full jitter, capped (the default).

    The wait after ``n`` failures is uniform in ``[0, min(cap, base * 2**n)]``,
    so that clients dropped together by a restarting server do not come back
    together.

    Args:
        base: The first wait's upper bound, in seconds.
        cap: The longest wait, in seconds.
        rng: The random source (seed one in tests).
    """

    def __init__(
        self, base: float = 0.1, cap: float = 10.0, *, rng: random.Random | None = None
    ) -> None:
        if base < 0 or cap < base:
            raise ValueError("need 0 <= base <= cap")
        self.base = base
        """The first wait's upper bound, in seconds."""
        self.cap = cap
        """The longest wait, in seconds."""
        self._rng = rng or random.Random()

    def compute(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(failures, 32))
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        pass


class ConstantBackoff:
    """Always the same wait (tests, or a known-local server)."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.delay = delay
        """The wait, in seconds."""

    def compute(self, failures: int) -> float:
        return self.delay

    def reset(self) -> None:
        pass
