"""The v1 event envelope: what a client publishes, and what the log stores.

A client publishes an :class:`EventDraft`: ``type``, ``id`` (its UUIDv7, for
exactly-once publishing), ``data``, and optionally ``visibility`` and
``trace_id``. The server validates it against the session
(:class:`~threadline.protocol.state.SessionState`), then stores an
:class:`Event`: the draft plus ``offset``, ``ts``, the verified ``actor`` and
the audit chain's ``prev_hash`` and ``hash``::

    {"v": 1, "offset": "…", "ts": "2026-11-26T06:10:27.123456Z",
     "type": "message.delta", "id": "01J…",
     "actor": {"id": "cust_42", "role": "customer", "name": "Dana",
               "device": "tab-7f3a"},
     "visibility": "all", "data": {…}, "trace_id": "…",
     "prev_hash": "…", "hash": "…"}

Parsing is strict: a wrong type, a missing field or an unknown field is
:class:`~threadline.exceptions.InvalidEvent` (``400 invalid_event``), whose
``field`` names the path. A draft that carries the fields the server assigns
(``v``, ``offset``, ``ts``, ``actor``, ``prev_hash``, ``hash``) has them
ignored, never trusted.

``data`` holds JSON-decoded values, checked but not copied: treat it as
read-only.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, cast

import orjson  # a pure codec and a core dependency: no I/O

from ..exceptions import InvalidOffset
from ._fields import (
    ID_PATTERN,
    check_keys,
    expect_bool,
    expect_choice,
    expect_object,
    expect_str,
    fail,
)
from .actors import Actor
from .offsets import Offset
from .payloads import Visibility, check_data, check_visibility, is_event_type

__all__ = [
    "GENESIS_HASH",
    "Event",
    "EventDraft",
    "format_ts",
    "parse_ts",
]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of a session's first event."""

_TS: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")
_HASH: Final = re.compile(r"\A[0-9a-f]{64}\Z")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SERVER_FIELDS: Final = frozenset({"v", "offset", "ts", "actor", "prev_hash", "hash"})
_VISIBILITIES: Final = ("all", "staff")


def format_ts(seconds: float) -> str:
    """Format epoch seconds as the envelope's ``ts``: RFC 3339, UTC, microseconds.

    Equal-width strings, so ``ts`` values compare as text in time order.
    """
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    prefix = _formatted_seconds(whole)
    return f"{prefix}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _formatted_seconds(whole: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of whole epoch seconds (the same second recurs)."""
    return (_EPOCH + timedelta(seconds=whole)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_ts(text: str, path: str = "ts") -> float:
    """Parse an envelope ``ts`` back to epoch seconds.

    Raises:
        InvalidEvent: not ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, or not a date.
    """
    if not _TS.match(text):
        fail("must be an RFC 3339 UTC time with microseconds", path)
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        fail("is not a valid date and time", path)
    return (moment.replace(tzinfo=UTC) - _EPOCH) / timedelta(seconds=1)


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        text = orjson.dumps(obj)
        # orjson writes NaN and the infinities as null: let json refuse them.
        if b"null" not in text:
            return text
    except orjson.JSONEncodeError:  # an integer past 64 bits
        pass
    return json.dumps(
        obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def _check_common(
    event_type: str,
    event_id: str,
    visibility: str | None,
    trace_id: str | None,
) -> None:
    if not is_event_type(event_type):
        fail(f"unknown event type {event_type[:80]!r}", "type")
    if not ID_PATTERN.match(event_id):
        fail("must match [A-Za-z0-9._:-]{1,128}", "id")
    check_visibility(event_type, visibility, "visibility")
    if trace_id is not None and not ID_PATTERN.match(trace_id):
        fail("must match [A-Za-z0-9._:-]{1,128}", "trace_id")


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return None if value is None else expect_str(value, key)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event as a client publishes it, before the server stores it."""

    type: str
    """A type of the event table, or an application type ``x.<name>``."""

    id: str
    """The publisher's id for exactly-once publishing (a UUIDv7)."""

    data: dict[str, Any]
    """The type's fields (see :mod:`~threadline.protocol.payloads`)."""

    visibility: Visibility | None = None
    """``all`` or ``staff``; ``None`` takes the default for the type."""

    trace_id: str | None = None
    """An optional trace id, passed through."""

    @classmethod
    def parse(cls, value: object) -> EventDraft:
        """Parse and check a draft from a JSON-decoded object.

        Raises:
            InvalidEvent: the draft is malformed (``field`` says where).
        """
        obj = expect_object(value, "event")
        fields = {key: item for key, item in obj.items() if key not in _SERVER_FIELDS}
        check_keys(fields, "event", ("type", "id", "data"), ("visibility", "trace_id"))
        draft = cls(
            expect_str(obj["type"], "type"),
            expect_str(obj["id"], "id"),
            expect_object(obj["data"], "data"),
            cast(Visibility | None, _optional_str(obj, "visibility")),
            _optional_str(obj, "trace_id"),
        )
        draft.check()
        return draft

    def check(self) -> None:
        """Check a draft, including its ``data`` against its type.

        Raises:
            InvalidEvent: the draft is malformed (``field`` says where).
        """
        _check_common(self.type, self.id, self.visibility, self.trace_id)
        check_data(self.type, expect_object(self.data, "data"), stored=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        obj: dict[str, Any] = {"type": self.type, "id": self.id}
        if self.visibility is not None:
            obj["visibility"] = self.visibility
        obj["data"] = self.data
        if self.trace_id is not None:
            obj["trace_id"] = self.trace_id
        return obj

    def serialize(self) -> bytes:
        """Compact UTF-8 JSON."""
        return _dumps(self.to_json())

    def to_event(
        self, *, offset: Offset, ts: str, actor: Actor, prev_hash: str, hash: str
    ) -> Event:
        """The event to store for this draft.

        Raises:
            ValueError: the draft's visibility is not resolved yet
                (:meth:`SessionState.validate` resolves it).
        """
        if self.visibility is None:
            raise ValueError("resolve the draft's visibility before storing it")
        return Event(
            offset=offset,
            ts=ts,
            type=self.type,
            id=self.id,
            actor=actor,
            visibility=self.visibility,
            data=self.data,
            prev_hash=prev_hash,
            hash=hash,
            trace_id=self.trace_id,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An event as the log stores it (envelope v1)."""

    v: ClassVar[int] = 1
    """The envelope version."""

    offset: Offset
    """Its position in the session log."""

    ts: str
    """When the server stored it: RFC 3339 UTC with microseconds."""

    type: str
    """A type of the event table, or an application type ``x.<name>``."""

    id: str
    """The publisher's id for exactly-once publishing."""

    actor: Actor
    """Who published it, as verified by the server."""

    visibility: Visibility
    """``all`` or ``staff``."""

    data: dict[str, Any]
    """The type's fields (see :mod:`~threadline.protocol.payloads`)."""

    prev_hash: str
    """The ``hash`` of the event before (:data:`GENESIS_HASH` for the first)."""

    hash: str
    """The audit chain's hash of this event (64 lowercase hex digits)."""

    trace_id: str | None = None
    """An optional trace id, passed through."""

    compacted: bool = False
    """Made by a compact read (:mod:`~threadline.protocol.compaction`), not
    stored: ``hash`` and ``prev_hash`` are those of the stored event at its
    offset and do not cover its ``data``."""

    redacted: bool = False
    """A ``redaction`` blanked its ``data`` (:mod:`~threadline.protocol.redaction`):
    ``data`` keeps only the fields that give the event its place, and is not
    checked against the type. ``hash`` still links it: the chain covers
    ``data`` by digest (:mod:`~threadline.protocol.audit`)."""

    @classmethod
    def parse(cls, value: object) -> Event:
        """Parse and check a stored event from a JSON-decoded object.

        Raises:
            InvalidEvent: the event is malformed (``field`` says where).
        """
        obj = expect_object(value, "event")
        check_keys(
            obj,
            "event",
            ("v", "offset", "ts", "type", "id", "actor", "visibility", "data")
            + ("prev_hash", "hash"),
            ("trace_id", "compacted", "redacted"),
        )
        if type(obj["v"]) is not int or obj["v"] != cls.v:
            fail(f"must be {cls.v}", "v")
        try:
            offset = Offset.parse(expect_str(obj["offset"], "offset"))
        except InvalidOffset:
            fail("must be an offset", "offset")
        event = cls(
            offset=offset,
            ts=expect_str(obj["ts"], "ts"),
            type=expect_str(obj["type"], "type"),
            id=expect_str(obj["id"], "id"),
            actor=Actor.parse(obj["actor"]),
            visibility=cast(
                Visibility,
                expect_choice(obj["visibility"], "visibility", _VISIBILITIES),
            ),
            data=expect_object(obj["data"], "data"),
            prev_hash=expect_str(obj["prev_hash"], "prev_hash"),
            hash=expect_str(obj["hash"], "hash"),
            trace_id=_optional_str(obj, "trace_id"),
            compacted=expect_bool(obj.get("compacted", False), "compacted"),
            redacted=expect_bool(obj.get("redacted", False), "redacted"),
        )
        event.check()
        return event

    def check(self) -> None:
        """Check every field, including ``data`` against the type.

        Raises:
            InvalidEvent: the event is malformed (``field`` says where).
        """
        if self.offset.is_zero:
            fail("the start offset names no event", "offset")
        parse_ts(self.ts)
        _check_common(self.type, self.id, self.visibility, self.trace_id)
        expect_choice(self.visibility, "visibility", _VISIBILITIES)
        self.actor.check()
        data = expect_object(self.data, "data")
        if not self.redacted:  # a redacted event's data is what the blanking left
            check_data(self.type, data, stored=True)
        for name, value in (("prev_hash", self.prev_hash), ("hash", self.hash)):
            if not _HASH.match(value):
                fail("must be 64 lowercase hex digits", name)

    @property
    def timestamp(self) -> float:
        """``ts`` as epoch seconds."""
        return parse_ts(self.ts)

    def draft(self) -> EventDraft:
        """The draft this event stores (with its resolved visibility)."""
        return EventDraft(self.type, self.id, self.data, self.visibility, self.trace_id)

    def with_data(self, data: dict[str, Any]) -> Event:
        """A copy with other ``data`` (a redaction blanks an event's data)."""
        return replace(self, data=data)

    def to_json(self) -> dict[str, Any]:
        """The envelope's JSON object, in the envelope's field order."""
        obj: dict[str, Any] = {
            "v": self.v,
            "offset": str(self.offset),
            "ts": self.ts,
            "type": self.type,
            "id": self.id,
            "actor": self.actor.to_json(),
            "visibility": self.visibility,
            "data": self.data,
        }
        if self.trace_id is not None:
            obj["trace_id"] = self.trace_id
        if self.compacted:
            obj["compacted"] = True
        if self.redacted:
            obj["redacted"] = True
        obj["prev_hash"] = self.prev_hash
        obj["hash"] = self.hash
        return obj

    def serialize(self) -> bytes:
        """Compact UTF-8 JSON, encoded once and sent to every reader."""
        return _dumps(self.to_json())
