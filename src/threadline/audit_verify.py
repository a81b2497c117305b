"""``threadline audit verify``: check an audit export offline.

Reads an export (``GET /v1/sessions/{id}/audit``), checks every link of its
hash chain and, given the server's public key, the signature of its head
(:func:`threadline.protocol.audit_export.verify_export`). Exits 0 when it
verifies, 1 naming the first broken link, 2 when it cannot run (a missing
file, an unreadable key).

The key may be a PEM public key, a JWK, or a JWKS such as ``GET
/v1/audit/key`` answers (the key whose ``kid`` the head names is used).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .protocol.audit_export import AuditHead, key_id, verify_export

__all__ = ["add_parser", "load_public_keys", "run"]

EXIT_BROKEN = 1
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    """Add ``audit verify`` to the ``threadline`` subcommands."""
    audit = commands.add_parser("audit", help="audit exports")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="check an audit export's hash chain and signed head",
        description="Check an audit export (GET /v1/sessions/{id}/audit): every "
        "link of its hash chain, and with --key the signature of its head. Exits "
        "1 naming the first broken link.",
    )
    verify.add_argument("file", help="the export (JSON Lines; - for stdin)")
    verify.add_argument(
        "--key",
        metavar="FILE",
        help="the server's public key: PEM, JWK, or the JWKS of GET /v1/audit/key",
    )
    verify.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="FILE",
        help="a head signed earlier (GET …/audit/head, saved): the export must "
        "agree with it where it covers its offset (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``audit verify``; returns the exit status."""
    name = "threadline audit verify"
    try:
        keys = load_public_keys(Path(args.key)) if args.key else None
        heads = [AuditHead.parse(json.loads(Path(p).read_bytes())) for p in args.head]
        check = None if keys is None else _checker(keys)
        if args.file == "-":
            report = verify_export(sys.stdin.buffer, check_signature=check, heads=heads)
        else:
            with open(args.file, "rb") as lines:
                report = verify_export(lines, check_signature=check, heads=heads)
    except ImportError:  # pragma: no cover - depends on the install
        print(
            f"{name} --key needs cryptography: pip install 'threadline[server]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (OSError, ValueError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    head = report.head
    if report.broken is not None:
        print(f"{name}: {args.file}: {report.broken}", file=sys.stderr)
        return EXIT_BROKEN
    assert head is not None
    print(
        f"ok: session {head.session} ({head.view} view): {report.events} events "
        f"({report.redacted} redacted) up to {head.offset}, head signed by "
        f"{head.key_id} at {head.ts}"
    )
    if check is None:
        print(f"{name}: signature not checked (pass --key)", file=sys.stderr)
    return 0


def load_public_keys(path: Path) -> dict[str, bytes]:
    """The Ed25519 public keys in a PEM, JWK or JWKS file, by key id.

    Raises:
        ValueError: the file holds no Ed25519 public key.
        OSError: it cannot be read.
    """
    raw = path.read_bytes()
    if raw.lstrip().startswith(b"-----BEGIN"):
        public = _pem_public_key(raw)
        return {key_id(public): public}
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{path} is neither PEM nor JSON") from exc
    found = dict(_jwks(document))
    if not found:
        raise ValueError(f"{path} holds no Ed25519 public key")
    return found


def _jwks(document: object) -> Iterator[tuple[str, bytes]]:
    jwks = document.get("keys") if isinstance(document, dict) else None
    for jwk in jwks if isinstance(jwks, list) else [document]:
        if not isinstance(jwk, dict) or (jwk.get("kty"), jwk.get("crv")) != (
            "OKP",
            "Ed25519",
        ):
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        public = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        yield key_id(public), public


def _pem_public_key(raw: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
        load_pem_public_key,
    )

    key: Any
    if b"PRIVATE KEY" in raw:
        key = load_pem_private_key(raw, password=None)
        if isinstance(key, Ed25519PrivateKey):
            key = key.public_key()
    else:
        key = load_pem_public_key(raw)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the key is not an Ed25519 key")
    public: bytes = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return public


def _checker(keys: dict[str, bytes]) -> Callable[[AuditHead], bool]:
    """Checks a head's signature with the key it names (False for another key)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def check(head: AuditHead) -> bool:
        public = keys.get(head.key_id)
        if public is None:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(
                head.signature_bytes, head.signing_input()
            )
        except InvalidSignature:
            return False
        return True

    return check
