"""Tokens: create and verify bearer JWTs, and match their grants. No I/O.

A token's claims: ``sub`` (participant id), ``tenant`` (default ``default``),
``role``, ``exp``, and for the Durable Streams surface a ``streams`` claim::

    {"streams": {"read": ["chat/*", "public/**"], "write": ["chat/*"]}}

Globs match stream names: ``*`` matches within one ``/``-separated segment,
``**`` matches across segments, ``?`` one character.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import jwt

from .exceptions import ThreadlineError

__all__ = [
    "LEEWAY_SECONDS",
    "AuthError",
    "Claims",
    "Keyset",
    "create_token",
    "glob_match",
    "verify_token",
]

LEEWAY_SECONDS: Final = 30
ROLES: Final = frozenset({"customer", "ai", "agent", "supervisor", "service"})


class AuthError(ThreadlineError):
    """A missing, malformed, forged or expired token (401), or a denied right (403)."""

    code = "unauthorized"

    def __init__(
        self, message: str, code: str = "unauthorized", status: int = 401
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Keyset:
    """How tokens are verified: a shared HS256 secret, algorithms pinned."""

    secret: str
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str | None = None
    audience: str | None = None


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims Threadline uses."""

    sub: str
    tenant: str = "default"
    role: str = "service"
    exp: float | None = None
    name: str | None = None
    stream_read: tuple[str, ...] = ()
    stream_write: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def may_read_stream(self, name: str) -> bool:
        """Whether the ``streams`` claim grants reading ``name``."""
        return any(glob_match(g, name) for g in self.stream_read)

    def may_write_stream(self, name: str) -> bool:
        """Whether the ``streams`` claim grants writing ``name``."""
        return any(glob_match(g, name) for g in self.stream_write)


@lru_cache(maxsize=1024)
def _glob_regex(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_match(glob: str, name: str) -> bool:
    """Match a grant glob against a name (``*`` stays within a ``/`` segment)."""
    return _glob_regex(glob).fullmatch(name) is not None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def verify_token(token: str, keyset: Keyset) -> Claims:
    """Verify a bearer token's signature, expiry (30 s leeway), issuer and audience.

    Raises:
        AuthError: the token is malformed, forged, expired or lacks ``sub``.
    """
    options = {"require": ["exp", "sub"], "verify_aud": keyset.audience is not None}
    try:
        raw = jwt.decode(
            token,
            keyset.secret,
            algorithms=list(keyset.algorithms),
            issuer=keyset.issuer,
            audience=keyset.audience,
            leeway=LEEWAY_SECONDS,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired", "token_expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}", "invalid_token") from exc
    role = raw.get("role", "service")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}", "invalid_token")
    streams = raw.get("streams") or {}
    if not isinstance(streams, Mapping):
        raise AuthError("the streams claim must be an object", "invalid_token")
    return Claims(
        sub=str(raw["sub"]),
        tenant=str(raw.get("tenant") or "default"),
        role=role,
        exp=raw.get("exp"),
        name=raw.get("name"),
        stream_read=_strings(streams.get("read")),
        stream_write=_strings(streams.get("write")),
        raw=raw,
    )


def create_token(
    secret: str,
    *,
    sub: str,
    role: str = "service",
    tenant: str = "default",
    ttl_seconds: int = 3600,
    streams: Mapping[str, Iterable[str]] | None = None,
    now: float | None = None,
    **extra: Any,
) -> str:
    """Mint an HS256 token (for development, tests and the ``token`` command)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "tenant": tenant,
        "iat": int(issued),
        "exp": int(issued) + ttl_seconds,
        **extra,
    }
    if streams is not None:
        claims["streams"] = {k: list(v) for k, v in streams.items()}
    return jwt.encode(claims, secret, algorithm="HS256")
