"""Reconnect strategies."""

from __future__ import annotations

import random

import pytest

from threadline.client.backoff import ConstantBackoff, ExponentialBackoff


def test_exponential_backoff_stays_under_its_growing_ceiling():
    """Each wait is at most base * 2**failures, and never above the cap."""
    backoff = ExponentialBackoff(0.1, 2.0, rng=random.Random(7))
    for failures in range(20):
        assert 0 <= backoff.compute(failures) <= min(2.0, 0.1 * 2**failures)


def test_exponential_backoff_refuses_a_cap_below_its_base():
    """A cap smaller than the base is a ValueError."""
    with pytest.raises(ValueError):
        ExponentialBackoff(1.0, 0.5)


def test_constant_backoff_always_waits_the_same():
    """A constant strategy ignores the failure count."""
    assert {ConstantBackoff(0.2).compute(n) for n in range(5)} == {0.2}
