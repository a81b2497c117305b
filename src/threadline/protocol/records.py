"""What a :class:`~threadline.protocol.state.SessionState` remembers.

Each record has ``to_json()`` and ``from_json()``, for the index to store the
state with the events that changed it; ``from_json()`` trusts its input (the
store wrote it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .actors import Actor, Role
from .events import EventDraft
from .offsets import Offset
from .parts import PartsFold, parse_parts
from .payloads import Visibility

__all__ = [
    "ControlRequest",
    "OpenMessage",
    "OpenRun",
    "Participant",
    "end_message",
    "end_run",
    "server_event_id",
]


def server_event_id(event_type: str, key: str) -> str:
    """The id of a server event, derived from what it is about.

    Derived, not random: two nodes that decide the same server event (the
    end of message ``m`` …) give it the same id, so it is stored once.
    """
    digest = hashlib.sha256(f"{event_type}\x00{key}".encode()).hexdigest()
    return f"{event_type}:{digest[:32]}"


def _actor(obj: dict[str, Any]) -> Actor:
    return Actor(obj["id"], obj["role"], obj.get("name"), obj.get("device"))


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone who joined the session or published to it."""

    id: str
    role: Role
    name: str | None = None
    member: bool = False
    """Joined (``participant.joined``) and not left since."""

    staff: bool = False
    """The membership events are staff-only (a supervisor's)."""

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "member": self.member,
            "staff": self.staff,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Participant:
        """The record from :meth:`to_json` (trusted)."""
        return cls(obj["id"], obj["role"], obj["name"], obj["member"], obj["staff"])


@dataclass(slots=True)
class OpenMessage:
    """A streamed message between its ``message.start`` and its end."""

    message_id: str
    role: str
    """``user``, ``assistant`` or ``system``."""

    producer: Actor
    """Who started it; only they continue it."""

    visibility: Visibility
    run_id: str | None
    start_offset: Offset
    last_activity: str
    """The ``ts`` of its last event (for the dead-producer lease)."""

    next_seq: int = 0
    """The ``seq`` its next delta must carry."""

    fold: PartsFold = field(default_factory=PartsFold)
    """Its parts so far."""

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {
            "message_id": self.message_id,
            "role": self.role,
            "producer": self.producer.to_json(),
            "visibility": self.visibility,
            "run_id": self.run_id,
            "start_offset": str(self.start_offset),
            "last_activity": self.last_activity,
            "next_seq": self.next_seq,
            "parts": [part.to_json() for part in self.fold.parts()],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> OpenMessage:
        """The record from :meth:`to_json` (trusted)."""
        return cls(
            obj["message_id"],
            obj["role"],
            _actor(obj["producer"]),
            obj["visibility"],
            obj["run_id"],
            Offset.parse(obj["start_offset"]),
            obj["last_activity"],
            obj["next_seq"],
            PartsFold(parse_parts(obj["parts"])),
        )


@dataclass(slots=True)
class OpenRun:
    """A run between its ``run.start`` and its ``run.end``."""

    run_id: str
    owner: Actor
    """Who started it; only they end it."""

    visibility: Visibility
    start_offset: Offset
    last_activity: str
    """The ``ts`` of its last event, or of its messages' and tools' events."""

    in_reply_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {
            "run_id": self.run_id,
            "owner": self.owner.to_json(),
            "visibility": self.visibility,
            "start_offset": str(self.start_offset),
            "last_activity": self.last_activity,
            "in_reply_to": self.in_reply_to,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> OpenRun:
        """The record from :meth:`to_json` (trusted)."""
        return cls(
            obj["run_id"],
            _actor(obj["owner"]),
            obj["visibility"],
            Offset.parse(obj["start_offset"]),
            obj["last_activity"],
            obj["in_reply_to"],
        )


@dataclass(slots=True)
class ControlRequest:
    """A ``control.request``, pending until a ``control.accept``."""

    request_id: str
    by: str
    """The requester's participant id."""

    mode: str
    """``warm`` or ``cold``."""

    visibility: Visibility
    accepted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {
            "request_id": self.request_id,
            "by": self.by,
            "mode": self.mode,
            "visibility": self.visibility,
            "accepted": self.accepted,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ControlRequest:
        """The record from :meth:`to_json` (trusted)."""
        return cls(
            obj["request_id"],
            obj["by"],
            obj["mode"],
            obj["visibility"],
            obj["accepted"],
        )


def end_message(message: OpenMessage, status: str, reason: str) -> EventDraft:
    """The server's ``message.end`` for ``message``, visible as it is."""
    return EventDraft(
        "message.end",
        server_event_id("message.end", message.message_id),
        {"message_id": message.message_id, "status": status, "reason": reason},
        message.visibility,
    )


def end_run(run: OpenRun, status: str, reason: str) -> EventDraft:
    """The server's ``run.end`` for ``run``, visible as it is."""
    return EventDraft(
        "run.end",
        server_event_id("run.end", run.run_id),
        {"run_id": run.run_id, "status": status, "reason": reason},
        run.visibility,
    )
