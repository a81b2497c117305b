"""The no-op ceiling: a raw ASGI app that answers every request ``204``.

Run under uvicorn with uvloop + httptools, it measures what a single Python
process on one core can do with HTTP alone; a real server's W1 rate divided by
this is its "share of the no-op ceiling".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_START: Message = {"type": "http.response.start", "status": 204, "headers": []}
_END: Message = {"type": "http.response.body", "body": b""}


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """Drain the request body, then answer ``204 No Content``."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(_START)
    await send(_END)
