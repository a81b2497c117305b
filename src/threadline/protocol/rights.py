"""Who may publish what: the default rights table of PRODUCT.md.

==========================  ========  ==========  ==========  ==========  =======
event                       customer  ai          agent       supervisor  service
==========================  ========  ==========  ==========  ==========  =======
user-side message*          own       —           —           —           ✓
assistant-side message*     —         controller  controller  controller  ✓
system message*             —         ✓           ✓           ✓           ✓
``run.cancel``              own       ✓           ✓           ✓           ✓
``control.request``         own       controller  controller  —           ✓
``control.accept``          —         —           ✓           granted     ✓
``control.release``         —         controller  controller  controller  ✓
``note``                    —         ✓           ✓           ✓           ✓
``run.start``/``run.end``   —         ✓           ✓           —           ✓
``tool.call``/``result``    —         ✓           ✓           —           ✓
``session.*``               —         —           —           —           ✓
``redaction``               —         —           —           ✓           ✓
``participant.*``           —         —           —           —           —
``queue.*``, feeds         —         —           —           —           —
``x.<name>``                own       ✓           ✓           ✓           ✓
==========================  ========  ==========  ==========  ==========  =======

*own*: only in the session whose customer the customer is; a customer's
``control.request`` is always ``warm`` and every customer event is visible to
all. *controller*: only while holding the floor (otherwise ``409
not_in_control``, not 403: the right comes back with the floor). Only the
server publishes ``participant.*``, ``queue.*`` and ``session.created``
(and may publish anything). The table is data;
:class:`~threadline.protocol.state.SessionState` applies it.

*granted*: only with the token cap that grants it (:func:`granting_cap`:
``barge`` for a supervisor's ``control.accept``). :mod:`threadline.auth`
decides which caps a token may carry; this table decides what they allow.
No cap narrows a role's rights yet.
"""

from __future__ import annotations

import enum
from typing import Final

from .actors import ROLES

__all__ = [
    "Permission",
    "granting_cap",
    "publish_permission",
]


class Permission(enum.Enum):
    """Whether a role may publish one kind of event, and on what condition."""

    NEVER = "never"
    """Refused: ``403 forbidden``."""

    ALWAYS = "always"
    """Allowed."""

    OWN = "own"
    """Allowed to a customer in their own session."""

    CONTROLLER = "controller"
    """Allowed while holding the floor."""

    GRANTED = "granted"
    """Allowed with the token cap that grants it (:func:`granting_cap`)."""


_N, _A, _O, _C, _G = (
    Permission.NEVER,
    Permission.ALWAYS,
    Permission.OWN,
    Permission.CONTROLLER,
    Permission.GRANTED,
)

# kind -> permissions of (customer, ai, agent, supervisor, service)
_TABLE: Final[dict[str, tuple[Permission, ...]]] = {
    "message:user": (_O, _N, _N, _N, _A),
    "message:assistant": (_N, _C, _C, _C, _A),
    "message:system": (_N, _A, _A, _A, _A),
    "run.cancel": (_O, _A, _A, _A, _A),
    "control.request": (_O, _C, _C, _N, _A),
    "control.accept": (_N, _N, _A, _G, _A),
    "control.release": (_N, _C, _C, _C, _A),
    "note": (_N, _A, _A, _A, _A),
    "run": (_N, _A, _A, _N, _A),
    "tool": (_N, _A, _A, _N, _A),
    "session.updated": (_N, _N, _N, _N, _A),
    "session.closed": (_N, _N, _N, _N, _A),
    "redaction": (_N, _N, _N, _A, _A),
    "participant": (_N, _N, _N, _N, _N),
    "queue": (_N, _N, _N, _N, _N),
    "x": (_O, _A, _A, _A, _A),
}

# kind -> the cap that grants a GRANTED permission
_CAPS: Final = {"control.accept": "barge"}

_KINDS: Final = {
    "run.start": "run",
    "run.end": "run",
    "tool.call": "tool",
    "tool.result": "tool",
    "participant.joined": "participant",
    "participant.left": "participant",
    "queue.added": "queue",
    "queue.removed": "queue",
    "session.created": "queue",
}


def publish_permission(
    role: str, event_type: str, message_role: str = "user"
) -> Permission:
    """The default permission of a participant ``role`` to publish ``event_type``.

    Args:
        role: A token role (not ``server``: the server may publish anything).
        event_type: A known type, or an application type ``x.<name>``.
        message_role: For ``message*`` types, the message's role (``user``,
            ``assistant`` or ``system``).

    Raises:
        ValueError: ``role`` is not a token role.
    """
    if role not in ROLES:
        raise ValueError(f"not a token role: {role!r}")
    return _TABLE[_kind(event_type, message_role)][ROLES.index(role)]


def granting_cap(event_type: str) -> str | None:
    """The token cap that turns a *granted* permission for ``event_type`` on.

    ``barge`` for ``control.accept``; ``None`` for every other type.
    """
    return _CAPS.get(event_type)


def _kind(event_type: str, message_role: str) -> str:
    if event_type.startswith("message"):
        return f"message:{message_role}"
    if event_type.startswith("x."):
        return "x"
    return _KINDS.get(event_type, event_type)
