"""``threadline audit verify``: exit 0 on a good export, 1 naming the break."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from threadline.cli import main
from threadline.protocol.actors import Actor
from threadline.protocol.events import EventDraft
from threadline.server.audit import AuditSigner, export_lines, signed_head
from threadline.server.sessions import SessionManager
from threadline.storage.memory import MemoryLogStore

SID = "order-1"


@pytest.fixture
async def sessions() -> AsyncIterator[SessionManager]:
    store = MemoryLogStore()
    await store.start()
    manager = SessionManager(store)
    await manager.create("acme", SID, customer="cust")
    customer = Actor("cust", "customer")
    for index in range(3):
        parts = [{"type": "text", "text": f"message {index}"}]
        data = {"message_id": f"m{index}", "role": "user", "parts": parts}
        await manager.publish(
            "acme", SID, customer, [EventDraft("message", f"c{index}", data)]
        )
    try:
        yield manager
    finally:
        await store.stop()


@pytest.fixture
def signer() -> AuditSigner:
    return AuditSigner.ephemeral()


async def write_export(
    sessions: SessionManager, signer: AuditSigner, path: Path
) -> Path:
    lines = await export_lines(sessions, signer, "acme", SID, "staff")
    path.write_bytes(b"".join([line async for line in lines]))
    return path


def key_files(signer: AuditSigner, tmp_path: Path) -> dict[str, Path]:
    """The public key as PEM, JWK and JWKS files, and the private key's PEM."""
    private = signer._key
    files = {
        "pem": tmp_path / "key.pem",
        "jwk": tmp_path / "key.jwk",
        "jwks": tmp_path / "jwks.json",
        "private": tmp_path / "private.pem",
    }
    files["pem"].write_bytes(
        private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    files["jwk"].write_text(json.dumps(signer.jwk))
    files["jwks"].write_text(json.dumps({"keys": [{"kty": "RSA"}, signer.jwk]}))
    files["private"].write_bytes(
        private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    return files


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("form", ["pem", "jwk", "jwks", "private"])
async def test_good_export_verifies_with_the_key(
    sessions, signer, tmp_path, capsys, form
) -> None:
    """Exit 0 and a summary, with the key as PEM, JWK, JWKS or private PEM."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    key = key_files(signer, tmp_path)[form]
    code, out, err = verify(capsys, str(path), "--key", str(key))
    assert code == 0, err
    assert out.startswith(f"ok: session {SID} (staff view): 3 events (0 redacted)")
    assert signer.key_id in out and err == ""


async def test_without_a_key_the_signature_is_not_checked(
    sessions, signer, tmp_path, capsys
) -> None:
    """Exit 0 on a sound chain, saying the signature was not checked."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    code, out, err = verify(capsys, str(path))
    assert code == 0 and out.startswith("ok:")
    assert "signature not checked" in err


async def test_a_changed_byte_exits_1_naming_the_line(
    sessions, signer, tmp_path, capsys
) -> None:
    """A byte changed in an event: exit 1, the line and offset named on stderr."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    offset = json.loads(lines[2])["offset"]
    lines[2] = lines[2].replace(b"message 1", b"message 7")
    path.write_bytes(b"".join(lines))
    code, out, err = verify(capsys, str(path))
    assert code == 1 and out == ""
    assert f"line 3, offset {offset}: data does not match its data_sha256" in err


async def test_another_key_exits_1_on_the_anchor(sessions, signer, tmp_path, capsys):
    """A head signed by another key than the one given: exit 1 at line 1."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    other = key_files(AuditSigner.ephemeral(), tmp_path)["jwk"]
    code, _, err = verify(capsys, str(path), "--key", str(other))
    assert code == 1 and "line 1: the head's signature does not verify" in err


async def test_earlier_heads_are_checked(sessions, signer, tmp_path, capsys) -> None:
    """--head FILE: a head saved earlier must agree with the export."""
    saved = await signed_head(sessions, signer, "acme", SID, "staff")
    head_file = tmp_path / "head.json"
    head_file.write_text(json.dumps(saved.to_json()))
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    key = key_files(signer, tmp_path)["pem"]
    args = (str(path), "--key", str(key), "--head", str(head_file))
    assert verify(capsys, *args)[0] == 0
    forged = saved.to_json() | {"hash": "d" * 64}
    head_file.write_text(json.dumps(forged))
    code, _, err = verify(capsys, *args)
    assert code == 1 and "signature" in err


async def test_export_on_stdin(sessions, signer, tmp_path, capsys, monkeypatch) -> None:
    """FILE - reads the export from standard input."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    code, out, _ = verify(capsys, "-")
    assert code == 0 and out.startswith("ok:")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", ""),
        (b"{not json", "neither PEM nor JSON"),
        (b'{"keys": [{"kty": "RSA"}]}', "no Ed25519 public key"),
        (b'{"kty": "OKP", "crv": "Ed25519"}', "no Ed25519 public key"),
    ],
)
async def test_an_unusable_key_exits_2(
    sessions, signer, tmp_path, capsys, key, message
) -> None:
    """A key file with no Ed25519 public key: exit 2, said on stderr."""
    path = await write_export(sessions, signer, tmp_path / "export.jsonl")
    key_file = tmp_path / "bad.key"
    key_file.write_bytes(key)
    code, _, err = verify(capsys, str(path), "--key", str(key_file))
    assert code == 2 and message in err


def test_a_missing_file_exits_2(tmp_path, capsys) -> None:
    """An export that cannot be read: exit 2."""
    code, _, err = verify(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 2 and "threadline audit verify:" in err


def test_an_rsa_key_is_refused(tmp_path, capsys) -> None:
    """A PEM key of another algorithm: exit 2, not Ed25519."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    export = tmp_path / "export.jsonl"
    export.write_text("")
    code, _, err = verify(capsys, str(export), "--key", str(pem))
    assert code == 2 and "not an Ed25519 key" in err


def test_serve_refuses_an_unreadable_audit_key(tmp_path, capsys) -> None:
    """threadline serve --audit-key with no key there exits 2 before serving."""
    missing = tmp_path / "missing.pem"
    code = main(
        ["serve", "--store", "memory://", "--no-auth", "--audit-key", str(missing)]
    )
    _, err = capsys.readouterr()
    assert code == 2 and "audit key" in err
