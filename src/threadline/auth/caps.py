"""Caps: what a token's ``caps`` claim may hold and mean, as data.

PRODUCT.md § Rights gives each role default rights; a token's ``caps`` adjust
them: a cap may **narrow** a role's rights, and only ``service`` tokens may
**widen** them — except where the rights table itself makes a right
conditional on a cap for a role (``control.accept``: supervisor with ``barge``).

Nothing here enforces a right: the session layer does, with the table in
:mod:`threadline.protocol.rights`, from the verified :attr:`Claims.caps
<threadline.auth.Claims.caps>`. What this module decides is which tokens are
valid: a token carrying a widening cap its role is not sanctioned for (a
customer with ``barge``) is refused when minted and when verified. Caps this
version does not know are kept in ``Claims.caps`` but grant nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["CAPS", "Cap", "refused_caps"]


@dataclass(frozen=True, slots=True)
class Cap:
    """One cap: its name, what it means, and which roles may carry it."""

    name: str
    meaning: str
    """What holding it changes (enforced by the session layer)."""
    roles: frozenset[str] | None
    """Roles besides ``service`` that may carry it (a widening cap), or ``None``
    when any role may (a narrowing cap)."""


CAPS: Final[Mapping[str, Cap]] = {
    "barge": Cap(
        "barge",
        "accept a control request, taking the floor from the AI or another "
        "agent; the one way a supervisor may (agents and services always may)",
        frozenset({"supervisor", "agent"}),
    ),
}
"""Every cap this version knows. No narrowing cap is defined yet."""


def refused_caps(role: str, caps: Iterable[str]) -> list[str]:
    """The caps in ``caps`` that a ``role`` token may not carry, in order.

    Empty for ``service`` (the only role that may widen freely) and for caps
    this version does not know (they grant nothing).
    """
    if role == "service":
        return []
    return [
        cap
        for cap in caps
        if (spec := CAPS.get(cap)) is not None
        and spec.roles is not None
        and role not in spec.roles
    ]
