"""The agent worker: serve many sessions for an AI participant.

.. code-block:: python

    from threadline.agent import Worker

    async def respond(context):
        async for token in llm.stream(context.history):
            yield token

    async with Worker(url, token, respond, device="agent-1") as worker:
        await worker.serve("order-1234")
        await worker.run()

It builds on :mod:`threadline.client` and :mod:`threadline.protocol` only
(no server or storage code). Modules: :mod:`.worker` (``Worker``),
:mod:`.sessions` (one session served), :mod:`.runs` (one reply),
:mod:`.context` (``Context``, what ``respond`` gets), :mod:`.view` (the pure
fold of a session's events that decides what to answer), :mod:`.metrics`.
See ``docs/howto/agent-worker.md``.
"""

from __future__ import annotations

from .context import Chunk, Context, HistoryMessage, Respond
from .metrics import WorkerMetrics
from .sessions import AbsentPolicy
from .view import Policy
from .worker import (
    DEFAULT_ABSENT_GRACE,
    DEFAULT_DISCOVERY_INTERVAL,
    DEFAULT_MAX_PAUSE,
    DEFAULT_MAX_SESSIONS,
    Worker,
)

__all__ = [
    "DEFAULT_ABSENT_GRACE",
    "DEFAULT_DISCOVERY_INTERVAL",
    "DEFAULT_MAX_PAUSE",
    "DEFAULT_MAX_SESSIONS",
    "AbsentPolicy",
    "Chunk",
    "Context",
    "HistoryMessage",
    "Policy",
    "Respond",
    "Worker",
    "WorkerMetrics",
]
