"""``threadline token``: minted tokens verify, with the claims the flags ask for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from threadline.auth import Claims, Keyset, verify_token
from threadline.auth.jwks import read_jwks_file
from threadline.cli import main

SECRET = "cli-test-secret-0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without THREADLINE_SECRET."""
    monkeypatch.delenv("THREADLINE_SECRET", raising=False)


def mint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``threadline token ARGS``: exit status, stdout (stripped), stderr."""
    code = main(["token", *args])
    out, err = capsys.readouterr()
    return code, out.strip(), err


def minted(capsys: pytest.CaptureFixture[str], *args: str) -> Claims:
    """Mint an HS256 token with the test secret and verify it."""
    code, token, err = mint(capsys, "--secret", SECRET, *args)
    assert code == 0, err
    return verify_token(token, Keyset(SECRET))


# HS256


def test_token_verifies_with_its_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """A token minted with --secret verifies with that secret, claims as asked."""
    claims = minted(
        capsys,
        *("--role", "agent", "--sub", "ag_7", "--tenant", "acme", "--name", "Sam"),
        *("--session", "vip:*", "--session", "order-1", "--cap", "barge"),
    )
    assert (claims.role, claims.sub, claims.tenant, claims.name) == (
        "agent",
        "ag_7",
        "acme",
        "Sam",
    )
    assert claims.sessions == ("vip:*", "order-1")
    assert claims.caps == {"barge"}


def test_token_takes_secret_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --secret, THREADLINE_SECRET signs the token."""
    monkeypatch.setenv("THREADLINE_SECRET", SECRET)
    code, token, _ = mint(capsys)
    assert code == 0
    assert verify_token(token, Keyset(SECRET)).role == "service"


def test_token_without_key_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a secret or a private key, the command exits 2 saying what to pass."""
    code, out, err = mint(capsys)
    assert code == 2 and out == ""
    assert "--secret" in err and "--private-key" in err


def test_token_ttl_sets_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    """--ttl sets the lifetime: ``exp`` is ``iat`` plus the duration."""
    claims = minted(capsys, "--ttl", "90s")
    assert claims.raw["exp"] - claims.raw["iat"] == 90


def test_stream_flags_set_stream_grants(capsys: pytest.CaptureFixture[str]) -> None:
    """--stream-read and --stream-write set the ``streams`` claim."""
    claims = minted(capsys, "--stream-read", "chat/*", "--stream-write", "chat/a")
    assert (claims.stream_read, claims.stream_write) == (("chat/*",), ("chat/a",))


def test_legacy_streams_flags_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    """The older --streams-read / --streams-write spellings are still accepted."""
    claims = minted(capsys, "--streams-read", "a/*", "--streams-write", "b/*")
    assert (claims.stream_read, claims.stream_write) == (("a/*",), ("b/*",))


def test_service_token_defaults_to_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A service token without grant flags reaches every session and stream."""
    claims = minted(capsys)
    assert claims.may_access_session("shop:order-1")
    assert claims.may_write_stream("any/stream")


def test_customer_token_defaults_to_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """A customer token without --session reaches no session and no stream."""
    code, token, err = mint(capsys, "--secret", SECRET, "--role", "customer")
    claims = verify_token(token, Keyset(SECRET))
    assert code == 0
    assert claims.sessions == () and claims.stream_read == ()
    assert "reaches no session" in err


# Customers and globs


@pytest.mark.parametrize("glob", ["order-*", "order-?", "order-[12]"])
def test_customer_glob_warns(capsys: pytest.CaptureFixture[str], glob: str) -> None:
    """A customer token with a session glob is minted with a warning on stderr."""
    code, token, err = mint(
        capsys, "--secret", SECRET, "--role", "customer", "--session", glob
    )
    assert code == 0 and token
    assert "warning" in err and glob in err


def test_customer_exact_session_does_not_warn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A customer token bound to exact session ids prints nothing on stderr."""
    code, _, err = mint(
        capsys, "--secret", SECRET, "--role", "customer", "--session", "order-1"
    )
    assert code == 0 and err == ""


def test_staff_glob_does_not_warn(capsys: pytest.CaptureFixture[str]) -> None:
    """Globs are normal for staff: an agent token with one prints no warning."""
    code, _, err = mint(
        capsys, "--secret", SECRET, "--role", "agent", "--session", "vip:*"
    )
    assert code == 0 and err == ""


# Refusals


def test_server_role_cannot_be_minted(capsys: pytest.CaptureFixture[str]) -> None:
    """``--role server`` is not a choice: the command exits 2."""
    with pytest.raises(SystemExit) as exited:
        main(["token", "--secret", SECRET, "--role", "server"])
    assert exited.value.code == 2


def test_reserved_subject_cannot_be_minted(capsys: pytest.CaptureFixture[str]) -> None:
    """``--sub threadline`` is refused with exit status 2 and nothing on stdout."""
    code, out, err = mint(capsys, "--secret", SECRET, "--sub", "threadline")
    assert code == 2 and out == ""
    assert "reserved" in err


def test_widening_cap_cannot_be_minted(capsys: pytest.CaptureFixture[str]) -> None:
    """A cap that would widen a non-service role is refused with exit status 2."""
    code, out, err = mint(capsys, "--secret", SECRET, "--role", "ai", "--cap", "barge")
    assert code == 2 and out == ""
    assert "barge" in err


# EdDSA and RS256 with a JWKS file


def write_key(
    tmp_path: Path, private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, kid: str
) -> tuple[Path, Path]:
    """Write ``private`` as PEM and its public half as a JWKS file; both paths."""
    pem = tmp_path / f"{kid}.pem"
    pem.write_bytes(
        private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    if isinstance(private, ed25519.Ed25519PrivateKey):
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk = {**jwk, "kid": kid}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return pem, jwks


def test_eddsa_token_round_trips_through_jwks_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An EdDSA token minted from a PEM key verifies with the key's JWKS file."""
    pem, jwks = write_key(tmp_path, ed25519.Ed25519PrivateKey.generate(), "ed-1")
    code, token, err = mint(
        capsys, "--private-key", str(pem), "--kid", "ed-1", "--alg", "EdDSA"
    )
    assert code == 0, err
    claims = verify_token(token, Keyset(keys=read_jwks_file(jwks)))
    assert claims.role == "service"


def test_rs256_token_round_trips_through_jwks_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An RS256 token minted from a PEM key (alg from the key) verifies via JWKS."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem, jwks = write_key(tmp_path, private, "rsa-1")
    code, token, err = mint(capsys, "--private-key", str(pem), "--kid", "rsa-1")
    assert code == 0, err
    assert verify_token(token, Keyset(keys=read_jwks_file(jwks))).sub == "dev"


def test_private_key_needs_kid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--private-key without --kid exits 2: verifiers find keys by kid."""
    pem, _ = write_key(tmp_path, ed25519.Ed25519PrivateKey.generate(), "ed-1")
    code, out, err = mint(capsys, "--private-key", str(pem))
    assert code == 2 and out == ""
    assert "--kid" in err


def test_alg_must_fit_private_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--alg RS256 with an Ed25519 key exits 2: the algorithm is the key's."""
    pem, _ = write_key(tmp_path, ed25519.Ed25519PrivateKey.generate(), "ed-1")
    code, out, err = mint(
        capsys, "--private-key", str(pem), "--kid", "ed-1", "--alg", "RS256"
    )
    assert code == 2 and out == ""
    assert "EdDSA" in err


def test_unreadable_private_key_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A --private-key that is not a PEM private key exits 2 naming the file."""
    path = tmp_path / "junk.pem"
    path.write_text("not a key")
    code, out, err = mint(capsys, "--private-key", str(path), "--kid", "k")
    assert code == 2 and out == ""
    assert "junk.pem" in err


def test_role_choices_are_the_token_roles() -> None:
    """The CLI's --role choices are exactly the roles a token may carry."""
    from threadline.auth import ROLES
    from threadline.cli import ROLE_NAMES

    assert set(ROLE_NAMES) == ROLES
