"""Request parsing and response building for the session HTTP API.

The bodies, drafts, device ids and JSON answers every ``/v1/sessions`` route
shares (:mod:`threadline.server.session_http`), and the events page a read
answers with. Nothing here reaches the session manager.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..auth import Claims
from ..exceptions import InvalidEvent, InvalidOffset, ProtocolError
from ..protocol.actors import Actor
from ..protocol.events import EventDraft
from ..protocol.offsets import Offset
from ..storage.base import ReadResult
from .compaction import CompactRead

__all__ = [
    "HTTP_DEVICE",
    "MAX_BATCH_EVENTS",
    "MAX_BODY",
    "VIEWS",
    "Authenticate",
    "check_device",
    "error_response",
    "events_response",
    "json_response",
    "parse_drafts",
    "read_json",
    "request_actor",
]

MAX_BODY: Final = 1024 * 1024
"""Largest publish body: 1 MiB."""
MAX_BATCH_EVENTS: Final = 500
"""Most events in one publish."""
VIEWS: Final = ("raw", "compact")
"""``view=raw`` (every event, the default) or ``view=compact`` (messages folded)."""
HTTP_DEVICE: Final = "http"
"""The device of a ``POST …/presence`` that names none."""
_DEVICE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")

Authenticate = Callable[[Request], Awaitable[Claims]]


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer, never cached."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store", **(headers or {})},
    )


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """The error answer: ``{"error": {"code", "message", ...extra}}``."""
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


def request_actor(claims: Claims, device: str | None) -> Actor:
    """The actor a token acts as, from ``device``: the token's identity."""
    return Actor(claims.sub, claims.role, claims.name, device)  # type: ignore[arg-type]


async def read_json(request: Request) -> Any:
    """The request body as JSON, refused past :data:`MAX_BODY` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ProtocolError(f"body over {MAX_BODY} bytes", "body_too_large")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ProtocolError(f"body over {MAX_BODY} bytes", "body_too_large")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("body is not valid JSON", "invalid_json") from exc


def parse_drafts(body: Any) -> tuple[list[EventDraft], Offset | None]:
    """A publish body: one draft, or ``{"events": [...], "expected_offset"?}``."""
    expected: Offset | None = None
    if isinstance(body, dict) and "events" in body:
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise InvalidEvent("events must be a non-empty array", "events")
        if "expected_offset" in body and body["expected_offset"] is not None:
            if not isinstance(body["expected_offset"], str):
                raise InvalidOffset("expected_offset must be an offset")
            expected = Offset.parse(body["expected_offset"])
    else:
        items = [body]
    if len(items) > MAX_BATCH_EVENTS:
        raise ProtocolError(
            f"at most {MAX_BATCH_EVENTS} events per publish", "batch_too_large"
        )
    return [EventDraft.parse(item) for item in items], expected


def check_device(value: str | None) -> str | None:
    """A device id from a request, checked (``None`` if absent).

    Raises:
        ProtocolError: ``invalid_device``: not ``[A-Za-z0-9_-]{1,64}``.
    """
    if value is None or value == "":
        return None
    if not _DEVICE.match(value):
        raise ProtocolError("device ids match [A-Za-z0-9_-]{1,64}", "invalid_device")
    return value


def events_response(
    request: Request, result: ReadResult | CompactRead, view: str
) -> Response:
    """A page of events as a JSON array, with its offset and ETag (304 if matched)."""
    body = b"[" + b",".join(record.data for record in result.records) + b"]"
    start = request.query_params.get("offset", "-1")
    # The compact view is another representation of the same range.
    tag = "compact:" if view == "compact" else ""
    etag = f'"{tag}{start}:{result.next_offset}"'
    headers = {
        "stream-next-offset": str(result.next_offset),
        "etag": etag,
        "cache-control": "private, no-cache",
        "vary": "Authorization",
    }
    if result.up_to_date:
        headers["stream-up-to-date"] = "true"
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
