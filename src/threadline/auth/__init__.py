"""Identity: verify and mint bearer JWTs, and read their grants. No I/O.

A token says who the participant is (``sub``, ``name``, ``role``, ``tenant``),
what it reaches (``sessions`` and ``streams`` globs) and how its role's rights
are adjusted (``caps``). The modules:

* :mod:`.tokens`: :func:`verify_token` and :func:`create_token`;
* :mod:`.keys`: :class:`Keyset` (the HS256 secret and public keys by ``kid``,
  each pinned to one algorithm) and :func:`parse_jwks`;
* :mod:`.claims`: :class:`Claims` and the claim rules;
* :mod:`.caps`: what ``caps`` mean and which roles may carry them, as data;
* :mod:`.globs`: the glob dialects of ``streams`` and ``sessions``;
* :mod:`.jwks`: reading JWKS files and URLs — the only module with I/O, and
  not imported here.

See ``docs/topics/auth.md``.
"""

from __future__ import annotations

from .caps import CAPS, Cap
from .claims import ROLES, STAFF_ROLES, Claims, parse_claims
from .errors import AuthError, UnknownKeyId
from .globs import glob_match, is_glob, session_glob_match
from .keys import ALGORITHMS, Keyset, VerificationKey, parse_jwks
from .tokens import LEEWAY_SECONDS, create_token, verify_token

__all__ = [
    "ALGORITHMS",
    "CAPS",
    "LEEWAY_SECONDS",
    "ROLES",
    "STAFF_ROLES",
    "AuthError",
    "Cap",
    "Claims",
    "Keyset",
    "UnknownKeyId",
    "VerificationKey",
    "create_token",
    "glob_match",
    "is_glob",
    "parse_claims",
    "parse_jwks",
    "session_glob_match",
    "verify_token",
]
