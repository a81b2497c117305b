"""``threadline serve``: run the server (``--dev``: with a token per role).

The server's dependencies (starlette, uvicorn, PyJWT) are imported when the
command runs, not when the command line is built.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

from .cli_args import DEFAULT_PORT, duration

if TYPE_CHECKING:
    from .server import Config

__all__ = ["DEV_SESSION", "DEV_TOKENS", "DEV_TTL", "add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``serve`` to the ``threadline`` subcommands."""
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument(
        "--store",
        default="sqlite:///threadline.db",
        help="sqlite:///PATH (default ./threadline.db), sqlite:////ABS/PATH or memory://",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--long-poll-timeout",
        type=duration,
        default=20.0,
        metavar="DURATION",
        help="how long a long-poll waits for data (default 20s)",
    )
    serve.add_argument(
        "--notify-url",
        metavar="URL",
        help="webhook for members with no device present (one per message burst)",
    )
    serve.add_argument(
        "--notify-secret",
        default=os.environ.get("THREADLINE_NOTIFY_SECRET"),
        metavar="WHSEC",
        help="Standard Webhooks signing secret, whsec_<base64>"
        " (default $THREADLINE_NOTIFY_SECRET)",
    )
    serve.add_argument(
        "--retention",
        type=duration,
        default=None,
        metavar="DURATION",
        help="delete closed sessions this long after closing, once their audit"
        " chain was exported (default: keep forever)",
    )
    serve.add_argument(
        "--lease",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="silence after which the server ends an open message or run"
        " (producer_lost; default 30s)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=duration,
        default=10.0,
        metavar="DURATION",
        help="how long SIGTERM waits for requests in flight (default 10s)",
    )
    serve.add_argument(
        "--secret",
        default=os.environ.get("THREADLINE_SECRET"),
        help="HS256 token secret (default $THREADLINE_SECRET)",
    )
    serve.add_argument(
        "--jwks",
        metavar="PATH",
        help="JWKS file of EdDSA/RS256 public keys (tokens name one with kid)",
    )
    serve.add_argument(
        "--jwks-url",
        metavar="URL",
        help="JWKS URL of EdDSA/RS256 public keys, fetched and refreshed",
    )
    serve.add_argument(
        "--jwks-refresh",
        type=duration,
        default=300.0,
        metavar="DURATION",
        help="how often --jwks-url is fetched (default 5m; an unknown kid "
        "fetches at most once a minute)",
    )
    serve.add_argument("--issuer", help="require this iss claim on every token")
    serve.add_argument("--audience", help="require this aud claim on every token")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="accept requests without tokens (local development only)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="generate a secret if none is set and print a token per role",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=8 * 1024 * 1024,
        metavar="BYTES",
        help="largest request body (default 8 MiB)",
    )
    serve.add_argument(
        "--cors-origins",
        default="*",
        help="comma-separated allowed origins (default *)",
    )
    serve.add_argument(
        "--audit-key",
        metavar="PEM",
        help="Ed25519 private key that signs audit heads (default: PATH-audit-key.pem "
        "beside a SQLite store, created on first start; else a key per process)",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--ws-deflate",
        action="store_true",
        help="offer permessage-deflate on /v1/ws (off by default: it costs CPU)",
    )
    serve.add_argument(
        "--no-presence",
        action="store_true",
        help="serve no presence and log no participant.joined/left "
        "(docs/topics/presence.md)",
    )


class _RedactTickets(logging.Filter):
    """Access logs never show a ``?ticket=`` (a credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .server.tickets import redact_tickets

        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_tickets(arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def run(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C or SIGTERM; returns the exit status."""
    try:
        from .server.running import bind, run_uvicorn
    except ImportError:  # pragma: no cover - depends on the install
        print(
            "threadline serve needs the server extra: pip install 'threadline[server]'",
            file=sys.stderr,
        )
        return 2
    from .exceptions import StorageError
    from .server import Config, create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.access").addFilter(_RedactTickets())
    secret = args.secret
    if args.dev and not secret:
        secret = secrets.token_urlsafe(32)
    auth = not args.no_auth
    if auth and not (secret or args.jwks or args.jwks_url):
        print(
            "threadline serve: set --secret (or THREADLINE_SECRET), --jwks or "
            "--jwks-url, use --dev, or --no-auth for local development",
            file=sys.stderr,
        )
        return 2
    config = Config(
        store=args.store,
        auth=auth,
        secret=secret,
        jwks_path=args.jwks,
        jwks_url=args.jwks_url,
        jwks_refresh_interval=args.jwks_refresh,
        issuer=args.issuer,
        audience=args.audience,
        long_poll_timeout=args.long_poll_timeout,
        lease=args.lease,
        retention=args.retention,
        notify_url=args.notify_url,
        notify_secret=args.notify_secret,
        drain_timeout=args.drain_timeout,
        max_body_bytes=args.max_body,
        cors_origins=tuple(
            o.strip() for o in args.cors_origins.split(",") if o.strip()
        ),
        audit_key=args.audit_key,
        presence=not args.no_presence,
    )
    try:
        app = create_app(config)
    except (ValueError, StorageError) as exc:
        print(f"threadline serve: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"threadline serve: cannot bind {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    host, port = sock.getsockname()[:2]

    def started() -> None:
        print(
            f"threadline: listening on http://{host}:{port} (store {config.store}, "
            f"auth {'on' if auth else 'off'})",
            flush=True,
        )
        if args.dev:
            for label, token in _dev_tokens(secret, config):
                print(f"threadline: dev token ({label}): {token}", flush=True)

    ran = run_uvicorn(
        app,
        sock,
        log_level=args.log_level,
        drain_timeout=config.drain_timeout,
        access_log=args.access_log,
        ws_deflate=args.ws_deflate,
        on_started=started,
    )
    return 0 if ran else 1


DEV_TTL = 24 * 3600.0
DEV_SESSION = "dev-session"
DEV_TOKENS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        f"customer, session {DEV_SESSION}",
        {
            "sub": "dev-customer",
            "name": "Dev Customer",
            "role": "customer",
            "sessions": [DEV_SESSION],
        },
    ),
    (
        "ai, all sessions",
        {"sub": "dev-ai", "name": "Dev AI", "role": "ai", "sessions": ["**"]},
    ),
    (
        "agent, all sessions",
        {"sub": "dev-agent", "name": "Dev Agent", "role": "agent", "sessions": ["**"]},
    ),
    (
        "supervisor, all sessions, cap barge",
        {
            "sub": "dev-supervisor",
            "name": "Dev Supervisor",
            "role": "supervisor",
            "sessions": ["**"],
            "caps": ["barge"],
        },
    ),
    (
        "service, all sessions and streams",
        {
            "sub": "dev",
            "name": "Dev Service",
            "role": "service",
            "sessions": ["**"],
            "streams": {"read": ["**"], "write": ["**"]},
        },
    ),
)
"""What ``serve --dev`` prints: a label and the claims of one token per role."""


def _dev_tokens(secret: str, config: Config) -> list[tuple[str, str]]:
    """One HS256 token per role for ``serve --dev``, valid for a day."""
    from .auth import create_token

    extra: dict[str, Any] = {
        k: v for k, v in (("iss", config.issuer), ("aud", config.audience)) if v
    }
    return [
        (label, create_token(secret, ttl_seconds=DEV_TTL, **claims, **extra))
        for label, claims in DEV_TOKENS
    ]
