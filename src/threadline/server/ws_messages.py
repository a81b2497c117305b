"""What a ``/v1/ws`` connection does with each client message.

:class:`ConnectionMessages` holds the handlers of ``hello``, ``refresh``,
``publish``, ``cursor`` and ``presence``, the reach check, and the answers
they send (``error``, ``gone``): the part of
:class:`~.ws_connection.WebSocketConnection` that knows tokens, the session
layer and presence, apart from its reader, writer and timers (whose reader
dispatches each message here, and starts and stops subscriptions itself).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from ..auth import AuthError, Claims
from ..exceptions import (
    InvalidEvent,
    OffsetGone,
    ProtocolError,
    SessionRuleError,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.actors import Actor
from ..protocol.codes import CloseCode
from ..protocol.connection import ServerProtocol
from ..protocol.events import EventDraft
from ..protocol.frames import JSONObject
from ..protocol.messages import (
    Cursor,
    Hello,
    Publish,
    Refresh,
    SetPresence,
)
from ..protocol.offsets import Offset
from .access import actor_of, reach_session
from .presence import PresenceManager
from .session_http import MAX_BATCH_EVENTS
from .sessions import Published, SessionInfo, SessionManager
from .stream_codec import status_of
from .subscription import Subscription

if TYPE_CHECKING:
    from .websocket import WebSocketHandler

__all__ = ["ConnectionMessages", "error_of"]

logger = logging.getLogger("threadline.server.websocket")  # the transport's logger

_MAX_REACHED: Final = 1024  # sessions whose reach check a connection caches


class ConnectionMessages:
    """The message handlers of :class:`~.ws_connection.WebSocketConnection`,
    which sets every attribute below and provides the methods declared for
    type checking; a mixin, so a message costs no extra call.
    """

    id: int
    handler: WebSocketHandler
    sessions: SessionManager
    presence: PresenceManager | None
    proto: ServerProtocol
    claims: Claims | None
    device: str | None
    subscriptions: dict[str, Subscription]
    _reached: dict[str, SessionInfo]
    _cursors: dict[str, Offset]
    _cursor_task: asyncio.Task[None] | None
    _publish_slots: asyncio.Semaphore

    if TYPE_CHECKING:

        def queued(self) -> None: ...

        def _spawn(
            self, coro: Coroutine[Any, Any, None], name: str
        ) -> asyncio.Task[None]: ...

        def _arm_timer(self) -> None: ...

    async def _on_hello(self, hello: Hello) -> None:
        try:
            claims = await self.handler.verify(hello.token)
        except AuthError as exc:
            self.proto.close(CloseCode.UNAUTHORIZED, str(exc))
            return
        self.claims = claims
        self.device = hello.device or f"ws-{secrets.token_hex(6)}"
        self.proto.accept(expires_at=claims.exp)
        self._arm_timer()

    async def _on_refresh(self, refresh: Refresh) -> None:
        current = self._claims()
        try:
            claims = await self.handler.verify(refresh.token)
        except AuthError as exc:
            self.proto.close(CloseCode.UNAUTHORIZED, str(exc))
            return
        if (claims.tenant, claims.sub, claims.role) != (
            current.tenant,
            current.sub,
            current.role,
        ):
            self.proto.close(CloseCode.FORBIDDEN, "refresh for another identity")
            return
        self.claims = claims
        self._reached.clear()
        self.proto.accept(expires_at=claims.exp)
        self._arm_timer()
        for session, sub in list(self.subscriptions.items()):
            if sub.answered and not claims.may_access_session(session):
                self.end_subscription(sub, "forbidden")

    def actor(self) -> Actor:
        """Who this connection is: the token's identity and the device."""
        return actor_of(self._claims(), self.device)

    def _claims(self) -> Claims:
        claims = self.claims
        if claims is None:  # the protocol passes nothing on before a hello
            raise RuntimeError("no hello was accepted")
        return claims

    async def reach(self, session: str) -> SessionInfo:
        """The session, if the connection's token reaches it (cached until a
        refresh)."""
        info = self._reached.get(session)
        if info is None:
            info = await reach_session(self.sessions, self._claims(), session)
            if len(self._reached) >= _MAX_REACHED:
                self._reached.clear()  # bounded: a client may touch many sessions
            self._reached[session] = info
        return info

    def answer_error(self, exc: Exception, rid: str | None) -> None:
        """Answer a request (``rid``), or report a failure, with ``error``."""
        code, message, details = error_of(exc)
        self.proto.send_error(code, message, rid=rid, details=details)
        self.queued()

    # Subscriptions

    def end_subscription(
        self,
        sub: Subscription,
        reason: str,
        earliest: Offset | None = None,
        tail: Offset | None = None,
    ) -> None:
        """End a subscription from the server's side with ``gone``."""
        if self.subscriptions.get(sub.session) is not sub:
            return
        del self.subscriptions[sub.session]
        sub.stop()
        self.proto.send_gone(
            sub.session,
            reason,  # type: ignore[arg-type]
            earliest=None if earliest is None else str(earliest),
            tail=None if tail is None else str(tail),
        )
        self.queued()

    # Publishing and cursors

    async def _on_publish(self, message: Publish) -> None:
        claims = self._claims()
        try:
            await self.reach(message.session)
            if len(message.events) > MAX_BATCH_EVENTS:
                raise ProtocolError(
                    f"at most {MAX_BATCH_EVENTS} events per publish", "batch_too_large"
                )
            drafts = [EventDraft.parse(event) for event in message.events]
            expected = (
                None
                if message.expected_offset is None
                else Offset.parse(message.expected_offset)
            )
        except ThreadlineError as exc:
            self.answer_error(exc, message.rid)
            return
        # Backpressure: past the limit, stop reading until a publish is answered.
        await self._publish_slots.acquire()
        # Tasks start in the order created, and a publish queues its commit
        # before it first waits: publishes commit in the order received.
        publish = functools.partial(
            self.sessions.publish,
            claims.tenant,
            message.session,
            actor_of(claims, self.device),
            drafts,
            caps=claims.caps,
            expected_offset=expected,
        )
        self._spawn(self._publish(message.rid, publish), "publish")

    async def _publish(
        self, rid: str, publish: Callable[[], Awaitable[list[Published]]]
    ) -> None:
        try:
            published = await publish()
        except Exception as exc:
            if not isinstance(exc, ThreadlineError):
                logger.exception("! connection %d: publish failed", self.id)
            self.answer_error(exc, rid)
        else:
            self.proto.send_published(rid, [str(p.offset) for p in published])
            self.queued()
        finally:
            self._publish_slots.release()

    async def _on_cursor(self, message: Cursor) -> None:
        try:
            await self.reach(message.session)
            offset = Offset.parse(message.offset)
        except ThreadlineError as exc:
            self.answer_error(exc, None)
            return
        # Coalesced: only the latest cursor per session is written.
        current = self._cursors.get(message.session)
        self._cursors[message.session] = (
            offset if current is None else max(current, offset)
        )
        if self._cursor_task is None or self._cursor_task.done():
            self._cursor_task = self._spawn(self._move_cursors(), "cursor")

    async def _on_presence(self, message: SetPresence) -> None:
        presence = self.presence
        if presence is None:
            self.proto.send_error("not_supported", "presence is off on this server")
            return
        try:
            await self.reach(message.session)
            await presence.set_status(
                self._claims().tenant, message.session, self.actor(), message.status
            )
        except ThreadlineError as exc:
            self.answer_error(exc, None)

    async def _move_cursors(self) -> None:
        claims = self._claims()
        while self._cursors:
            session = next(iter(self._cursors))
            offset = self._cursors.pop(session)
            try:
                await self.sessions.set_cursor(
                    claims.tenant, session, claims.sub, offset, staff=claims.is_staff
                )
            except ThreadlineError as exc:
                self.answer_error(exc, None)


def error_of(exc: Exception) -> tuple[str, str, JSONObject]:
    """The ``error`` message's code, text and details for an exception.

    The codes are the HTTP API's; ``details.status`` is the HTTP status the
    same failure gets there, plus the context the HTTP body carries.
    """
    if not isinstance(exc, ThreadlineError):
        return "internal_error", "internal error", {"status": 500}
    details: JSONObject = {}
    if isinstance(exc, AuthError):
        status = exc.status
    elif isinstance(exc, SessionRuleError):
        status = exc.status
        expected = getattr(exc, "expected", None)
        if expected is not None:
            details["expected"] = expected
    elif isinstance(exc, TailMismatch):
        status = 412
        details["offset"] = str(exc.tail)
    elif isinstance(exc, InvalidEvent):
        status = 400
        if exc.field is not None:
            details["field"] = exc.field
    else:
        status, _ = status_of(exc)
        if isinstance(exc, OffsetGone):
            details["earliest"] = str(exc.earliest)
            details["tail"] = str(exc.tail)
    details["status"] = status
    return exc.code, str(exc), details
