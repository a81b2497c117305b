"""``verify_token`` and ``create_token``: every way a token is accepted or refused."""

from __future__ import annotations

import base64
import hmac
import json
import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.auth.conftest import SECRET, SigningKey
from threadline.auth import (
    LEEWAY_SECONDS,
    AuthError,
    Keyset,
    UnknownKeyId,
    VerificationKey,
    create_token,
    verify_token,
)

HS = Keyset(SECRET)


def payload(**overrides: Any) -> dict[str, Any]:
    """Valid claims for a token that expires in ten minutes."""
    claims: dict[str, Any] = {
        "sub": "cust_42",
        "role": "customer",
        "exp": int(time.time()) + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def hs256(**overrides: Any) -> str:
    """An HS256 token over :func:`payload`, signed with the test secret."""
    return jwt.encode(payload(**overrides), SECRET, algorithm="HS256")


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public(key: SigningKey) -> VerificationKey:
    return VerificationKey(key.kid, key.alg, key.private.public_key())


@pytest.fixture(scope="module")
def keyset(ed_key: SigningKey, rsa_key: SigningKey) -> Keyset:
    """The test secret, an Ed25519 key and an RSA key."""
    return Keyset(SECRET, (public(ed_key), public(rsa_key)))


def refused(token: str, keyset: Keyset, code: str = "invalid_token") -> AuthError:
    with pytest.raises(AuthError) as caught:
        verify_token(token, keyset)
    assert caught.value.code == code
    assert caught.value.status == 401
    return caught.value


# Accepted


def test_hs256_token_verifies_with_the_secret() -> None:
    """A token minted with the secret verifies and yields its claims."""
    token = create_token(SECRET, sub="cust_42", role="customer", name="Dana")
    claims = verify_token(token, HS)
    assert (claims.sub, claims.role, claims.tenant, claims.name) == (
        "cust_42",
        "customer",
        "default",
        "Dana",
    )


def test_eddsa_token_verifies_with_its_kid(keyset: Keyset, ed_key: SigningKey) -> None:
    """An EdDSA token whose kid names an Ed25519 key verifies."""
    assert verify_token(ed_key.sign(payload()), keyset).sub == "cust_42"


def test_rs256_token_verifies_with_its_kid(keyset: Keyset, rsa_key: SigningKey) -> None:
    """An RS256 token whose kid names an RSA key verifies."""
    assert verify_token(rsa_key.sign(payload()), keyset).sub == "cust_42"


def test_token_expired_within_leeway_is_accepted() -> None:
    """A token expired less than the 30 s leeway ago is still accepted."""
    token = hs256(exp=int(time.time()) - (LEEWAY_SECONDS - 10))
    assert verify_token(token, HS).sub == "cust_42"


def test_create_token_signs_eddsa_with_kid(keyset: Keyset, ed_key: SigningKey) -> None:
    """``create_token`` with a private key and kid mints a verifiable EdDSA token."""
    token = create_token(ed_key.private, sub="svc", algorithm="EdDSA", kid=ed_key.kid)
    assert jwt.get_unverified_header(token)["kid"] == ed_key.kid
    assert verify_token(token, keyset).role == "service"


# Forged


def test_token_signed_with_another_secret_is_refused() -> None:
    """A token signed with another secret is refused."""
    token = jwt.encode(payload(), "another-secret-0123456789abcdef012345", "HS256")
    refused(token, HS)


def test_token_with_edited_payload_is_refused() -> None:
    """Editing a signed token's payload (here: its role) breaks its signature."""
    header, body, signature = hs256().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["role"] = "service"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    refused(f"{header}.{edited.decode()}.{signature}", HS)


def test_token_signed_by_another_ed25519_key_is_refused(
    keyset: Keyset, ed_key_2: SigningKey
) -> None:
    """An EdDSA token signed by a key other than the one its kid names is refused."""
    impostor = SigningKey("ed-1", "EdDSA", ed_key_2.private)
    refused(impostor.sign(payload()), keyset)


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "e30.e30.", "Bearer x"])
def test_malformed_token_is_refused(token: str) -> None:
    """Anything that is not a compact JWS is refused as ``invalid_token``."""
    refused(token, HS)


# Expiry


def test_token_expired_beyond_leeway_is_refused() -> None:
    """A token expired longer ago than the leeway is ``token_expired``."""
    token = hs256(exp=int(time.time()) - (LEEWAY_SECONDS + 10))
    refused(token, HS, "token_expired")


def test_token_without_exp_is_refused() -> None:
    """A token must carry ``exp``: tokens that never expire are refused."""
    refused(hs256(exp=None), HS)


def test_token_not_yet_valid_beyond_leeway_is_refused() -> None:
    """A token whose ``nbf`` is further ahead than the leeway is refused."""
    refused(hs256(nbf=int(time.time()) + LEEWAY_SECONDS + 60), HS)


# Algorithms pinned per key


def test_alg_none_is_refused() -> None:
    """An unsigned (``alg: none``) token is refused."""
    token = jwt.encode(payload(), None, algorithm="none")  # type: ignore[arg-type]
    refused(token, HS)


def test_alg_none_naming_a_kid_is_refused(keyset: Keyset) -> None:
    """An unsigned token is refused even when its kid names a known key."""
    token = jwt.encode(
        payload(),
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": "ed-1"},
    )
    refused(token, keyset)


def test_other_hmac_algorithm_is_refused() -> None:
    """HS512 with the right secret is still refused: only HS256 is accepted."""
    secret = SECRET * 2
    refused(jwt.encode(payload(), secret, algorithm="HS512"), Keyset(secret))


def test_eddsa_token_naming_rsa_key_is_refused(
    keyset: Keyset, ed_key: SigningKey
) -> None:
    """A key verifies only its own algorithm: EdDSA under an RSA kid is refused."""
    token = ed_key.sign(payload(), kid="rsa-1")
    error = refused(token, keyset)
    assert "RS256" in str(error)


def test_hs256_token_naming_public_key_is_refused(
    keyset: Keyset, rsa_key: SigningKey
) -> None:
    """HS256 signed with a public key's PEM (algorithm confusion) is refused."""
    pem = rsa_key.private.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    signing_input = f"{b64(json.dumps(header))}.{b64(json.dumps(payload()))}"
    mac = hmac.digest(pem, signing_input.encode(), "sha256")  # PyJWT won't do this
    error = refused(f"{signing_input}.{b64(mac)}", keyset)
    assert "verifies RS256, not HS256" in str(error)


def test_asymmetric_token_without_kid_is_refused(
    keyset: Keyset, ed_key: SigningKey
) -> None:
    """An EdDSA token without kid is refused: the secret verifies only HS256."""
    token = jwt.encode(payload(), ed_key.private, algorithm="EdDSA")
    refused(token, keyset)


def test_hs256_token_is_refused_without_a_secret(ed_key: SigningKey) -> None:
    """A keyset without a secret refuses every HS256 token."""
    refused(hs256(), Keyset(keys=(public(ed_key),)))


def test_unknown_kid_raises_unknown_key_id(
    keyset: Keyset, ed_key_2: SigningKey
) -> None:
    """A kid no key has raises ``UnknownKeyId`` (a 401) carrying the kid."""
    with pytest.raises(UnknownKeyId) as caught:
        verify_token(ed_key_2.sign(payload()), keyset)
    assert caught.value.kid == "ed-2"
    assert (caught.value.code, caught.value.status) == ("invalid_token", 401)


# Issuer and audience


def test_issuer_is_required_when_configured() -> None:
    """With an issuer set, a token without ``iss`` is refused."""
    refused(hs256(), Keyset(SECRET, issuer="https://idp.example"))


def test_issuer_mismatch_is_refused() -> None:
    """With an issuer set, a token from another issuer is refused."""
    keyset = Keyset(SECRET, issuer="https://idp.example")
    refused(hs256(iss="https://evil.example"), keyset)


def test_matching_issuer_is_accepted() -> None:
    """With an issuer set, a token with that ``iss`` is accepted."""
    keyset = Keyset(SECRET, issuer="https://idp.example")
    assert verify_token(hs256(iss="https://idp.example"), keyset).sub == "cust_42"


def test_audience_mismatch_is_refused() -> None:
    """With an audience set, a token for another audience is refused."""
    keyset = Keyset(SECRET, audience="threadline")
    refused(hs256(aud="billing"), keyset)


def test_audience_is_required_when_configured() -> None:
    """With an audience set, a token without ``aud`` is refused."""
    refused(hs256(), Keyset(SECRET, audience="threadline"))


def test_audience_in_list_is_accepted() -> None:
    """With an audience set, a token whose ``aud`` list contains it is accepted."""
    keyset = Keyset(SECRET, audience="threadline")
    assert verify_token(hs256(aud=["billing", "threadline"]), keyset)


# Reserved identities and claim rules


def test_server_role_is_refused() -> None:
    """A correctly signed token with the reserved ``server`` role is refused."""
    error = refused(hs256(role="server"), HS)
    assert "reserved" in str(error)


def test_threadline_subject_is_refused() -> None:
    """A correctly signed token whose ``sub`` is ``threadline`` is refused."""
    error = refused(hs256(sub="threadline", role="service"), HS)
    assert "reserved" in str(error)


def test_token_without_role_is_refused() -> None:
    """A token without ``role`` is refused, never taken for a service."""
    refused(hs256(role=None), HS)


def test_unknown_role_is_refused() -> None:
    """A role outside the five is refused."""
    refused(hs256(role="admin"), HS)


@pytest.mark.parametrize(
    "claim",
    [
        {"sessions": "order-1"},
        {"sessions": ["order-1", 7]},
        {"streams": ["chat/*"]},
        {"streams": {"read": "chat/*"}},
        {"caps": "barge"},
        {"tenant": "a/b"},
        {"tenant": ""},
        {"sub": ""},
        {"name": 42},
    ],
)
def test_malformed_claim_is_refused(claim: dict[str, Any]) -> None:
    """A claim of the wrong type or shape refuses the whole token."""
    refused(hs256(**claim), HS)


def test_tenant_defaults_to_default() -> None:
    """A token without ``tenant`` acts in the ``default`` tenant."""
    assert verify_token(hs256(tenant=None), HS).tenant == "default"


def test_customer_barge_cap_is_refused() -> None:
    """``barge`` widens a customer's rights, which only service tokens may: refused."""
    error = refused(hs256(caps=["barge"]), HS)
    assert "barge" in str(error)


def test_supervisor_barge_cap_is_accepted() -> None:
    """A supervisor token may carry ``barge``."""
    claims = verify_token(hs256(role="supervisor", caps=["barge"]), HS)
    assert claims.caps == {"barge"}


def test_service_token_may_carry_any_cap() -> None:
    """A service token may carry caps no other role could."""
    assert verify_token(hs256(role="service", caps=["barge", "x.any"]), HS)


def test_unknown_cap_is_ignored() -> None:
    """A cap this version does not know is kept but grants nothing."""
    claims = verify_token(hs256(caps=["x.future"]), HS)
    assert "x.future" in claims.caps


# Minting


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": "server"},
        {"role": "admin"},
        {"sub": "threadline"},
        {"role": "customer", "caps": ["barge"]},
        {"tenant": "a/b"},
    ],
)
def test_create_token_refuses_what_verify_refuses(kwargs: dict[str, Any]) -> None:
    """``create_token`` raises ``ValueError`` for claims verification would refuse."""
    kwargs = {"sub": "svc", **kwargs}
    with pytest.raises(ValueError):
        create_token(SECRET, **kwargs)


def test_create_token_refuses_asymmetric_without_kid(ed_key: SigningKey) -> None:
    """An EdDSA token needs a kid, so ``create_token`` refuses one without."""
    with pytest.raises(ValueError, match="kid"):
        create_token(ed_key.private, sub="svc", algorithm="EdDSA")


def test_create_token_refuses_kid_on_hs256() -> None:
    """An HS256 token takes no kid (the secret is the key without one)."""
    with pytest.raises(ValueError, match="kid"):
        create_token(SECRET, sub="svc", kid="k")


def test_create_token_sets_expiry_from_ttl() -> None:
    """``exp`` is the issue time plus ``ttl_seconds``."""
    token = create_token(SECRET, sub="svc", ttl_seconds=90, now=1_000_000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 90


# Keysets


def test_keyset_refuses_two_keys_with_one_kid(ed_key: SigningKey) -> None:
    """Two keys with the same kid make an ambiguous keyset: refused."""
    with pytest.raises(ValueError, match="kid"):
        Keyset(keys=(public(ed_key), public(ed_key)))


def test_verification_key_refuses_key_of_other_algorithm(rsa_key: SigningKey) -> None:
    """A key is pinned to one algorithm: an RSA key cannot be declared EdDSA."""
    with pytest.raises(ValueError):
        VerificationKey("k", "EdDSA", rsa_key.private.public_key())


# The verified-token cache


def test_repeated_verification_is_remembered() -> None:
    """Verifying the same token with the same keyset again returns the same claims."""
    token = create_token(SECRET, sub="svc")
    assert verify_token(token, HS) is verify_token(token, HS)


def test_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered token is refused once its expiry plus the leeway has passed."""
    token = create_token(SECRET, sub="svc", ttl_seconds=60)
    verify_token(token, HS)
    later = time.time() + 60 + LEEWAY_SECONDS + 1
    clock = SimpleNamespace(time=lambda: later)
    monkeypatch.setattr("threadline.auth.tokens.time", clock)
    refused(token, HS, "token_expired")


def test_remembered_verdict_is_not_reused_for_another_keyset() -> None:
    """A token verified under one keyset is checked afresh under another."""
    token = create_token(SECRET, sub="svc")
    verify_token(token, HS)
    refused(token, Keyset("a-different-secret-0123456789abcdef0123"))


def test_non_string_kid_is_refused(keyset: Keyset) -> None:
    """A ``kid`` header that is not a string is refused."""
    header = {"alg": "HS256", "typ": "JWT", "kid": 7}
    signing_input = f"{b64(json.dumps(header))}.{b64(json.dumps(payload()))}"
    mac = hmac.digest(SECRET.encode(), signing_input.encode(), "sha256")
    refused(f"{signing_input}.{b64(mac)}", keyset)


def test_create_token_refuses_unknown_algorithm() -> None:
    """``create_token`` signs only with the algorithms verification accepts."""
    with pytest.raises(ValueError, match="algorithm"):
        create_token(SECRET, sub="svc", algorithm="HS512")


def test_keyset_refuses_empty_secret() -> None:
    """An empty secret would sign forgeable tokens: refused."""
    with pytest.raises(ValueError):
        Keyset("")
