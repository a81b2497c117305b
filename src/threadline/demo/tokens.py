"""The demo's identities: a secret per run, and a token per sign-in.

Only ``threadline demo`` uses this: anyone who reaches the demo's sign-in
route gets a token for the name they type. A real deployment mints tokens in
its own identity provider (see ``docs/topics/auth.md``).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..auth import create_token

__all__ = [
    "AI_ID",
    "AI_NAME",
    "CUSTOMER_SESSIONS",
    "SIGN_IN_ROLES",
    "TOKEN_TTL",
    "DemoTokens",
    "SignIn",
    "SignInRole",
    "participant_id",
]

SignInRole = Literal["customer", "agent", "supervisor"]
"""The roles the demo's sign-in page hands out (never ``ai`` or ``service``)."""

SIGN_IN_ROLES: Final[tuple[SignInRole, ...]] = ("customer", "agent", "supervisor")

TOKEN_TTL: Final = 12 * 3600.0
"""Seconds a demo token lives; the pages sign in again on every load."""

AI_ID: Final = "demo-ai"
"""The demo AI's participant id (``control.release {to}`` names it)."""
AI_NAME: Final = "Ada"
"""The demo AI's display name."""

_PREFIXES: Final[dict[str, str]] = {
    "customer": "cust",
    "agent": "agent",
    "supervisor": "sup",
}
_NAME_LIMIT: Final = 40
_NOT_SLUG: Final = re.compile(r"[^a-z0-9]+")
CUSTOMER_SESSIONS: Final = ("order-*",)
"""What a demo customer's token reaches: sessions named ``order-…`` whose
customer they are (the server checks both)."""


@dataclass(frozen=True, slots=True)
class SignIn:
    """A demo sign-in: the token and who it is for."""

    token: str
    sub: str
    role: SignInRole
    name: str

    def to_json(self) -> dict[str, Any]:
        """The sign-in route's answer."""
        return {
            "token": self.token,
            "sub": self.sub,
            "role": self.role,
            "name": self.name,
            "ai": {"id": AI_ID, "name": AI_NAME},
            "expires_in": int(TOKEN_TTL),
        }


def participant_id(role: str, name: str) -> str:
    """The participant id of ``name`` in ``role``: the same name is the same
    identity (``Dana`` and ``dana`` are both ``cust-dana``).

    Raises:
        ValueError: ``role`` is not a sign-in role, or ``name`` has no letter
            or digit.
    """
    prefix = _PREFIXES.get(role)
    if prefix is None:
        raise ValueError(f"role must be one of {', '.join(SIGN_IN_ROLES)}")
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", folded.lower()).strip("-")[:_NAME_LIMIT].strip("-")
    if not slug:
        raise ValueError("a name needs at least one letter or digit")
    return f"{prefix}-{slug}"


class DemoTokens:
    """Mints the demo's tokens with one HS256 secret.

    Args:
        secret: The secret the server verifies with; a fresh random one if
            omitted (tokens of an earlier run stop working, which is fine:
            the pages sign in again by name).
    """

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        """The HS256 secret (give it to the server's ``Config``)."""

    def sign_in(self, role: str, name: str) -> SignIn:
        """A token for ``name`` in ``role``.

        Customers reach their own ``order-…`` sessions; agents and
        supervisors every session, and supervisors may barge in (cap
        ``barge``).

        Raises:
            ValueError: an unknown role, or an empty or unusable name.
        """
        if not isinstance(name, str) or role not in SIGN_IN_ROLES:
            raise ValueError(f"role must be one of {', '.join(SIGN_IN_ROLES)}")
        display = " ".join(name.split())[:_NAME_LIMIT]
        sub = participant_id(role, display)
        sessions: tuple[str, ...] = CUSTOMER_SESSIONS if role == "customer" else ("**",)
        caps = ["barge"] if role == "supervisor" else None
        token = create_token(
            self.secret,
            sub=sub,
            role=role,
            name=display,
            sessions=list(sessions),
            caps=caps,
            ttl_seconds=TOKEN_TTL,
        )
        return SignIn(token, sub, role, display)

    def ai_token(self) -> str:
        """The demo AI's token: role ``ai``, every session."""
        return create_token(
            self.secret,
            sub=AI_ID,
            role="ai",
            name=AI_NAME,
            sessions=["**"],
            ttl_seconds=TOKEN_TTL,
        )
