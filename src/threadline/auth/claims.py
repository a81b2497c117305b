"""The claims Threadline reads from a verified token, and their rules.

========== ========================================================== =========
claim      meaning                                                     default
========== ========================================================== =========
``sub``    participant id (the event ``actor.id``); not ``threadline`` required
``tenant`` isolation boundary; ``[A-Za-z0-9._:-]{1,128}``              ``default``
``role``   ``customer``, ``ai``, ``agent``, ``supervisor``, ``service`` required
``sessions`` session globs the token reaches (:mod:`.globs`)          none
``streams`` ``{"read": [globs], "write": [globs]}`` for ``/v1/stream`` none
``caps``   caps that narrow or widen the role's rights (:mod:`.caps`)   none
``exp``    expiry, seconds since the epoch (30 s leeway)                required
``name``   display name (the event ``actor.name``)                      none
========== ========================================================== =========

A claim of the wrong type makes the whole token invalid: a grant is never
guessed from a malformed value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from .caps import refused_caps
from .errors import AuthError
from .globs import glob_match, session_glob_match

__all__ = [
    "MAX_SUB",
    "RESERVED_ROLE",
    "RESERVED_SUBJECT",
    "ROLES",
    "STAFF_ROLES",
    "TENANT_PATTERN",
    "Claims",
    "parse_claims",
]

ROLES: Final = frozenset({"customer", "ai", "agent", "supervisor", "service"})
"""Every role a token may carry."""
STAFF_ROLES: Final = frozenset({"ai", "agent", "supervisor", "service"})
"""Roles that read ``staff`` events."""
RESERVED_ROLE: Final = "server"
"""The server's own actor role: no token may carry it."""
RESERVED_SUBJECT: Final = "threadline"
"""The server's own actor id: no token may carry it as ``sub``."""

TENANT_PATTERN: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""What a ``tenant`` claim may hold (it is part of every storage key)."""
MAX_SUB: Final = 256
"""Longest ``sub`` and ``name`` accepted."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims Threadline uses.

    Build it with :func:`parse_claims` (or :func:`threadline.auth.verify_token`),
    which applies every rule; the constructor only refuses reserved identities.
    """

    sub: str
    """Participant id."""
    tenant: str = "default"
    """Tenant every key of this token's requests lives in."""
    role: str = "service"
    """One of :data:`threadline.auth.ROLES`."""
    exp: float | None = None
    """Expiry (seconds since the epoch)."""
    name: str | None = None
    """Display name, if the token has one."""
    stream_read: tuple[str, ...] = ()
    """Stream globs the token may read."""
    stream_write: tuple[str, ...] = ()
    """Stream globs the token may write."""
    sessions: tuple[str, ...] = ()
    """Session globs the token reaches."""
    caps: frozenset[str] = frozenset()
    """The ``caps`` claim as given (unknown caps included; they grant nothing)."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Every claim of the token, unparsed (read-only: verified claims are shared)."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, not {self.role!r}")
        if self.sub == RESERVED_SUBJECT:
            raise ValueError(f"sub {RESERVED_SUBJECT!r} is reserved for the server")

    @property
    def is_staff(self) -> bool:
        """Whether the role is staff (ai, agent, supervisor, service)."""
        return self.role in STAFF_ROLES

    def has_cap(self, cap: str) -> bool:
        """Whether the token carries ``cap`` (see :mod:`threadline.auth.caps`)."""
        return cap in self.caps

    def may_read_stream(self, name: str) -> bool:
        """Whether the ``streams`` claim grants reading ``name``."""
        return any(glob_match(g, name) for g in self.stream_read)

    def may_write_stream(self, name: str) -> bool:
        """Whether the ``streams`` claim grants writing ``name``."""
        return any(glob_match(g, name) for g in self.stream_write)

    def may_access_session(self, session_id: str) -> bool:
        """Whether a ``sessions`` glob matches ``session_id``.

        Necessary, not sufficient: a customer reaches a session only if this
        holds **and** the session's customer is this token's ``sub``, which the
        session layer checks against the stored session (a customer creating a
        session becomes its customer). What the token may do there is the
        session layer's rights table, given :attr:`role` and :attr:`caps`.
        """
        return any(session_glob_match(g, session_id) for g in self.sessions)


def parse_claims(raw: Mapping[str, Any]) -> Claims:
    """Check a token's decoded payload and build its :class:`Claims`.

    The signature, ``exp``, ``iss`` and ``aud`` are checked before this, by
    :func:`threadline.auth.verify_token`; this checks everything else.

    Raises:
        AuthError: ``invalid_token``: a claim is missing, of the wrong type or
            reserved, or ``caps`` would widen a non-service role.
    """
    sub = raw.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB or _CONTROL.search(sub):
        raise _invalid(f"sub must be 1 to {MAX_SUB} printable characters")
    if sub == RESERVED_SUBJECT:
        raise _invalid(f"sub {RESERVED_SUBJECT!r} is reserved for the server")
    role = raw.get("role")
    if role == RESERVED_ROLE:
        raise _invalid(f"role {RESERVED_ROLE!r} is reserved for the server")
    if role not in ROLES:
        raise _invalid(f"role must be one of {', '.join(sorted(ROLES))}")
    tenant = raw.get("tenant", "default")
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise _invalid(f"tenant must match {TENANT_PATTERN.pattern}")
    name = raw.get("name")
    if name is not None and (
        not isinstance(name, str) or len(name) > MAX_SUB or _CONTROL.search(name)
    ):
        raise _invalid(f"name must be up to {MAX_SUB} printable characters")
    streams = raw.get("streams", {})
    if not isinstance(streams, Mapping):
        raise _invalid("streams must be an object with read and write lists")
    caps = _strings(raw, "caps")
    refused = refused_caps(role, caps)
    if refused:
        raise _invalid(f"a {role} token may not carry caps {refused}")
    exp = raw.get("exp")
    return Claims(
        sub=sub,
        tenant=tenant,
        role=role,
        exp=float(exp) if isinstance(exp, int | float) else None,
        name=name,
        stream_read=_strings(streams, "read", "streams.read"),
        stream_write=_strings(streams, "write", "streams.write"),
        sessions=_strings(raw, "sessions"),
        caps=frozenset(caps),
        raw=MappingProxyType(dict(raw)),
    )


def _strings(
    claims: Mapping[str, Any], key: str, label: str | None = None
) -> tuple[str, ...]:
    value = claims.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{label or key} must be a list of strings")
    return tuple(value)


def _invalid(message: str) -> AuthError:
    return AuthError(f"invalid token: {message}", "invalid_token")
