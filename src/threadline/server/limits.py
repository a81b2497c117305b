"""Limits with documented defaults, and the publish rate limiter.

| limit | default |
| --- | --- |
| event size (a draft's JSON) | 64 KiB → ``413 event_too_large`` |
| publish body | 1 MiB → ``413 body_too_large`` |
| events per publish | 500 → ``400 batch_too_large`` |
| subscriptions per WebSocket | 100 → ``error too_many_subscriptions`` |
| publish rate per customer token | 20 events/s, bursts of 100 → ``429`` |
| publish rate per token (staff) | 2,000 events/s, bursts of 5,000 (token streaming) |
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..exceptions import RateLimited

__all__ = [
    "MAX_EVENT_BYTES",
    "RateLimited",
    "RateLimiter",
    "Rates",
]

MAX_EVENT_BYTES: Final = 64 * 1024
"""Largest event draft, as compact JSON."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Events per second and burst size, per role class."""

    customer: tuple[float, float] = (20.0, 100.0)
    staff: tuple[float, float] = (2000.0, 5000.0)


class RateLimiter:
    """Token buckets per key (tenant, participant), bounded in number.

    A bucket refills at ``rate`` events per second up to ``burst``. Keys are
    kept in LRU order and the oldest dropped past ``max_keys`` (a dropped key
    starts again full, which only ever errs on the side of allowing).
    """

    def __init__(
        self,
        rates: Rates = Rates(),
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rates = rates
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(
        self, tenant: str, participant: str, *, staff: bool, count: int = 1
    ) -> None:
        """Spend ``count`` events from the participant's bucket.

        Raises:
            RateLimited: not enough left; nothing is spent.
        """
        rate, burst = self.rates.staff if staff else self.rates.customer
        key = (tenant, participant)
        now = self._clock()
        level, stamp = self._buckets.pop(key, (burst, now))
        level = min(burst, level + (now - stamp) * rate)
        if count > level:
            self._buckets[key] = (level, now)
            raise RateLimited((count - level) / rate)
        self._buckets[key] = (level - count, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
