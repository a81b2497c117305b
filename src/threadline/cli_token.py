"""``threadline token``: mint a token (HS256, or EdDSA/RS256 with a private key).

PyJWT and cryptography are imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .cli_args import duration

__all__ = ["ROLE_NAMES", "add_parser", "run"]

ROLE_NAMES = ("customer", "ai", "agent", "supervisor", "service")
"""``threadline.auth.ROLES``, spelled out: the CLI imports auth (PyJWT) lazily."""


def add_parser(commands: Any) -> None:
    """Add ``token`` to the ``threadline`` subcommands."""
    token = commands.add_parser(
        "token",
        help="mint a token",
        description="Mint a token: HS256 with --secret (or THREADLINE_SECRET), or "
        "EdDSA/RS256 with --private-key and --kid. Prints it on stdout.",
    )
    token.add_argument("--secret", help="HS256 secret (default $THREADLINE_SECRET)")
    token.add_argument(
        "--private-key", metavar="PEM", help="PEM file of an Ed25519 or RSA private key"
    )
    token.add_argument("--kid", help="key id of --private-key, as in the JWKS")
    token.add_argument(
        "--alg",
        choices=["EdDSA", "RS256"],
        help="algorithm of --private-key (default: from the key)",
    )
    token.add_argument("--sub", default="dev", help="participant id (default dev)")
    token.add_argument(
        "--role", default="service", choices=sorted(ROLE_NAMES), help="default service"
    )
    token.add_argument("--tenant", default="default")
    token.add_argument("--name", help="display name")
    token.add_argument(
        "--session",
        action="append",
        dest="sessions",
        metavar="GLOB",
        help="session id or glob the token reaches (repeatable; default: all "
        "sessions for staff, none for a customer)",
    )
    token.add_argument(
        "--stream-read",
        "--streams-read",
        action="append",
        dest="stream_read",
        metavar="GLOB",
        help="stream glob the token may read (repeatable)",
    )
    token.add_argument(
        "--stream-write",
        "--streams-write",
        action="append",
        dest="stream_write",
        metavar="GLOB",
        help="stream glob the token may write (repeatable; without any --stream-* "
        "flag a service token gets every stream, other roles none)",
    )
    token.add_argument(
        "--cap", action="append", dest="caps", metavar="CAP", help="repeatable"
    )
    token.add_argument(
        "--ttl",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="lifetime (default 1h)",
    )
    token.add_argument("--issuer", help="iss claim")
    token.add_argument("--audience", help="aud claim")


def run(args: argparse.Namespace) -> int:
    """Mint a token and print it; returns the exit status."""
    from .auth import create_token, is_glob

    def fail(message: str) -> int:
        print(f"threadline token: {message}", file=sys.stderr)
        return 2

    key: Any
    if args.private_key:
        if args.secret:
            return fail("give --secret or --private-key, not both")
        if not args.kid:
            return fail("--private-key needs --kid, the key's id in the JWKS")
        try:
            key, algorithm = _private_key(args.private_key, args.alg)
        except ValueError as exc:
            return fail(str(exc))
    else:
        key = args.secret or os.environ.get("THREADLINE_SECRET")
        if not key:
            return fail("--secret, THREADLINE_SECRET or --private-key is required")
        if args.kid or args.alg:
            return fail("--kid and --alg go with --private-key (HS256 takes neither)")
        algorithm = "HS256"
    staff = args.role != "customer"
    if args.stream_read is None and args.stream_write is None:
        everything = ["**"] if args.role == "service" else []
        streams = {"read": everything, "write": everything}
    else:
        streams = {"read": args.stream_read or [], "write": args.stream_write or []}
    sessions = args.sessions if args.sessions is not None else ["**"] if staff else []
    extra = {k: v for k, v in (("iss", args.issuer), ("aud", args.audience)) if v}
    try:
        token = create_token(
            key,
            sub=args.sub,
            role=args.role,
            tenant=args.tenant,
            name=args.name,
            ttl_seconds=args.ttl,
            streams=streams,
            sessions=sessions,
            caps=args.caps,
            algorithm=algorithm,
            kid=args.kid,
            **extra,
        )
    except ValueError as exc:
        return fail(str(exc))
    if not staff:
        if not sessions:
            print(
                "threadline token: note: this customer token reaches no session "
                "(add --session ID)",
                file=sys.stderr,
            )
        for pattern in filter(is_glob, sessions):
            print(
                f"threadline token: warning: customer token with session glob "
                f"{pattern!r}; a customer should be bound to exact session ids",
                file=sys.stderr,
            )
    print(token)
    return 0


def _private_key(path: str, alg: str | None) -> tuple[Any, str]:
    """Load a PEM private key and the algorithm it signs with.

    Raises:
        ValueError: unreadable, not a PEM private key, of another type than
            Ed25519 or RSA, or not of ``alg``.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        with open(path, "rb") as file:
            key = load_pem_private_key(file.read(), password=None)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key") from exc
    if isinstance(key, Ed25519PrivateKey):
        own = "EdDSA"
    elif isinstance(key, RSAPrivateKey):
        own = "RS256"
    else:
        raise ValueError(f"{path} is neither an Ed25519 nor an RSA key")
    if alg is not None and alg != own:
        raise ValueError(f"{path} signs {own}, not {alg}")
    return key, own
