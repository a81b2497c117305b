"""Actors: who published an event, as the server verified it.

An event's ``actor`` comes from the publisher's verified token (``sub``,
``role``, ``name``) and its connection (``device``); whatever a payload claims
is ignored. The server's own events carry the reserved actor
``{"id": "threadline", "role": "server"}``, which no token can claim: an actor
with that id or that role is the server or is invalid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast

from ._fields import check_keys, expect_choice, expect_name, expect_object, fail

__all__ = [
    "ROLES",
    "SERVER",
    "SERVER_ID",
    "STAFF_ROLES",
    "Actor",
    "Role",
]

Role: TypeAlias = Literal["customer", "ai", "agent", "supervisor", "service", "server"]
"""A participant's role, or ``server`` for the server's own events."""

ROLES: Final = ("customer", "ai", "agent", "supervisor", "service")
"""The roles a token may carry."""

STAFF_ROLES: Final = frozenset({"ai", "agent", "supervisor", "service"})
"""Roles that read ``staff`` events."""

SERVER_ID: Final = "threadline"
"""The participant id of the server actor."""

_DEVICE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Actor:
    """A verified identity, and the device it publishes from."""

    id: str
    """The participant id: the token's ``sub``."""

    role: Role
    """The token's role (``server`` only for :data:`SERVER`)."""

    name: str | None = None
    """A display name, from the token."""

    device: str | None = None
    """The connection's device id (``[A-Za-z0-9_-]{1,64}``)."""

    @property
    def is_server(self) -> bool:
        """Whether this is the server actor."""
        return self.role == "server"

    @property
    def is_staff(self) -> bool:
        """Whether this actor reads ``staff`` events (the server does)."""
        return self.role != "customer"

    @classmethod
    def parse(cls, value: object, path: str = "actor") -> Actor:
        """Parse an actor from its JSON object.

        Raises:
            InvalidEvent: a missing, unknown or mistyped field, an unknown
                role, or a claim on the server's identity.
        """
        obj = expect_object(value, path)
        check_keys(obj, path, ("id", "role"), ("name", "device"))
        name = obj.get("name")
        device = obj.get("device")
        actor = cls(
            expect_name(obj["id"], f"{path}.id"),
            cast(Role, expect_choice(obj["role"], f"{path}.role", _ALL_ROLES)),
            None if name is None else expect_name(name, f"{path}.name"),
            None if device is None else expect_name(device, f"{path}.device"),
        )
        actor.check(path)
        return actor

    def check(self, path: str = "actor") -> None:
        """Check the fields of an actor built in code.

        Raises:
            InvalidEvent: an empty or overlong id or name, an unknown role, a
                malformed device, or a claim on the server's identity.
        """
        expect_name(self.id, f"{path}.id")
        expect_choice(self.role, f"{path}.role", _ALL_ROLES)
        if self.name is not None:
            expect_name(self.name, f"{path}.name")
        if self.device is not None and not _DEVICE.match(self.device):
            fail("must match [A-Za-z0-9_-]{1,64}", f"{path}.device")
        if (self.id == SERVER_ID) != (self.role == "server"):
            fail(f"only the server is {SERVER_ID!r} with role 'server'", path)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        obj: dict[str, Any] = {"id": self.id, "role": self.role}
        if self.name is not None:
            obj["name"] = self.name
        if self.device is not None:
            obj["device"] = self.device
        return obj


_ALL_ROLES: Final = (*ROLES, "server")

SERVER: Final = Actor(SERVER_ID, "server")
"""The reserved actor of the server's own events."""
