"""Key material for the auth tests: generated once per session, never on disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

SECRET = "auth-test-secret-0123456789abcdef0123"


@dataclass(frozen=True)
class SigningKey:
    """A private key, the kid and algorithm it signs with, and its public JWK."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWK, with ``kid``, ``alg`` and ``use``."""
        algorithm = OKPAlgorithm if self.alg == "EdDSA" else RSAAlgorithm
        jwk: dict[str, Any] = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A token over ``claims`` signed by this key, ``kid`` in its header."""
        headers = {"kid": self.kid, **header}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS document holding the public halves of ``keys``."""
    return {"keys": [key.jwk() for key in keys]}


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    """An Ed25519 key, kid ``ed-1``."""
    return SigningKey("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="session")
def ed_key_2() -> SigningKey:
    """Another Ed25519 key, kid ``ed-2`` (a rotation's new key)."""
    return SigningKey("ed-2", "EdDSA", ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    """A 2048-bit RSA key, kid ``rsa-1``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey("rsa-1", "RS256", private)
