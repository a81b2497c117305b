"""The publish rate limiter."""

from __future__ import annotations

import pytest

from threadline.server.limits import RateLimited, RateLimiter, Rates


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, max_keys: int = 100) -> RateLimiter:
    return RateLimiter(
        Rates(customer=(2.0, 4.0), staff=(10.0, 20.0)), clock=clock, max_keys=max_keys
    )


def test_rate_limiter_allows_a_burst_then_refuses():
    """A full bucket allows its burst; the next event is refused with a wait."""
    clock = Clock()
    limits = limiter(clock)
    limits.take("t", "c", staff=False, count=4)
    with pytest.raises(RateLimited) as caught:
        limits.take("t", "c", staff=False)
    assert caught.value.retry_after == pytest.approx(0.5)
    assert caught.value.retry_after_header == "1"
    assert caught.value.status == 429


def test_rate_limiter_refills_over_time():
    """After waiting, the bucket has refilled at its rate."""
    clock = Clock()
    limits = limiter(clock)
    limits.take("t", "c", staff=False, count=4)
    clock.now += 1.0
    limits.take("t", "c", staff=False, count=2)
    with pytest.raises(RateLimited):
        limits.take("t", "c", staff=False)


def test_rate_limiter_refusal_spends_nothing():
    """A refused batch leaves the bucket as it was."""
    clock = Clock()
    limits = limiter(clock)
    with pytest.raises(RateLimited):
        limits.take("t", "c", staff=False, count=5)
    limits.take("t", "c", staff=False, count=4)


def test_rate_limiter_keeps_staff_and_keys_apart():
    """Staff have their own larger rate; participants and tenants do not share."""
    clock = Clock()
    limits = limiter(clock)
    limits.take("t", "agent", staff=True, count=20)
    limits.take("t", "c", staff=False, count=4)
    limits.take("u", "c", staff=False, count=4)


def test_rate_limiter_forgets_the_oldest_key_past_the_bound():
    """Past max_keys the least recently used bucket is dropped (and starts full)."""
    clock = Clock()
    limits = limiter(clock, max_keys=2)
    limits.take("t", "a", staff=False, count=4)
    limits.take("t", "b", staff=False)
    limits.take("t", "c", staff=False)
    limits.take("t", "a", staff=False, count=4)  # "a" was forgotten: full again
