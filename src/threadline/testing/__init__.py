"""Test helpers, and the storage contract suite for third-party backends.

Every :class:`~threadline.storage.base.LogStore` must pass every check in
:data:`CONTRACT_CHECKS`. A check is a coroutine function that takes a
:class:`StoreUnderTest`; it restarts the store between every write and the
read that verifies it, so a store that keeps anything only in memory fails.
Time is a :class:`FakeClock` handed to the store (stores take ``clock=``).

To run the suite against your backend, write a :class:`StoreHarness` and::

    import pytest
    from threadline.testing import CONTRACT_CHECKS, run_check

    pytest.register_assert_rewrite("threadline.testing")  # in conftest.py

    @pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
    async def test_contract(check, tmp_path):
        await run_check(check, MyHarness(tmp_path))

The presence seam has its own suite: :data:`PRESENCE_CHECKS`, run with
:func:`run_presence_check` and a :class:`PresenceHarness`.

The checks use ``assert``: do not run them under ``python -O``.
"""

from __future__ import annotations

from . import forks, index, reads, rewrites, writes
from .harness import (
    Check,
    FakeClock,
    MemoryHarness,
    StoreHarness,
    StoreUnderTest,
    run_check,
)
from .presence import (
    CHECKS as _PRESENCE_CHECKS,
    MemoryPresenceHarness,
    PresenceCheck,
    PresenceHarness,
    PresenceUnderTest,
    run_presence_check,
)

__all__ = [
    "CONTRACT_CHECKS",
    "PRESENCE_CHECKS",
    "Check",
    "FakeClock",
    "MemoryHarness",
    "MemoryPresenceHarness",
    "PresenceCheck",
    "PresenceHarness",
    "PresenceUnderTest",
    "StoreHarness",
    "StoreUnderTest",
    "run_check",
    "run_presence_check",
]

CONTRACT_CHECKS: tuple[Check, ...] = (
    *writes.CHECKS,
    *reads.CHECKS,
    *forks.CHECKS,
    *index.CHECKS,
    *rewrites.CHECKS,
)
"""Every check of the log store contract."""

PRESENCE_CHECKS: tuple[PresenceCheck, ...] = tuple(_PRESENCE_CHECKS)
"""Every check of the presence store contract."""
