"""Messages a client sends: ``hello``, ``subscribe``, ``unsubscribe``, ``publish``,
``cursor``, ``presence`` and ``refresh``.

Parsing is strict: a missing, unknown or mistyped field is refused
(``invalid_message``), so a client learns of its mistakes at once. Each
``serialize()`` returns the message's JSON object, ``type`` first, then
``rid``, then the other fields in the dataclass's order; optional fields only
when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, NotRequired, TypedDict, cast

from ._checks import (
    DEVICE,
    RID,
    SESSION,
    STATUSES,
    VIEWS,
    check_choice,
    check_nonempty,
    check_offset,
    check_offset_param,
    check_token,
    fields,
    match,
    read_objects,
    read_optional_str,
    read_str,
)
from .frames import JSONObject

__all__ = [
    "Cursor",
    "CursorDict",
    "Hello",
    "HelloDict",
    "PresenceStatus",
    "Publish",
    "PublishDict",
    "Refresh",
    "RefreshDict",
    "SetPresence",
    "SetPresenceDict",
    "Subscribe",
    "SubscribeDict",
    "Unsubscribe",
    "UnsubscribeDict",
    "View",
]

View = Literal["raw", "compact"]
"""``raw``: every event; ``compact``: streamed messages folded."""

PresenceStatus = Literal["active", "idle", "typing"]
"""The statuses a device sets for itself."""


# Raw shapes (what serialize() returns)


class HelloDict(TypedDict):
    type: Literal["hello"]
    token: str
    device: NotRequired[str]


class SubscribeDict(TypedDict):
    type: Literal["subscribe"]
    rid: str
    session: str
    offset: str
    view: View


class UnsubscribeDict(TypedDict):
    type: Literal["unsubscribe"]
    rid: NotRequired[str]
    session: str


class PublishDict(TypedDict):
    type: Literal["publish"]
    rid: str
    session: str
    events: list[JSONObject]
    expected_offset: NotRequired[str]


class CursorDict(TypedDict):
    type: Literal["cursor"]
    session: str
    offset: str


class SetPresenceDict(TypedDict):
    type: Literal["presence"]
    session: str
    status: PresenceStatus


class RefreshDict(TypedDict):
    type: Literal["refresh"]
    token: str


# Messages


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message: authenticates the connection (within the hello timeout)."""

    type: ClassVar[Literal["hello"]] = "hello"

    token: str
    """A bearer token."""

    device: str | None = None
    """The tab's or install's stable id; the server assigns one if absent."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Hello:
        """Read a decoded ``hello``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "hello", ("token",), ("device",), strict=True)
        message = cls(
            read_str(obj, "token", "hello"), read_optional_str(obj, "device", "hello")
        )
        message.check()
        return message

    def serialize(self) -> HelloDict:
        """The JSON object of this message."""
        out: HelloDict = {"type": "hello", "token": self.token}
        if self.device is not None:
            out["device"] = self.device
        return out

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        check_token(self.token, "hello.token")
        if self.device is not None:
            match(DEVICE, self.device, "hello.device")


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Receive a session's events after ``offset``, then live ones."""

    type: ClassVar[Literal["subscribe"]] = "subscribe"

    rid: str
    """Request id, echoed by ``subscribed`` or ``error``."""

    session: str
    """The session to read."""

    offset: str
    """Send the events after this offset; ``-1`` is the start, ``now`` the tail."""

    view: View = "raw"
    """``raw`` (every event) or ``compact`` (streamed messages folded)."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Subscribe:
        """Read a decoded ``subscribe``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "subscribe", ("rid", "session", "offset", "view"), strict=True)
        view = read_str(obj, "view", "subscribe")
        check_choice(view, VIEWS, "subscribe.view")
        message = cls(
            read_str(obj, "rid", "subscribe"),
            read_str(obj, "session", "subscribe"),
            read_str(obj, "offset", "subscribe"),
            cast(View, view),
        )
        message.check()
        return message

    def serialize(self) -> SubscribeDict:
        """The JSON object of this message."""
        return {
            "type": "subscribe",
            "rid": self.rid,
            "session": self.session,
            "offset": self.offset,
            "view": self.view,
        }

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(RID, self.rid, "subscribe.rid")
        match(SESSION, self.session, "subscribe.session")
        check_offset_param(self.offset, "subscribe.offset")
        check_choice(self.view, VIEWS, "subscribe.view")


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop receiving a session's events (no answer on success)."""

    type: ClassVar[Literal["unsubscribe"]] = "unsubscribe"

    session: str
    """The session to stop reading."""

    rid: str | None = None
    """Request id, echoed by an ``error`` if there is one."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Unsubscribe:
        """Read a decoded ``unsubscribe``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "unsubscribe", ("session",), ("rid",), strict=True)
        message = cls(
            read_str(obj, "session", "unsubscribe"),
            read_optional_str(obj, "rid", "unsubscribe"),
        )
        message.check()
        return message

    def serialize(self) -> UnsubscribeDict:
        """The JSON object of this message."""
        if self.rid is None:
            return {"type": "unsubscribe", "session": self.session}
        return {"type": "unsubscribe", "rid": self.rid, "session": self.session}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        if self.rid is not None:
            match(RID, self.rid, "unsubscribe.rid")
        match(SESSION, self.session, "unsubscribe.session")


@dataclass(frozen=True, slots=True)
class Publish:
    """Append events to a session, all or nothing."""

    type: ClassVar[Literal["publish"]] = "publish"

    rid: str
    """Request id, echoed by ``published`` or ``error``."""

    session: str
    """The session to append to."""

    events: tuple[JSONObject, ...]
    """Event drafts (``type``, ``id``, ``data``…); the server fills the rest."""

    expected_offset: str | None = None
    """Append only if the session's tail is this offset."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Publish:
        """Read a decoded ``publish``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(
            obj,
            "publish",
            ("rid", "session", "events"),
            ("expected_offset",),
            strict=True,
        )
        message = cls(
            read_str(obj, "rid", "publish"),
            read_str(obj, "session", "publish"),
            read_objects(obj, "events", "publish"),
            read_optional_str(obj, "expected_offset", "publish"),
        )
        message.check()
        return message

    def serialize(self) -> PublishDict:
        """The JSON object of this message."""
        out: PublishDict = {
            "type": "publish",
            "rid": self.rid,
            "session": self.session,
            "events": list(self.events),
        }
        if self.expected_offset is not None:
            out["expected_offset"] = self.expected_offset
        return out

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(RID, self.rid, "publish.rid")
        match(SESSION, self.session, "publish.session")
        check_nonempty(self.events, "publish.events")
        if self.expected_offset is not None:
            check_offset(self.expected_offset, "publish.expected_offset")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Move the caller's read cursor forward (no answer on success)."""

    type: ClassVar[Literal["cursor"]] = "cursor"

    session: str
    """The session read."""

    offset: str
    """The offset of the last event read."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Cursor:
        """Read a decoded ``cursor``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "cursor", ("session", "offset"), strict=True)
        message = cls(
            read_str(obj, "session", "cursor"), read_str(obj, "offset", "cursor")
        )
        message.check()
        return message

    def serialize(self) -> CursorDict:
        """The JSON object of this message."""
        return {"type": "cursor", "session": self.session, "offset": self.offset}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(SESSION, self.session, "cursor.session")
        check_offset(self.offset, "cursor.offset")


@dataclass(frozen=True, slots=True)
class SetPresence:
    """Set this device's presence status in a session (wire type ``presence``)."""

    type: ClassVar[Literal["presence"]] = "presence"

    session: str
    """The session."""

    status: PresenceStatus
    """``active``, ``idle`` or ``typing``."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> SetPresence:
        """Read a decoded client ``presence``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "presence", ("session", "status"), strict=True)
        status = read_str(obj, "status", "presence")
        check_choice(status, STATUSES, "presence.status")
        message = cls(
            read_str(obj, "session", "presence"),
            cast(PresenceStatus, status),
        )
        message.check()
        return message

    def serialize(self) -> SetPresenceDict:
        """The JSON object of this message."""
        return {"type": "presence", "session": self.session, "status": self.status}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        match(SESSION, self.session, "presence.session")
        check_choice(self.status, STATUSES, "presence.status")


@dataclass(frozen=True, slots=True)
class Refresh:
    """Replace the connection's token before it expires (no answer on success)."""

    type: ClassVar[Literal["refresh"]] = "refresh"

    token: str
    """The new bearer token."""

    @classmethod
    def parse(cls, obj: Mapping[str, object]) -> Refresh:
        """Read a decoded ``refresh``.

        Raises:
            ProtocolError: a field is missing, unknown, mistyped or malformed.
        """
        fields(obj, "refresh", ("token",), strict=True)
        message = cls(read_str(obj, "token", "refresh"))
        message.check()
        return message

    def serialize(self) -> RefreshDict:
        """The JSON object of this message."""
        return {"type": "refresh", "token": self.token}

    def check(self) -> None:
        """Raise :class:`ProtocolError` if a value is malformed."""
        check_token(self.token, "refresh.token")
