"""Verification keys: the server's HS256 secret and public keys by ``kid``.

Each key verifies exactly one algorithm (pinned). The secret is the key
without a ``kid``: it verifies HS256 tokens that carry no ``kid``, and nothing
else. Public keys come from a JWKS document (RFC 7517) and verify ``EdDSA``
(Ed25519) or ``RS256`` tokens whose ``kid`` names them. No I/O here:
:mod:`threadline.auth.jwks` reads JWKS files and URLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC_ALGORITHMS",
    "MIN_RSA_BITS",
    "Keyset",
    "PublicKey",
    "VerificationKey",
    "parse_jwks",
]

ASYMMETRIC_ALGORITHMS: Final = frozenset({"EdDSA", "RS256"})
"""Algorithms of keys identified by ``kid``."""
ALGORITHMS: Final = frozenset({"HS256"}) | ASYMMETRIC_ALGORITHMS
"""Every algorithm a token may use; anything else (``none`` included) is refused."""
MIN_RSA_BITS: Final = 2048
"""Smallest RSA modulus accepted in a JWKS."""

PublicKey = Ed25519PublicKey | RSAPublicKey
"""The public key types a :class:`VerificationKey` holds."""

_KEY_ALGORITHM: Final = {"OKP": "EdDSA", "RSA": "RS256"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key, its ``kid`` and the one algorithm it verifies."""

    kid: str
    alg: str
    key: PublicKey = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kid:
            raise ValueError("kid must not be empty")
        if self.alg not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"alg must be EdDSA or RS256, not {self.alg!r}")
        expected = Ed25519PublicKey if self.alg == "EdDSA" else RSAPublicKey
        if not isinstance(self.key, expected):
            raise ValueError(f"key {self.kid!r} does not fit alg {self.alg}")


@dataclass(frozen=True, slots=True)
class Keyset:
    """How tokens are verified: an HS256 secret and public keys by ``kid``.

    Either may be absent. ``issuer`` and ``audience``, when set, apply to every
    token. Immutable: a JWKS refresh builds a new keyset with :meth:`with_keys`.

    Raises:
        ValueError: an empty secret, or two keys with one ``kid``.
    """

    secret: str | None = field(default=None, repr=False)
    """The HS256 secret (tokens without ``kid``), or ``None`` to refuse HS256."""
    keys: tuple[VerificationKey, ...] = ()
    """Public keys; tokens name one with their ``kid`` header."""
    issuer: str | None = None
    """When set, every token's ``iss`` must equal it."""
    audience: str | None = None
    """When set, every token's ``aud`` must be or contain it."""
    _by_kid: Mapping[str, VerificationKey] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.secret is not None and not self.secret:
            raise ValueError("the secret must not be empty")
        by_kid = {key.kid: key for key in self.keys}
        if len(by_kid) != len(self.keys):
            raise ValueError("two keys share a kid")
        object.__setattr__(self, "_by_kid", by_kid)

    def key(self, kid: str) -> VerificationKey | None:
        """The public key named ``kid``, if any."""
        return self._by_kid.get(kid)

    def with_keys(self, keys: Iterable[VerificationKey]) -> Keyset:
        """This keyset with its public keys replaced by ``keys``."""
        return replace(self, keys=tuple(keys))


def parse_jwks(
    document: bytes | str | Mapping[str, Any],
) -> tuple[VerificationKey, ...]:
    """The signing keys of a JWKS document that Threadline can use.

    Keeps each key with a ``kid``, ``kty`` ``OKP`` (``crv`` ``Ed25519``) or
    ``RSA`` (at least :data:`MIN_RSA_BITS`), and ``use`` ``sig`` or absent. Its
    algorithm is its ``alg`` member, which must then be ``EdDSA`` / ``RS256``,
    or else follows from ``kty``. Other keys (encryption keys, EC and
    symmetric ``oct`` keys, other algorithms) are skipped: a published key set
    may serve other consumers too, and a symmetric secret never belongs in one.

    Raises:
        ValueError: the document is not a JWKS; a usable key is malformed,
            too short or carries private material (``d``); two keys share a kid.
    """
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise ValueError(f"JWKS is not JSON: {exc}") from exc
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError('a JWKS is an object with a "keys" list')
    keys: list[VerificationKey] = []
    for entry in entries:
        key = _parse_jwk(entry)
        if key is not None:
            keys.append(key)
    if len({key.kid for key in keys}) != len(keys):
        raise ValueError("two JWKS keys share a kid")
    return tuple(keys)


def _parse_jwk(entry: object) -> VerificationKey | None:
    if not isinstance(entry, Mapping):
        raise ValueError("a JWKS key must be an object")
    kid, kty, use = entry.get("kid"), entry.get("kty"), entry.get("use", "sig")
    if not isinstance(kid, str) or not kid or use != "sig" or kty not in _KEY_ALGORITHM:
        return None
    if kty == "OKP" and entry.get("crv") != "Ed25519":
        return None
    alg = entry.get("alg", _KEY_ALGORITHM[kty])
    if alg != _KEY_ALGORITHM[kty]:
        return None
    if "d" in entry:
        raise ValueError(f"JWKS key {kid!r} holds private key material")
    try:
        public = jwt.PyJWK(dict(entry), algorithm=alg).key
    except jwt.PyJWTError as exc:
        raise ValueError(f"JWKS key {kid!r} is malformed: {exc}") from exc
    if isinstance(public, RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        raise ValueError(f"JWKS key {kid!r} is shorter than {MIN_RSA_BITS} bits")
    return VerificationKey(kid, alg, public)
