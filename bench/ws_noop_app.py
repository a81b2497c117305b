"""The WebSocket no-op ceiling for workload M: frames relayed, nothing kept.

A raw ASGI app that speaks just enough of ``threadline.v1`` for
``bench/wsload.py``: ``POST /v1/sessions`` answers ``201``; on a WebSocket,
``subscribe`` is answered ``subscribed`` and ``publish`` is answered
``published`` (offsets counted in memory) and relayed as one ``events`` frame
to each subscriber of that session. No auth, no validation, no storage, no
fsync. Run under uvicorn like ``threadline serve`` (uvloop, httptools,
websockets-sansio), it measures what one Python process on one core can do
with the WebSocket frames of M alone: one frame in, an answer and two
deliveries out per delta. A real server's sessions held divided by this
ceiling's is its share of the ceiling.

    taskset -c 0 .venv/bin/uvicorn --app-dir bench ws_noop_app:app \
        --loop uvloop --http httptools --ws websockets-sansio --port PORT
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_subscribers: defaultdict[str, list[Send]] = defaultdict(list)
_tails: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """HTTP: 201 to anything (session creation, the readiness probe)."""
    if scope["type"] == "http":
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
    elif scope["type"] == "websocket":
        await _websocket(receive, send)


async def _websocket(receive: Receive, send: Send) -> None:
    mine: list[str] = []
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.connect":
                await send({"type": "websocket.accept", "subprotocol": "threadline.v1"})
            elif kind == "websocket.receive":
                answers = []
                for frame in orjson.loads(message.get("text") or message["bytes"]):
                    answer = await _handle(frame, send, mine)
                    if answer is not None:
                        answers.append(answer)
                if answers:
                    await send({"type": "websocket.send", "text": _dumps(answers)})
            else:
                return
    finally:
        for session in mine:
            _subscribers[session].remove(send)


async def _handle(frame: dict[str, Any], send: Send, mine: list[str]) -> Any:
    kind = frame["type"]
    if kind == "subscribe":
        _subscribers[frame["session"]].append(send)
        mine.append(frame["session"])
        return {"type": "subscribed", "rid": frame["rid"], "session": frame["session"]}
    if kind != "publish":
        return None
    session = frame["session"]
    tail = _tails[session]
    offsets = []
    events = []
    for event in frame["events"]:
        offset = f"{next(tail):020d}"
        offsets.append(offset)
        events.append({**event, "offset": offset, "actor": {"role": "ai"}})
    text = _dumps([{"type": "events", "session": session, "events": events}])
    for subscriber in list(_subscribers[session]):
        await subscriber({"type": "websocket.send", "text": text})
    return {"type": "published", "rid": frame["rid"], "offsets": offsets}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
