"""A session seen from the client: subscribe, publish, stream, cursors, state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ..exceptions import ProtocolError, RateLimited, Timeout
from ..protocol.events import Event, EventDraft
from ..protocol.frames import JSONObject
from ..protocol.offsets import Offset
from .ids import uuid7
from .sse import session_path
from .streaming import DEFAULT_MAX_IN_FLIGHT, MessageStream
from .subscription import DEFAULT_MAX_QUEUE, Subscription, View
from .transports import event_from

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Draft", "EventPage", "Session", "SessionInfo", "SessionListing"]

Visibility = Literal["all", "staff"]


class Draft(TypedDict, total=False):
    """An event to publish: ``type`` and ``data`` required; ``id`` defaults to a
    new UUIDv7."""

    type: str
    data: dict[str, Any]
    id: str
    visibility: Visibility
    trace_id: str


class SessionInfo(TypedDict):
    """A session's document (``POST /v1/sessions``)."""

    id: str
    customer: str | None
    metadata: dict[str, Any]
    created: str
    controller_role: str | None


class SessionListing(TypedDict):
    """One of the caller's sessions (``GET /v1/me/sessions``)."""

    session: SessionInfo
    offset: str
    """The session's tail, in the caller's view."""
    cursor: str | None
    """The caller's read cursor."""
    unread: int
    """Messages by others after the cursor."""
    controller: Any
    """Who holds the floor."""
    in_flight: bool
    """Whether a message is being streamed."""


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a session read (:meth:`Session.read`)."""

    events: list[Event]
    """The events, in offset order."""

    next_offset: Offset
    """Where the next read starts (always a safe resume point, compact too)."""

    up_to_date: bool
    """Whether the page reached the tail when it was read."""


class Session:
    """One session, through a :class:`~threadline.client.Client`.

    Cheap to make (``client.session(id)``); nothing happens on the server
    until a method is called. Methods may be called concurrently; publishes
    of one client to one session are stored in the order they were called.
    Cancelling a call is safe: a read is simply abandoned, and a publish is
    not withdrawn (it may still be stored, once). After the client is closed
    every method raises :class:`~threadline.exceptions.InvalidState`, and
    publishes still unanswered fail with
    :class:`~threadline.exceptions.ConnectionClosedOK`.
    """

    def __init__(self, client: Client, session_id: str) -> None:
        self.client = client
        self.id = session_id
        """The session's id."""

    def __repr__(self) -> str:
        return f"<Session {self.id!r}>"

    @property
    def timeout(self) -> float:
        """The client's timeout for one operation."""
        return self.client.timeout

    # Reading

    def subscribe(
        self,
        offset: str | Offset = "-1",
        *,
        view: View = "raw",
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> Subscription:
        """The session's events after ``offset``, then live ones.

        Use it as ``async with session.subscribe(...) as events: async for
        event in events: ...`` (or iterate it directly). See
        :class:`~threadline.client.Subscription` for resume, backpressure and
        how it ends.

        Args:
            offset: Deliver the events after this offset: ``-1`` (the
                default) is the start, ``now`` the tail (live events only),
                or an offset delivered before (resume).
            view: ``raw`` (every event) or ``compact`` (completed streamed
                messages folded into one ``message`` each).
            max_queue: Most events waiting for the consumer.

        Raises:
            InvalidState: the client is closed.
        """
        self.client.check_open()
        return Subscription(
            self.client.transport,
            self.id,
            offset=str(offset),
            view=view,
            max_queue=max_queue,
        )

    async def read(
        self, offset: str | Offset = "-1", *, view: View = "raw"
    ) -> EventPage:
        """One page of the session's events after ``offset``, over HTTP (no wait).

        Read on from ``page.next_offset`` until ``page.up_to_date``. A page
        is at most about 1 MiB; with ``view="compact"`` streamed messages are
        folded (see :meth:`subscribe`), so a whole conversation usually fits
        in one page.

        Args:
            offset: ``-1`` (the start, the default), ``now``, or an offset.
            view: ``raw`` or ``compact``.

        Raises:
            SessionNotFound, OffsetGone, AuthError, Forbidden, Timeout.
        """
        self.client.check_open()
        answer, headers = await self.client.api.request_with_headers(
            "GET",
            session_path(self.id, "/events"),
            params={"offset": str(offset), "view": view},
        )
        try:
            events = [event_from(obj) for obj in answer]
            next_offset = Offset.parse(headers["stream-next-offset"])
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed read answer: {exc!r}") from exc
        return EventPage(
            events, next_offset, headers.get("stream-up-to-date") == "true"
        )

    async def state(self) -> JSONObject:
        """The session's state as the caller may see it.

        Participants, presence, controller, open messages and runs, other
        participants' cursors (read receipts), ``offset`` (the tail) and the
        ``session`` document.

        Raises:
            SessionNotFound, AuthError, Forbidden, Timeout.
        """
        self.client.check_open()
        state: JSONObject = await self.client.api.request("GET", session_path(self.id))
        return state

    async def set_cursor(self, offset: str | Offset) -> Offset:
        """Move the caller's read cursor forward to ``offset``; return where it is.

        A cursor never moves back and stops at the caller's visible tail.
        Safe to retry.

        Raises:
            SessionNotFound, InvalidOffset, Timeout.
        """
        self.client.check_open()
        answer = await self.client.api.request(
            "PUT", session_path(self.id, "/cursor"), body={"offset": str(offset)}
        )
        return Offset.parse(answer["offset"])

    async def set_presence(
        self, status: Literal["active", "idle", "typing", "offline"]
    ) -> list[JSONObject]:
        """Set this device's presence status in the session (``typing`` while
        the user types, ``offline`` to leave now); return who is present.

        A device stays present for 15 s after its last sign of life; an open
        subscription keeps it present by itself. Not a log event: presence is
        ephemeral (PRODUCT.md).

        Raises:
            SessionNotFound, ProtocolError (``not_supported``: the server does
            not serve presence), Timeout.
        """
        self.client.check_open()
        answer = await self.client.api.request(
            "POST", session_path(self.id, "/presence"), body={"status": status}
        )
        present: list[JSONObject] = answer["presence"]
        return present

    # Publishing

    async def publish(
        self,
        type: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        visibility: Visibility | None = None,
    ) -> Offset:
        """Publish one event; return its offset once it is durable.

        Args:
            type: The event type (``message``, ``x.order.lookup``…).
            data: The type's fields.
            id: The event's id for exactly-once publishing; a new UUIDv7 by
                default. Publishing again with the same id stores nothing new
                and returns the original offset.
            visibility: ``all`` or ``staff``; the type's default if omitted.

        An unanswered publish is resent after a reconnect with the same id,
        so it is stored once. Cancelling the call does not withdraw the
        publish: it may still be stored.

        Raises:
            InvalidEvent: the event is malformed (checked before sending).
            SessionRuleError: the server refused it (``Forbidden``,
                ``NotInControl``, ``SessionClosed``, ``IdConflict``…).
            Timeout: no answer within the client's timeout (the outcome is
                unknown; publishing again with the same id is safe).
        """
        draft: Draft = {"type": type, "data": dict(data)}
        if id is not None:
            draft["id"] = id
        if visibility is not None:
            draft["visibility"] = visibility
        (offset,) = await self.publish_many([draft])
        return offset

    async def publish_many(
        self,
        drafts: Iterable[Draft | EventDraft],
        *,
        expected_offset: str | Offset | None = None,
    ) -> list[Offset]:
        """Publish events all or nothing, in order; return their offsets.

        Args:
            drafts: The events (an :class:`~threadline.protocol.events.EventDraft`
                or a :class:`Draft` dict, whose ``id`` defaults to a new UUIDv7).
            expected_offset: Publish only if the session's tail (in the
                caller's view) is this offset, else raise ``TailMismatch``:
                one of several competing writers wins.

        A rate-limited publish is retried after the server's ``Retry-After``,
        within the timeout. Otherwise as :meth:`publish`.

        Raises:
            TailMismatch: ``expected_offset`` is not the tail.
            see :meth:`publish`.
        """
        events = [_draft_json(draft) for draft in drafts]
        if not events:
            raise ValueError("nothing to publish")
        expected = None if expected_offset is None else str(expected_offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            future = self.submit_many(events, expected_offset=expected)
            try:
                async with asyncio.timeout_at(deadline):
                    offsets = await asyncio.shield(future)
            except TimeoutError as exc:
                raise Timeout(f"publish to {self.id!r}: no answer in time") from exc
            except RateLimited as exc:
                if loop.time() + exc.retry_after >= deadline:
                    raise
                await asyncio.sleep(exc.retry_after)
                continue
            return [Offset.parse(offset) for offset in offsets]

    async def send_message(
        self,
        text: str,
        *,
        role: Literal["user", "assistant", "system"] | None = None,
        message_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        visibility: Visibility | None = None,
    ) -> Offset:
        """Publish a complete text message; return its offset.

        Args:
            text: The message's text (one ``text`` part).
            role: ``user`` by default for a customer's token, ``assistant``
                for staff.
            message_id: The message's id; a new UUIDv7 by default.
            run_id: The run it belongs to.
            metadata: Application data carried with the message.
            visibility: ``all`` or ``staff``.

        Raises:
            as :meth:`publish`.
        """
        data: dict[str, Any] = {
            "message_id": message_id or uuid7(),
            "role": role or self.client.default_role,
            "parts": [{"type": "text", "text": text}],
        }
        if run_id is not None:
            data["run_id"] = run_id
        if metadata is not None:
            data["metadata"] = metadata
        return await self.publish("message", data, visibility=visibility)

    def stream_message(
        self,
        *,
        role: Literal["user", "assistant", "system"] = "assistant",
        run_id: str | None = None,
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        visibility: Visibility | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> MessageStream:
        """Stream a message: ``async with session.stream_message() as m:
        await m.write(text)``.

        Deltas are pipelined (up to ``max_in_flight`` unanswered) and the
        message always ends: ``complete``, or ``cancelled`` / ``error`` on
        cancellation or an exception. See
        :class:`~threadline.client.MessageStream`.
        """
        self.client.check_open()
        return MessageStream(
            self,
            message_id=message_id or uuid7(),
            role=role,
            run_id=run_id,
            metadata=metadata,
            visibility=visibility,
            max_in_flight=max_in_flight,
        )

    # For MessageStream

    def submit(
        self, type: str, data: dict[str, Any], *, merge: bool = False
    ) -> asyncio.Future[list[str]]:
        """Queue one event for publishing now; the future holds its offset."""
        return self.submit_many(
            [_draft_json({"type": type, "data": data})], merge=merge
        )

    def submit_many(
        self,
        events: list[JSONObject],
        *,
        expected_offset: str | None = None,
        merge: bool = False,
    ) -> asyncio.Future[list[str]]:
        """Queue checked event drafts for publishing now, in call order."""
        self.client.check_open()
        return self.client.transport.submit(
            self.id, events, expected_offset=expected_offset, merge=merge
        )


def _draft_json(draft: Draft | EventDraft) -> JSONObject:
    """Check a draft locally and return its JSON (with an id)."""
    if isinstance(draft, EventDraft):
        draft.check()
        return draft.to_json()
    if not isinstance(draft, Mapping) or "type" not in draft or "data" not in draft:
        raise TypeError("a draft needs 'type' and 'data'")
    checked = EventDraft(
        draft["type"],
        draft.get("id") or uuid7(),
        dict(draft["data"]),
        draft.get("visibility"),
        draft.get("trace_id"),
    )
    checked.check()
    return checked.to_json()
