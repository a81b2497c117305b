"""One WebSocket subscription: the answer, the catch-up, the hand-off to live.

A :class:`Subscription` answers its ``subscribe`` (the reach check, the
state snapshot, the resolved offset), then catches up from the store in
chunks of at most the hub's read size, each only once its connection's send
queue is low (pacing), so replaying history never fills the queue. When it
reaches the tail, or the recent events its session's feed keeps, it joins the
feed (:class:`~threadline.server.hub.Hub`) without a gap; from then on it
costs no task, and the feed pushes every new event into its connection's
protocol, which drops what was already sent.

With presence on, a subscription also listens to its session's presence (its
``state`` lists who is present; changes follow as ``presence`` messages, a
customer never hearing of a supervisor) and, once answered, holds its
connection's device present in the session until it stops
(:class:`~threadline.server.presence.PresenceManager`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..exceptions import (
    LogGone,
    OffsetGone,
    ProtocolError,
    StorageError,
    ThreadlineError,
)
from ..protocol.actors import Actor
from ..protocol.frames import EncodedEvent
from ..protocol.messages import Subscribe
from ..protocol.offsets import NOW, Offset, parse_offset_param
from .hub import encode_records
from .presence import Hold
from .sessions import SessionNotFound

if TYPE_CHECKING:
    from .websocket import WebSocketConnection

__all__ = ["Subscription"]

logger = logging.getLogger(__name__)

_INTERNAL_ERROR = 1011


class Subscription:
    """One subscription of one connection; a hub subscriber once live.

    Args:
        conn: The connection it belongs to (its hello accepted).
        session: The session subscribed.
    """

    __slots__ = (
        "abandoned",
        "answered",
        "conn",
        "hold",
        "listening",
        "live",
        "session",
        "staff",
        "task",
        "tenant",
    )

    def __init__(self, conn: WebSocketConnection, session: str) -> None:
        claims = conn.claims
        if claims is None:  # the protocol passes nothing on before a hello
            raise RuntimeError("subscribe before an accepted hello")
        self.conn = conn
        self.session = session
        self.tenant = claims.tenant
        self.staff = claims.is_staff
        """Which view it reads: staff, or the customer view."""
        self.task: asyncio.Task[None] | None = None
        """Its task, while it answers and catches up."""
        self.answered = False
        self.abandoned = False
        """Unsubscribed or ended on our side: nothing more is sent."""
        self.live = False
        """Joined its session's feed."""
        self.listening = False
        """Listening to the session's presence."""
        self.hold: Hold | None = None
        """Its hold on the connection's device's presence, once answered."""

    # Hub subscriber

    def deliver(self, events: list[EncodedEvent]) -> None:
        conn = self.conn
        conn.proto.send_events(self.session, events)
        conn.queued()

    def gone(
        self, reason: str, earliest: Offset | None = None, tail: Offset | None = None
    ) -> None:
        self.conn.end_subscription(self, reason, earliest, tail)

    def fail(self) -> None:
        self.conn.abort(_INTERNAL_ERROR)

    # Presence listener

    def presence(self, session: str, actor: Actor, status: str) -> None:
        conn = self.conn
        conn.proto.send_presence(session, actor.to_json(), status)
        conn.queued()

    # Life

    def stop(self) -> None:
        """Stop on our side (a pending answer still goes out)."""
        self.abandoned = True
        self._end_presence()
        if self.live:
            self.conn.hub.leave(self, self.tenant, self.session, staff=self.staff)
            self.live = False
        elif self.answered and self.task is not None:
            self.task.cancel()

    async def run(self, message: Subscribe) -> None:
        """Answer ``message``, catch up, join the feed. Cancelling is safe."""
        conn, sessions, hub = self.conn, self.conn.sessions, self.conn.hub
        tenant, session, staff = self.tenant, self.session, self.staff
        # The compact view comes from the compaction module when it is there.
        read_compact = getattr(sessions, "read_compact", None)
        compact = message.view == "compact"
        try:
            info = await conn.reach(session)
            if compact and read_compact is None:
                raise ProtocolError(
                    "view=compact is not served by this server", "unsupported_view"
                )
            state = await sessions.snapshot(tenant, session, staff=staff)
            state["session"] = info.to_json()
            state["cursors"] = await sessions.cursors(tenant, session, staff=staff)
            param = parse_offset_param(message.offset)
            after = Offset.parse(state["offset"]) if param == NOW else None
            if isinstance(param, Offset) and not param.is_zero:
                after = param
            first = await sessions.read(
                tenant, session, staff=staff, after=after, max_bytes=hub.read_bytes
            )
            presence = conn.presence
            if presence is not None and not self.abandoned:
                # Listen first: a change until ``subscribed`` is in the list.
                presence.add_listener(
                    tenant, session, self, staff=staff, own=conn.actor()
                )
                self.listening = True
                state["presence"] = await presence.snapshot(
                    tenant, session, staff=staff
                )
        except Exception as exc:
            if not isinstance(exc, ThreadlineError):
                logger.exception("! connection %d: subscribe failed", conn.id)
            self._end_presence()
            conn.answer_error(exc, message.rid)
            return
        position = first.info.earliest if after is None else after
        self.answered = True
        conn.proto.send_subscribed(message.rid, session, str(position), state)
        conn.queued()
        if self.abandoned or conn.subscriptions.get(session) is not self:
            return  # unsubscribed while subscribing: answered, nothing more
        claims = conn.claims
        if claims is None or not claims.may_access_session(session):
            self.gone("forbidden")  # a refresh narrowed the token meanwhile
            return
        await self._hold_presence()
        at_tail = first.up_to_date
        try:
            if compact:
                position = await self._compact(read_compact, position)
                at_tail = True  # as of the last compact page: raw from here
            elif first.records:
                await conn.room()  # the state may be large: let it go first
                self.deliver(encode_records(first.records))
                position = first.next_offset
            while True:
                await conn.room()
                if hub.join(
                    self, tenant, session, staff=staff, after=position, at_tail=at_tail
                ):
                    break
                result = await sessions.read(
                    tenant,
                    session,
                    staff=staff,
                    after=position,
                    max_bytes=hub.read_bytes,
                )
                if result.records:
                    self.deliver(encode_records(result.records))
                    position = result.next_offset
                at_tail = result.up_to_date
        except (SessionNotFound, LogGone):
            self.gone("deleted")
            return
        except OffsetGone as exc:
            self.gone("offset_gone", exc.earliest, exc.tail)
            return
        self.live = True

    async def _hold_presence(self) -> None:
        presence = self.conn.presence
        if presence is None or self.abandoned:
            return
        try:
            hold = await presence.hold(self.tenant, self.session, self.conn.actor())
        except StorageError:
            logger.exception("! connection %d: presence failed", self.conn.id)
            return
        if self.abandoned:
            presence.release(hold)  # stopped meanwhile
        else:
            self.hold = hold

    def _end_presence(self) -> None:
        presence = self.conn.presence
        if presence is None:
            return
        if self.listening:
            self.listening = False
            presence.remove_listener(self.tenant, self.session, self)
        hold, self.hold = self.hold, None
        if hold is not None:
            presence.release(hold)

    async def _compact(self, read_compact: Any, position: Offset) -> Offset:
        """Send the compact view after ``position`` up to the tail; where it ended.

        A compact page ends at a resumable event, but not every event in it
        is one (a message may have started before a note it ended after). Each
        page is queued into an empty send queue, so it starts a frame, and the
        frame ends with it or goes on past it (pages are far below the frame
        limit): a client that resumes from the last offset of any frame it got
        loses nothing.
        """
        conn = self.conn
        while True:
            page = await read_compact(
                self.tenant,
                self.session,
                staff=self.staff,
                after=position,
                max_bytes=conn.hub.read_bytes,
            )
            if page.records:
                await conn.room(empty=True)  # no await between this and deliver
                self.deliver(
                    [
                        EncodedEvent(str(r.offset), r.data.decode(), len(r.data))
                        for r in page.records
                    ]
                )
            next_offset: Offset = page.next_offset
            position = max(position, next_offset)
            if page.up_to_date:
                return position
