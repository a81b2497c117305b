"""Shared test helpers: the time unit and polling."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable

__all__ = ["MS", "wait_for"]

MS = float(os.environ.get("THREADLINE_TEST_TIMEOUT_UNIT", "0.001"))
"""One millisecond, scaled: every test timeout is a multiple of it (STYLE X7).

Raise ``THREADLINE_TEST_TIMEOUT_UNIT`` (in seconds) on slow machines.
"""


async def wait_for(
    predicate: Callable[[], object], timeout: float = 1000 * MS
) -> object:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return it.

    Raises:
        AssertionError: ``timeout`` seconds passed first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(
                f"condition still false after {timeout:.3f}s: {predicate}"
            )
        await asyncio.sleep(MS)
