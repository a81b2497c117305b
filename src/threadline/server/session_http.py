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

The routes live here; request parsing and JSON answers in
:mod:`~threadline.server.session_http_codec`, the session SSE stream in
:mod:`~threadline.server.session_http_sse`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..auth import AuthError, Claims
from ..exceptions import (
    InvalidEvent,
    InvalidOffset,
    ProtocolError,
    SessionRuleError,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.events import format_ts
from ..protocol.offsets import NOW, Offset, parse_offset_param
from ..protocol.queue import QUEUE_SESSION
from ..storage.base import ReadResult
from .access import check_session_id as _check_session_id, reach_session
from .compaction import CompactRead
from .openapi import openapi_document
from .presence import OFFLINE, PresenceManager
from .queue import QUEUE_ROLES
from .session_http_codec import (
    HTTP_DEVICE,
    MAX_BATCH_EVENTS,
    MAX_BODY,
    VIEWS,
    Authenticate,
    check_device,
    error_response,
    events_response,
    json_response,
    parse_drafts,
    read_json,
    request_actor,
)
from .session_http_sse import session_sse
from .sessions import SessionInfo, SessionManager, SessionNotFound
from .stream_codec import status_of
from .tickets import TicketSigner

__all__ = ["HTTP_DEVICE", "MAX_BATCH_EVENTS", "MAX_BODY", "build_session_api"]


class _SessionAPI:
    """The route handlers; :func:`build_session_api` sets the attributes below."""

    long_poll_timeout: float = 20.0
    draining: asyncio.Event | None = None
    presence: PresenceManager | None = None
    tickets: TicketSigner

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
        body = await read_json(request)
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
        return json_response(info.to_json(), 201 if created else 200)

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
        return json_response(snapshot)

    async def publish(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        drafts, expected = parse_drafts(await read_json(request))
        device = request.headers.get("threadline-device")
        published = await self.sessions.publish(
            claims.tenant,
            session_id,
            request_actor(claims, device),
            drafts,
            caps=claims.caps,
            expected_offset=expected,
        )
        return json_response(
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
        return json_response({"ticket": text, "expires": format_ts(ticket.expires)})

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
            return session_sse(
                self.sessions,
                claims,
                session_id,
                after,
                compact=compact,
                device=check_device(device),
                draining=self.draining,
                presence=self.presence,
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
        return events_response(request, page, view)

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

    async def cursor(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("offset"), str):
            raise InvalidOffset('body must be {"offset": ...}')
        moved = await self.sessions.set_cursor(
            claims.tenant,
            session_id,
            claims.sub,
            Offset.parse(body["offset"]),
            staff=claims.is_staff,
        )
        return json_response({"offset": str(moved)})

    async def set_presence(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims, _ = await self._reach(request, session_id)
        presence = self.presence
        if presence is None:
            raise ProtocolError("presence is off on this server", "not_supported")
        body = await read_json(request)
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
        device = check_device(named or request.headers.get("threadline-device"))
        if self.sessions.limiter is not None:
            self.sessions.limiter.take(claims.tenant, claims.sub, staff=claims.is_staff)
        actor = request_actor(claims, device or HTTP_DEVICE)
        if body["status"] == OFFLINE:
            await presence.remove(claims.tenant, session_id, actor)
        else:
            await presence.set_status(claims.tenant, session_id, actor, body["status"])
        listed = await presence.snapshot(
            claims.tenant, session_id, staff=claims.is_staff
        )
        return json_response({"presence": listed})

    async def list_sessions(self, request: Request) -> Response:
        """``GET /v1/sessions?waiting=agent``: the waiting queue, listed."""
        claims = await self.authenticate(request)
        if request.query_params.get("waiting") != "agent":
            return error_response(
                400, "invalid_query", "list sessions with ?waiting=agent (the queue)"
            )
        if claims.role not in QUEUE_ROLES:
            raise AuthError("the waiting queue is for staff", "forbidden", 403)
        waiting, offset = await self.sessions.waiting(claims.tenant)
        return json_response(
            {"sessions": waiting, "queue": QUEUE_SESSION, "offset": str(offset)}
        )

    async def my_sessions(self, request: Request) -> Response:
        claims = await self.authenticate(request)
        listed = await self.sessions.my_sessions(
            claims.tenant, claims.sub, staff=claims.is_staff
        )
        return json_response({"sessions": listed})


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
            return error_response(exc.status, exc.code, str(exc))
        if isinstance(exc, SessionRuleError):
            extra: dict[str, Any] = {}
            expected = getattr(exc, "expected", None)
            if expected is not None:
                extra["expected"] = expected
            return error_response(exc.status, exc.code, str(exc), **extra)
        if isinstance(exc, TailMismatch):
            return error_response(412, exc.code, str(exc), offset=str(exc.tail))
        if isinstance(exc, InvalidEvent):
            return error_response(400, exc.code, str(exc))
        status, extra_headers = status_of(exc)
        response = error_response(status, exc.code, str(exc))
        for name, value in extra_headers:
            response.headers[name.decode()] = value.decode()
        return response

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document())

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
