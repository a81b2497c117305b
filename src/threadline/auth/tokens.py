"""Verify and mint bearer JWTs. Pure: no I/O, the keys are given.

Verification picks the key from the token's header, then lets PyJWT check the
signature with that key's one algorithm:

* no ``kid``: the server's HS256 secret, and only for ``alg: HS256``;
* a ``kid``: the public key with that ``kid``, and only for its own ``alg``
  (:class:`UnknownKeyId` when no key has it, so a caller may refresh a JWKS).

Any other algorithm (``none``, ``HS512``, ``ES256``, …) is refused before a
key is chosen, so no token can pick how it is checked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt
from jwt.types import Options

from .claims import Claims, parse_claims
from .errors import AuthError, UnknownKeyId
from .keys import ALGORITHMS, ASYMMETRIC_ALGORITHMS, Keyset

__all__ = ["LEEWAY_SECONDS", "VERIFIED_CACHE_SIZE", "create_token", "verify_token"]

LEEWAY_SECONDS: Final = 30
"""Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
VERIFIED_CACHE_SIZE: Final = 1024
"""Tokens whose verification is remembered (per process, oldest evicted first)."""

# Clients send the same token on every request, and a full check costs ~100 µs
# (mostly PyJWT's base64 validation). A hit needs the very same keyset object, so
# a JWKS refresh or another configuration never reuses a verdict, and re-checks
# the expiry, the one thing that changes with time.
_verified: dict[str, tuple[Keyset, Claims]] = {}

_REQUIRED: Final = ["exp", "sub", "role"]


def verify_token(token: str, keyset: Keyset) -> Claims:
    """Verify a bearer token and return its claims.

    Checks, in order: the header's algorithm and key (pinned per key), the
    signature, ``exp`` / ``nbf`` / ``iat`` with :data:`LEEWAY_SECONDS` of
    leeway, ``iss`` and ``aud`` when the keyset sets them, then every claim
    rule of :func:`threadline.auth.parse_claims`.

    Raises:
        UnknownKeyId: no key has the token's ``kid`` (401 ``invalid_token``).
        AuthError: ``token_expired`` beyond the leeway; ``invalid_token`` for
            anything else (malformed, forged, wrong algorithm, wrong issuer or
            audience, missing or reserved claims).
    """
    hit = _verified.get(token)
    if hit is not None and hit[0] is keyset:
        exp = hit[1].exp
        if exp is not None and time.time() - LEEWAY_SECONDS < exp:
            return hit[1]
        _verified.pop(token, None)
        raise AuthError("token expired", "token_expired")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid(str(exc)) from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise _invalid(f"algorithm {alg!r} is refused")
    key: Any
    if kid is None:
        if alg != "HS256":
            raise _invalid(f"an {alg} token needs a kid")
        if keyset.secret is None:
            raise _invalid("HS256 tokens are not accepted (no secret is set)")
        key = keyset.secret
    else:
        found = keyset.key(kid)
        if found is None:
            raise UnknownKeyId(kid)
        if found.alg != alg:
            raise _invalid(f"key {kid!r} verifies {found.alg}, not {alg}")
        key = found.key
    options: Options = {
        "require": _REQUIRED,
        "verify_aud": keyset.audience is not None,
    }
    try:
        raw = jwt.decode(
            token,
            key,
            algorithms=[alg],
            issuer=keyset.issuer,
            audience=keyset.audience,
            leeway=LEEWAY_SECONDS,
            options=options,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired", "token_expired") from exc
    except jwt.PyJWTError as exc:
        raise _invalid(str(exc)) from exc
    claims = parse_claims(raw)
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.pop(next(iter(_verified)), None)
    _verified[token] = (keyset, claims)
    return claims


def create_token(
    key: Any,
    *,
    sub: str,
    role: str = "service",
    tenant: str = "default",
    ttl_seconds: float = 3600,
    streams: Mapping[str, Iterable[str]] | None = None,
    sessions: Iterable[str] | None = None,
    caps: Iterable[str] | None = None,
    name: str | None = None,
    algorithm: str = "HS256",
    kid: str | None = None,
    now: float | None = None,
    **extra: Any,
) -> str:
    """Mint a token (for development, tests and the ``token`` command).

    Args:
        key: the HS256 secret, or for ``EdDSA`` / ``RS256`` the private key (a
            PEM string or bytes, or a ``cryptography`` private key).
        sub: participant id.
        role: one of :data:`threadline.auth.ROLES`.
        tenant: the tenant claim.
        ttl_seconds: lifetime; ``exp`` is ``now + ttl_seconds``.
        streams: the ``streams`` claim, ``{"read": [...], "write": [...]}``.
        sessions: session globs.
        caps: the ``caps`` claim.
        name: display name.
        algorithm: ``HS256`` (default), ``EdDSA`` or ``RS256``.
        kid: the key id, required for ``EdDSA`` / ``RS256`` (and only for them).
        now: the issue time (seconds since the epoch), default the clock.
        extra: more claims, e.g. ``iss``, ``aud``.

    Raises:
        ValueError: a claim :func:`verify_token` would refuse (an unknown or
            reserved role, the reserved subject, caps that widen a non-service
            role, …), or a ``kid`` / algorithm mismatch.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}")
    if (algorithm in ASYMMETRIC_ALGORITHMS) != (kid is not None):
        raise ValueError("EdDSA and RS256 tokens need a kid; HS256 tokens take none")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "tenant": tenant,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
    }
    if name is not None:
        claims["name"] = name
    if streams is not None:
        claims["streams"] = {k: list(v) for k, v in streams.items()}
    if sessions is not None:
        claims["sessions"] = list(sessions)
    if caps is not None:
        claims["caps"] = list(caps)
    claims.update(extra)
    try:
        parse_claims(claims)
    except AuthError as exc:
        raise ValueError(str(exc).removeprefix("invalid token: ")) from exc
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _invalid(message: str) -> AuthError:
    return AuthError(f"invalid token: {message}", "invalid_token")
