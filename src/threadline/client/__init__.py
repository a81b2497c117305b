"""The Python SDK: ``threadline.connect(url, token)`` → :class:`Client`.

It installs and imports without the server's dependencies (``pip install
threadline``, no extra): the standard library, ``httpx``, ``websockets`` and
``orjson``, plus :mod:`threadline.protocol`.

.. code-block:: python

    async with threadline.connect(url, token) as client:
        session = client.session("order-1234")
        async with session.subscribe(offset="-1") as events:
            async for event in events:
                ...
        async with session.stream_message() as message:
            await message.write("Hello")

Modules: :mod:`.client` (``connect``, ``Client``), :mod:`.session`
(``Session``), :mod:`.subscription`, :mod:`.streaming` (``MessageStream``),
:mod:`.transports` (the seam to ``httpx`` and ``websockets``, and the
transport ABC), :mod:`.websocket` and :mod:`.sse` (the transports),
:mod:`.backoff`, :mod:`.tokens`, :mod:`.ids` (UUIDv7).
"""

from __future__ import annotations

from .backoff import Backoff, ConstantBackoff, ExponentialBackoff
from .client import DEFAULT_TIMEOUT, Client, connect
from .ids import uuid7
from .session import Draft, EventPage, Session, SessionInfo, SessionListing
from .streaming import DEFAULT_MAX_IN_FLIGHT, MessageStream
from .subscription import DEFAULT_MAX_QUEUE, Subscription
from .tokens import TokenProvider

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_TIMEOUT",
    "Backoff",
    "Client",
    "ConstantBackoff",
    "Draft",
    "EventPage",
    "ExponentialBackoff",
    "MessageStream",
    "Session",
    "SessionInfo",
    "SessionListing",
    "Subscription",
    "TokenProvider",
    "connect",
    "uuid7",
]
