"""Messages a server sends: ``subscribed``, ``events``, ``published``, ``error``,
``presence`` and ``gone``.

Parsing is lenient about fields it does not know (a newer server may add
some) and strict about the ones it does. Each ``serialize()`` returns the
message's JSON object, ``type`` first, then ``rid``, then the other fields in
the dataclass's order; optional fields only when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, NotRequired, TypedDict, cast

from ._checks import (
    CODE,
    GONE_REASONS,
    RID,
    SESSION,
    STATUSES,
    check_actor,
    check_choice,
    check_event_offsets,
    check_nonempty,
    check_offset,
    fields,
    match,
    read_object,
    read_objects,
    read_optional_str,
    read_str,
    read_strs,
)
from .frames import JSONObject

__all__ = [
    "ErrorDict",
    "ErrorMessage",
    "Events",
    "EventsDict",
    "Gone",
    "GoneDict",
    "GoneReason",
    "Presence",
    "PresenceDict",
    "Published",
    "PublishedDict",
    "Subscribed",
    "SubscribedDict",
]

GoneReason = Literal["deleted", "forbidden", "offset_gone"]
"""Why a subscription ended on the server's side."""


# Raw shapes (what serialize() returns)


class SubscribedDict(TypedDict):
    type: Literal["subscribed"]
    rid: str
    session: str
    offset: str
    state: JSONObject


class EventsDict(TypedDict):
    type: Literal["events"]
    session: str
    events: list[JSONObject]


class PublishedDict(TypedDict):
    type: Literal["published"]
    rid: str
    offsets: list[str]


class ErrorDict(TypedDict):
    type: Literal["error"]
    rid: NotRequired[str]
    code: str
    message: str
    details: NotRequired[JSONObject]


class PresenceDict(TypedDict):
    type: Literal["presence"]
    session: str
    actor: JSONObject
    status: str


class GoneDict(TypedDict):
    type: Literal["gone"]
    session: str
    reason: GoneReason
    earliest: NotRequired[str]
    tail: NotRequired[str]


# Messages


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A subscribe succeeded: the events after ``offset`` follow, then live ones."""

    type: ClassVar[Literal["subscribed"]] = "subscribed"

    rid: str
    """The ``subscribe``'s request id."""

    session: str
    """The session subscribed."""

    offset: str
    """The resolved start: every event that follows has a greater offset."""

    state: JSONObject
    """The session's state snapshot, as this reader may see it."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Subscribed:
        """Read a decoded ``subscribed``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "subscribed", ("rid", "session", "offset", "state"), strict=False)
        message = cls(
            read_str(obj, "rid", "subscribed"),
            read_str(obj, "session", "subscribed"),
            read_str(obj, "offset", "subscribed"),
            read_object(obj, "state", "subscribed"),
        )
        message.check()
        return message

    def serialize(self) -> SubscribedDict:
        """The JSON object of this message."""
        return {
            "type": "subscribed",
            "rid": self.rid,
            "session": self.session,
            "offset": self.offset,
            "state": self.state,
        }

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(RID, self.rid, "subscribed.rid")
        match(SESSION, self.session, "subscribed.session")
        check_offset(self.offset, "subscribed.offset")


@dataclass(frozen=True, slots=True)
class Events:
    """Events of one session, in offset order."""

    type: ClassVar[Literal["events"]] = "events"

    session: str
    """The session they belong to."""

    events: tuple[JSONObject, ...]
    """Event envelopes."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Events:
        """Read a decoded ``events``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "events", ("session", "events"), strict=False)
        message = cls(
            read_str(obj, "session", "events"), read_objects(obj, "events", "events")
        )
        message.check()
        return message

    def serialize(self) -> EventsDict:
        """The JSON object of this message."""
        return {"type": "events", "session": self.session, "events": list(self.events)}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(SESSION, self.session, "events.session")
        check_nonempty(self.events, "events.events")
        check_event_offsets(self.events, "events.events")


@dataclass(frozen=True, slots=True)
class Published:
    """A publish is durable: the offsets of its events, in order."""

    type: ClassVar[Literal["published"]] = "published"

    rid: str
    """The ``publish``'s request id."""

    offsets: tuple[str, ...]
    """One offset per published event."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Published:
        """Read a decoded ``published``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "published", ("rid", "offsets"), strict=False)
        message = cls(
            read_str(obj, "rid", "published"), read_strs(obj, "offsets", "published")
        )
        message.check()
        return message

    def serialize(self) -> PublishedDict:
        """The JSON object of this message."""
        return {"type": "published", "rid": self.rid, "offsets": list(self.offsets)}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(RID, self.rid, "published.rid")
        check_nonempty(self.offsets, "published.offsets")
        for offset in self.offsets:
            check_offset(offset, "published.offsets")


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A request failed, or a message could not be handled (wire type ``error``)."""

    type: ClassVar[Literal["error"]] = "error"

    code: str
    """Machine-readable code, e.g. ``forbidden`` or ``invalid_message``."""

    message: str
    """For humans."""

    rid: str | None = None
    """The failed request's id; absent when the message had none."""

    details: JSONObject | None = None
    """Machine-readable context (``earliest`` and ``tail`` for ``offset_gone``…)."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> ErrorMessage:
        """Read a decoded ``error``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "error", ("code", "message"), strict=False)
        message = cls(
            read_str(obj, "code", "error"),
            read_str(obj, "message", "error"),
            read_optional_str(obj, "rid", "error"),
            read_object(obj, "details", "error") if "details" in obj else None,
        )
        message.check()
        return message

    def serialize(self) -> ErrorDict:
        """The JSON object of this message."""
        out: ErrorDict = (
            {"type": "error", "code": self.code, "message": self.message}
            if self.rid is None
            else {
                "type": "error",
                "rid": self.rid,
                "code": self.code,
                "message": self.message,
            }
        )
        if self.details is not None:
            out["details"] = self.details
        return out

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        if self.rid is not None:
            match(RID, self.rid, "error.rid")
        match(CODE, self.code, "error.code")


@dataclass(frozen=True, slots=True)
class Presence:
    """A participant's device changed presence status in a subscribed session."""

    type: ClassVar[Literal["presence"]] = "presence"

    session: str
    """The session."""

    actor: JSONObject
    """Whose device: ``{id, role, name?, device?}`` as in an event envelope."""

    status: str
    """``active``, ``idle``, ``typing``, or ``offline``."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Presence:
        """Read a decoded server ``presence``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "presence", ("session", "actor", "status"), strict=False)
        message = cls(
            read_str(obj, "session", "presence"),
            read_object(obj, "actor", "presence"),
            read_str(obj, "status", "presence"),
        )
        message.check()
        return message

    def serialize(self) -> PresenceDict:
        """The JSON object of this message."""
        return {
            "type": "presence",
            "session": self.session,
            "actor": self.actor,
            "status": self.status,
        }

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(SESSION, self.session, "presence.session")
        check_actor(self.actor, "presence.actor")
        check_choice(self.status, (*STATUSES, "offline"), "presence.status")


@dataclass(frozen=True, slots=True)
class Gone:
    """A subscription ended on the server's side."""

    type: ClassVar[Literal["gone"]] = "gone"

    session: str
    """The session no longer subscribed."""

    reason: GoneReason
    """``deleted``, ``forbidden`` or ``offset_gone``."""

    earliest: str | None = None
    """With ``offset_gone``: the earliest offset still readable."""

    tail: str | None = None
    """With ``offset_gone``: the session's tail."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Gone:
        """Read a decoded ``gone``.

        Raises:
            ProtocolError: a field is missing, mistyped or malformed.
        """
        fields(obj, "gone", ("session", "reason"), strict=False)
        reason = read_str(obj, "reason", "gone")
        check_choice(reason, GONE_REASONS, "gone.reason")
        message = cls(
            read_str(obj, "session", "gone"),
            cast(GoneReason, reason),
            read_optional_str(obj, "earliest", "gone"),
            read_optional_str(obj, "tail", "gone"),
        )
        message.check()
        return message

    def serialize(self) -> GoneDict:
        """The JSON object of this message."""
        out: GoneDict = {"type": "gone", "session": self.session, "reason": self.reason}
        if self.earliest is not None:
            out["earliest"] = self.earliest
        if self.tail is not None:
            out["tail"] = self.tail
        return out

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(SESSION, self.session, "gone.session")
        check_choice(self.reason, GONE_REASONS, "gone.reason")
        if self.earliest is not None:
            check_offset(self.earliest, "gone.earliest")
        if self.tail is not None:
            check_offset(self.tail, "gone.tail")
