"""``parse_jwks``: which keys of a JWKS document are used, skipped or refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.auth.conftest import SigningKey, jwks
from threadline.auth import parse_jwks


def test_jwks_keys_keep_kid_and_pinned_alg(
    ed_key: SigningKey, rsa_key: SigningKey
) -> None:
    """Each usable key comes out with its kid and the one algorithm it verifies."""
    keys = parse_jwks(jwks(ed_key, rsa_key))
    assert [(k.kid, k.alg) for k in keys] == [("ed-1", "EdDSA"), ("rsa-1", "RS256")]


def test_jwks_alg_follows_key_type_when_absent(ed_key: SigningKey) -> None:
    """Without ``alg``, an OKP Ed25519 key verifies EdDSA."""
    jwk = {k: v for k, v in ed_key.jwk().items() if k not in ("alg", "use")}
    assert parse_jwks({"keys": [jwk]})[0].alg == "EdDSA"


def test_jwks_parses_json_bytes(ed_key: SigningKey) -> None:
    """A JWKS may be given as its JSON bytes."""
    assert parse_jwks(json.dumps(jwks(ed_key)).encode())[0].kid == "ed-1"


def ec_jwk() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": "ec-1"}


@pytest.mark.parametrize(
    "change",
    [
        {"use": "enc"},
        {"alg": "RS512"},
        {"kid": None},
        {"kid": ""},
    ],
)
def test_jwks_skips_keys_it_cannot_use(
    rsa_key: SigningKey, change: dict[str, Any]
) -> None:
    """Encryption keys, other algorithms and keys without kid are skipped."""
    jwk = {k: v for k, v in {**rsa_key.jwk(), **change}.items() if v is not None}
    assert parse_jwks({"keys": [jwk]}) == ()


def test_jwks_skips_ec_and_symmetric_keys() -> None:
    """EC keys and symmetric ``oct`` keys are skipped: a JWKS never holds secrets."""
    oct_key = {"kty": "oct", "kid": "hs", "k": "c2VjcmV0", "alg": "HS256"}
    assert parse_jwks({"keys": [ec_jwk(), oct_key]}) == ()


def test_jwks_refuses_private_material(ed_key: SigningKey) -> None:
    """A key carrying its private part (``d``) is a leak: the JWKS is refused."""
    with pytest.raises(ValueError, match="private"):
        parse_jwks({"keys": [{**ed_key.jwk(), "d": "AAAA"}]})


def test_jwks_refuses_short_rsa_key() -> None:
    """An RSA key under 2048 bits is refused."""
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = {**RSAAlgorithm.to_jwk(short.public_key(), as_dict=True), "kid": "weak"}
    with pytest.raises(ValueError, match="2048"):
        parse_jwks({"keys": [jwk]})


def test_jwks_refuses_malformed_key(ed_key: SigningKey) -> None:
    """A usable-looking key with broken material is refused, not skipped."""
    with pytest.raises(ValueError, match="malformed"):
        parse_jwks({"keys": [{**ed_key.jwk(), "x": "!!"}]})


def test_jwks_refuses_duplicate_kid(ed_key: SigningKey) -> None:
    """Two keys with one kid are ambiguous: the JWKS is refused."""
    with pytest.raises(ValueError, match="kid"):
        parse_jwks(jwks(ed_key, ed_key))


@pytest.mark.parametrize("document", [b"not json", b"[]", b'{"keys": {}}', b"{}"])
def test_jwks_refuses_non_jwks(document: bytes) -> None:
    """A document that is not an object with a ``keys`` list is refused."""
    with pytest.raises(ValueError):
        parse_jwks(document)


def test_jwks_skips_ed448_keys() -> None:
    """An OKP key on a curve other than Ed25519 is skipped."""
    ed448 = {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AAAA"}
    assert parse_jwks({"keys": [ed448]}) == ()


def test_jwks_refuses_non_object_key() -> None:
    """A ``keys`` entry that is not an object makes the document invalid."""
    with pytest.raises(ValueError):
        parse_jwks({"keys": ["not a key"]})
