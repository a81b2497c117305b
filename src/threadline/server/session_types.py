"""The values :class:`~threadline.server.sessions.SessionManager` hands out
(a session's document, a publish's result) and the log keys of a session's
two views (see :mod:`threadline.server.sessions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.actors import Role
from ..protocol.offsets import Offset
from ..storage.base import LogKey
from .session_writes import ALL_PREFIX, FULL_PREFIX

__all__ = ["Published", "SessionInfo", "all_key", "full_key"]


def full_key(tenant: str, session_id: str) -> LogKey:
    """The staff view's log."""
    return LogKey(tenant, FULL_PREFIX + session_id)


def all_key(tenant: str, session_id: str) -> LogKey:
    """The customer view's log."""
    return LogKey(tenant, ALL_PREFIX + session_id)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session's document: who it belongs to and its routing metadata."""

    id: str
    customer: str | None
    metadata: dict[str, Any]
    created: str
    controller_role: Role | None = "ai"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "metadata": self.metadata,
            "created": self.created,
            "controller_role": self.controller_role,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SessionInfo:
        return cls(
            obj["id"],
            obj["customer"],
            obj["metadata"],
            obj["created"],
            obj["controller_role"],
        )


@dataclass(frozen=True, slots=True)
class Published:
    """One published draft: where it went, in the publisher's view."""

    id: str
    offset: Offset
    duplicate: bool = False
    """A retry: the event was stored before; ``offset`` is the original."""
