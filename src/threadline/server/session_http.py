"""The session HTTP API under ``/v1/sessions`` and ``/v1/me/sessions``.

Control routes on Starlette; every route authenticates a bearer token (or a
read-only ``?ticket=`` on reads) and checks that the token reaches the
session: its ``sessions`` globs match, and a customer is the session's
customer. Reads and offsets are in the reader's view (see
:mod:`threadline.server.sessions`), so a customer's answers never depend on
staff events.

With a :class:`~threadline.server.presence.PresenceManager`, the state
snapshot lists who is present, a session SSE stream holds its device present
and carries ``event: presence`` lines, and ``POST …/presence`` keeps a device
without a socket present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..auth import AuthError, Claims
from ..exceptions import (
    InvalidEvent,
    InvalidOffset,
    ProtocolError,
    SessionRuleError,
    StorageError,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.actors import Actor
from ..protocol.events import EventDraft, format_ts
from ..protocol.offsets import NOW, Offset, parse_offset_param
from ..protocol.queue import QUEUE_SESSION
from ..storage.base import ReadResult
from .access import check_session_id as _check_session_id, reach_session
from .compaction import CompactRead, CompactRecord
from .openapi import openapi_document
from .presence import OFFLINE, Hold, PresenceInbox, PresenceManager
from .queue import QUEUE_ROLES
from .sessions import SessionInfo, SessionManager, SessionNotFound
from .stream_codec import status_of
from .tickets import TicketSigner

__all__ = ["HTTP_DEVICE", "MAX_BATCH_EVENTS", "MAX_BODY", "build_session_api"]

logger = logging.getLogger(__name__)

MAX_BODY: Final = 1024 * 1024
"""Largest publish body: 1 MiB."""
MAX_BATCH_EVENTS: Final = 500
"""Most events in one publish."""
SSE_SECONDS: Final = 60.0
"""A session SSE response ends after about this long (±10 %); clients resume."""
HEARTBEAT_SECONDS: Final = 15.0
"""An idle session SSE response sends a comment this often."""
CLOSED_MARK: Final = b',"type":"session.closed",'
VIEWS: Final = ("raw", "compact")
"""``view=raw`` (every event, the default) or ``view=compact`` (messages folded)."""
HTTP_DEVICE: Final = "http"
"""The device of a ``POST …/presence`` that names none."""
_DEVICE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")

Authenticate = Callable[[Request], Awaitable[Claims]]


def _json(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store", **(headers or {})},
    )


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json({"error": {"code": code, "message": message, **extra}}, status)


def _actor(claims: Claims, device: str | None) -> Actor:
    return Actor(claims.sub, claims.role, claims.name, device)  # type: ignore[arg-type]


async def _body(request: Request) -> Any:
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


def _drafts(body: Any) -> tuple[list[EventDraft], Offset | None]:
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


class _SessionAPI:
    def __init__(self, sessions: SessionManager, authenticate: Authenticate) -> None:
        self.sessions = sessions
        self.authenticate = authenticate

    async def _reach(
        self, request: Request, session_id: str
    ) -> tuple[Claims, SessionInfo]:
        """Authenticate and check the token reaches the session."""
        claims = await self.authenticate(request)
        return claims, await reach_session(self.sessions, claims, session_id)

    # Routes

    async def create(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise ProtocolError("body must be an object with an id", "invalid_session")
        session_id = body["id"]
        _check_session_id(session_id)
        if not claims.may_access_session(session_id):
            raise AuthError(
                f"token does not reach session {session_id!r}", "forbidden", 403
            )
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ProtocolError("metadata must be an object", "invalid_session")
        if claims.role == "customer":
            customer: str | None = claims.sub  # a customer creates their own
        elif claims.role == "supervisor":
            raise AuthError("a supervisor does not create sessions", "forbidden", 403)
        else:
            customer = body.get("customer")
            if customer is not None and not isinstance(customer, str):
                raise ProtocolError(
                    "customer must be a participant id", "invalid_session"
                )
        controller = body.get("controller_role", "ai")
        if controller not in (None, "ai", "agent", "service"):
            raise ProtocolError(
                "controller_role is ai, agent, service or null (an empty floor)",
                "invalid_session",
            )
        info, created = await self.sessions.create(
            claims.tenant,
            session_id,
            customer=customer,
            metadata=metadata,
            controller_role=controller,
        )
        if claims.role == "customer" and info.customer != claims.sub:
            raise SessionNotFound(f"no session {session_id!r}")
        return _json(info.to_json(), 201 if created else 200)

    async def state(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, info = await self._reach(request, session_id)
        staff = claims.is_staff
        snapshot = await self.sessions.snapshot(claims.tenant, session_id, staff=staff)
        snapshot["session"] = info.to_json()
        snapshot["cursors"] = await self.sessions.cursors(
            claims.tenant, session_id, staff=staff
        )
        if self.presence is not None:
            snapshot["presence"] = await self.presence.snapshot(
                claims.tenant, session_id, staff=staff
            )
        return _json(snapshot)

    async def publish(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        drafts, expected = _drafts(await _body(request))
        device = request.headers.get("threadline-device")
        published = await self.sessions.publish(
            claims.tenant,
            session_id,
            _actor(claims, device),
            drafts,
            caps=claims.caps,
            expected_offset=expected,
        )
        return _json(
            {
                "events": [
                    {"id": p.id, "offset": str(p.offset), "duplicate": p.duplicate}
                    for p in published
                ],
                "offset": str(published[-1].offset),
            }
        )

    async def _reader(self, request: Request, session_id: str) -> Claims:
        """A reader's identity: the bearer token, or a ``?ticket=`` (EventSource)."""
        ticket = request.query_params.get("ticket")
        if ticket is None or "authorization" in request.headers:
            claims, _ = await self._reach(request, session_id)
            return claims
        verified = self.tickets.verify(ticket, session_id)
        claims = Claims(
            sub=verified.sub,
            tenant=verified.tenant,
            role=verified.role,
            name=verified.name,
            sessions=(session_id,),
        )
        await reach_session(self.sessions, claims, session_id)
        return claims

    async def ticket(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        text, ticket = self.tickets.mint(
            tenant=claims.tenant,
            sub=claims.sub,
            role=claims.role,
            name=claims.name,
            session=session_id,
        )
        return _json({"ticket": text, "expires": format_ts(ticket.expires)})

    async def read(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims = await self._reader(request, session_id)
        staff = claims.is_staff
        values = request.query_params.getlist("offset")
        if len(values) > 1:
            raise InvalidOffset("offset given more than once")
        offset = parse_offset_param(values[0] if values else None)
        if offset == NOW:
            snapshot = await self.sessions.snapshot(
                claims.tenant, session_id, staff=staff
            )
            after: Offset | None = Offset.parse(snapshot["offset"])
        else:
            after = offset if isinstance(offset, Offset) else None
        view = request.query_params.get("view", "raw")
        if view not in VIEWS:
            raise ProtocolError(f"unknown view {view[:80]!r}", "invalid_view")
        compact = view == "compact"
        live = request.query_params.get("live")
        if live == "sse":
            last_event_id = request.headers.get("last-event-id")
            if last_event_id:  # the resume point: Last-Event-ID > offset > -1
                after = Offset.parse(last_event_id.strip())
            device = request.headers.get("threadline-device") or (
                request.query_params.get("device")
            )
            return self._sse(
                claims, session_id, after, compact=compact, device=_device(device)
            )
        if live not in (None, "long-poll"):
            raise ProtocolError(f"unknown live mode {live!r}", "invalid_live")
        page = await self._page(claims.tenant, session_id, staff, after, compact)
        if live == "long-poll" and not page.records:
            await self.sessions.wait(
                claims.tenant,
                session_id,
                staff=staff,
                after=page.next_offset,
                timeout=self.long_poll_timeout,
            )
            page = await self._page(claims.tenant, session_id, staff, after, compact)
        return _events_response(request, page, view)

    async def _page(
        self,
        tenant: str,
        session_id: str,
        staff: bool,
        after: Offset | None,
        compact: bool,
    ) -> ReadResult | CompactRead:
        if compact:
            return await self.sessions.read_compact(
                tenant, session_id, staff=staff, after=after
            )
        return await self.sessions.read(tenant, session_id, staff=staff, after=after)

    long_poll_timeout: float = 20.0
    draining: asyncio.Event | None = None
    presence: PresenceManager | None = None
    tickets: TicketSigner

    def _sse(
        self,
        claims: Claims,
        session_id: str,
        after: Offset | None,
        *,
        compact: bool = False,
        device: str | None = None,
    ) -> Response:
        """Session SSE: one event per log event (``id:`` offset), control events.

        With ``compact``, the catch-up (up to the tail when the response
        starts) is the compact view, and live events follow raw. A compacted
        event that is not resumable has no ``id:`` line, so ``Last-Event-ID``
        only ever names a point a compact read may resume from.

        With presence, the stream holds ``device`` (or one it assigns) present
        while it is open, starts with an ``event: presence`` per device
        present (its own aside), then one per change.
        """
        sessions, staff, tenant = self.sessions, claims.is_staff, claims.tenant
        draining, presence = self.draining, self.presence
        actor = _actor(claims, device or f"sse-{secrets.token_hex(6)}")
        own = (actor.id, actor.device)

        async def stream() -> AsyncIterator[bytes]:
            listener: PresenceInbox | None = None
            hold: Hold | None = None
            if presence is not None:
                listener = PresenceInbox()
                presence.add_listener(
                    tenant, session_id, listener, staff=staff, own=actor
                )
                try:
                    hold = await presence.hold(tenant, session_id, actor)
                    for item in await presence.snapshot(
                        tenant, session_id, staff=staff
                    ):
                        shown = item["actor"]
                        if (shown["id"], shown.get("device")) != own:
                            listener.add(session_id, shown, item["status"])
                except StorageError:
                    logger.exception("! presence failed for session %s", session_id)
            try:
                if listener is not None and listener.pending:
                    yield _presence_events(listener)
                async with contextlib.aclosing(events(listener)) as chunks:
                    async for chunk in chunks:
                        yield chunk
            finally:
                if presence is not None and listener is not None:
                    presence.remove_listener(tenant, session_id, listener)
                    if hold is not None:
                        presence.release(hold)

        async def events(
            listener: PresenceInbox | None,
        ) -> AsyncGenerator[bytes, None]:
            position = after
            deadline = time.monotonic() + SSE_SECONDS * random.uniform(0.9, 1.1)
            while compact:
                try:
                    page = await sessions.read_compact(
                        tenant, session_id, staff=staff, after=position
                    )
                except SessionNotFound:
                    yield _control("gone")
                    return
                if page.records:
                    yield b"".join(map(_sse_compacted, page.records))
                position = page.next_offset
                if any(CLOSED_MARK in r.data for r in page.records):
                    yield _control("closed", position)
                    return
                if page.up_to_date:
                    break
            while True:
                try:
                    result = await sessions.read(
                        tenant, session_id, staff=staff, after=position
                    )
                except SessionNotFound:
                    yield _control("gone")
                    return
                if result.records:
                    yield b"".join(
                        b"id: %s\ndata: %s\n\n" % (str(r.offset).encode(), r.data)
                        for r in result.records
                    )
                    position = result.next_offset
                    if any(CLOSED_MARK in r.data for r in result.records):
                        yield _control("closed", position)
                        return
                    if not result.up_to_date:
                        continue
                elif position is None:
                    position = result.next_offset
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (draining is not None and draining.is_set()):
                    yield _control("resume", position)
                    return
                waiting = sessions.wait(
                    tenant,
                    session_id,
                    staff=staff,
                    after=result.next_offset,
                    timeout=min(HEARTBEAT_SECONDS, remaining),
                )
                if listener is None:
                    woke = await waiting
                else:
                    woke = await listener.wait(waiting)
                if listener is not None and listener.pending:
                    yield _presence_events(listener)
                elif not woke:
                    yield b": heartbeat\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def cursor(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("offset"), str):
            raise InvalidOffset('body must be {"offset": ...}')
        moved = await self.sessions.set_cursor(
            claims.tenant,
            session_id,
            claims.sub,
            Offset.parse(body["offset"]),
            staff=claims.is_staff,
        )
        return _json({"offset": str(moved)})

    async def set_presence(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        presence = self.presence
        if presence is None:
            raise ProtocolError("presence is off on this server", "not_supported")
        body = await _body(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("status"), str)
            or not set(body) <= {"status", "device"}
        ):
            raise ProtocolError(
                'body must be {"status": ..., "device"?: ...}', "invalid_presence"
            )
        named = body.get("device")
        if named is not None and not isinstance(named, str):
            raise ProtocolError("device must be a string", "invalid_device")
        device = _device(named or request.headers.get("threadline-device"))
        if self.sessions.limiter is not None:
            self.sessions.limiter.take(claims.tenant, claims.sub, staff=claims.is_staff)
        actor = _actor(claims, device or HTTP_DEVICE)
        if body["status"] == OFFLINE:
            await presence.remove(claims.tenant, session_id, actor)
        else:
            await presence.set_status(claims.tenant, session_id, actor, body["status"])
        listed = await presence.snapshot(
            claims.tenant, session_id, staff=claims.is_staff
        )
        return _json({"presence": listed})

    async def list_sessions(self, request: Request) -> Response:
        """``GET /v1/sessions?waiting=agent``: the waiting queue, listed."""
        claims = await self.authenticate(request)
        if request.query_params.get("waiting") != "agent":
            return _error(
                400, "invalid_query", "list sessions with ?waiting=agent (the queue)"
            )
        if claims.role not in QUEUE_ROLES:
            raise AuthError("the waiting queue is for staff", "forbidden", 403)
        waiting, offset = await self.sessions.waiting(claims.tenant)
        return _json(
            {"sessions": waiting, "queue": QUEUE_SESSION, "offset": str(offset)}
        )

    async def my_sessions(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        listed = await self.sessions.my_sessions(
            claims.tenant, claims.sub, staff=claims.is_staff
        )
        return _json({"sessions": listed})


def _device(value: str | None) -> str | None:
    """A device id from a request, checked (``None`` if absent).

    Raises:
        ProtocolError: ``invalid_device``: not ``[A-Za-z0-9_-]{1,64}``.
    """
    if value is None or value == "":
        return None
    if not _DEVICE.match(value):
        raise ProtocolError("device ids match [A-Za-z0-9_-]{1,64}", "invalid_device")
    return value


def _presence_events(inbox: PresenceInbox) -> bytes:
    """The changes waiting in ``inbox`` as ``event: presence`` (no ``id``)."""
    return b"".join(
        b"event: presence\ndata: " + orjson.dumps(item) + b"\n\n"
        for item in inbox.take()
    )


def _control(kind: str, offset: Offset | None = None) -> bytes:
    """A control event (no ``id``): ``gone``, ``closed`` or ``resume``."""
    body: dict[str, str] = {"type": kind}
    if offset is not None:
        body["offset"] = str(offset)
    return b"event: control\ndata: " + orjson.dumps(body) + b"\n\n"


def _sse_compacted(record: CompactRecord) -> bytes:
    """A compacted SSE event: ``id:`` only where a reader may resume."""
    if record.resumable:
        return b"id: %s\ndata: %s\n\n" % (str(record.offset).encode(), record.data)
    return b"data: %s\n\n" % record.data


def _events_response(
    request: Request, result: ReadResult | CompactRead, view: str
) -> Response:
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


def build_session_api(
    sessions: SessionManager,
    authenticate: Authenticate,
    *,
    long_poll_timeout: float = 20.0,
    draining: asyncio.Event | None = None,
    ticket_secret: str | None = None,
    presence: PresenceManager | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette app for ``/v1/sessions`` and ``/v1/me/sessions``.

    ``extra_routes`` (the audit routes) share its error answers.
    """
    api = _SessionAPI(sessions, authenticate)
    api.tickets = TicketSigner(ticket_secret)
    api.long_poll_timeout = long_poll_timeout
    api.draining = draining
    api.presence = presence

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ThreadlineError)
        if isinstance(exc, AuthError):
            return _error(exc.status, exc.code, str(exc))
        if isinstance(exc, SessionRuleError):
            extra: dict[str, Any] = {}
            expected = getattr(exc, "expected", None)
            if expected is not None:
                extra["expected"] = expected
            return _error(exc.status, exc.code, str(exc), **extra)
        if isinstance(exc, TailMismatch):
            return _error(412, exc.code, str(exc), offset=str(exc.tail))
        if isinstance(exc, InvalidEvent):
            return _error(400, exc.code, str(exc))
        status, extra_headers = status_of(exc)
        response = _error(status, exc.code, str(exc))
        for name, value in extra_headers:
            response.headers[name.decode()] = value.decode()
        return response

    async def openapi(request: Request) -> Response:
        return _json(openapi_document())

    routes = [
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/v1/sessions", api.create, methods=["POST"]),
        Route("/v1/sessions", api.list_sessions, methods=["GET"]),
        Route("/v1/sessions/{session_id}", api.state, methods=["GET"]),
        Route("/v1/sessions/{session_id}/events", api.publish, methods=["POST"]),
        Route("/v1/sessions/{session_id}/events", api.read, methods=["GET"]),
        Route("/v1/sessions/{session_id}/cursor", api.cursor, methods=["PUT"]),
        Route("/v1/sessions/{session_id}/presence", api.set_presence, methods=["POST"]),
        Route("/v1/sessions/{session_id}/tickets", api.ticket, methods=["POST"]),
        Route("/v1/me/sessions", api.my_sessions, methods=["GET"]),
    ]
    return Starlette(
        routes=[*routes, *extra_routes], exception_handlers={ThreadlineError: on_error}
    )
