"""The ``threadline`` command line: ``serve``, ``demo``, ``token``, ``tail``,
``publish``, ``audit verify``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import audit_verify
from .demo import command as demo_command

if TYPE_CHECKING:
    from .protocol.events import Event
    from .server import Config

__all__ = ["main"]

DEFAULT_PORT = 4437
ROLE_NAMES = ("customer", "ai", "agent", "supervisor", "service")
"""``threadline.auth.ROLES``, spelled out: the CLI imports auth (PyJWT) lazily."""
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def _duration(text: str) -> float:
    from .server.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
        type=_duration,
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
        type=_duration,
        default=None,
        metavar="DURATION",
        help="delete closed sessions this long after closing, once their audit"
        " chain was exported (default: keep forever)",
    )
    serve.add_argument(
        "--lease",
        type=_duration,
        default=30.0,
        metavar="DURATION",
        help="silence after which the server ends an open message or run"
        " (producer_lost; default 30s)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=_duration,
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
        type=_duration,
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
        type=_duration,
        default=3600.0,
        metavar="DURATION",
        help="lifetime (default 1h)",
    )
    token.add_argument("--issuer", help="iss claim")
    token.add_argument("--audience", help="aud claim")
    _client_parsers(commands)
    audit_verify.add_parser(commands)
    demo_command.add_parser(commands)
    return parser


def _client_parsers(commands: Any) -> None:
    """``tail`` and ``publish``: the SDK on the command line."""

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("session", help="the session id")
        command.add_argument(
            "--url",
            default=os.environ.get("THREADLINE_URL", DEFAULT_URL),
            help=f"server URL (default $THREADLINE_URL or {DEFAULT_URL})",
        )
        command.add_argument(
            "--token",
            default=os.environ.get("THREADLINE_TOKEN"),
            help="bearer token (default $THREADLINE_TOKEN)",
        )
        command.add_argument("--device", help="this device's id")

    tail = commands.add_parser(
        "tail",
        help="print a session's events as they come",
        description="Print a session's events, one line each (time, actor, type, "
        "text), then live ones; resumes by itself after a drop. Ends when the "
        "session closes.",
    )
    common(tail)
    tail.add_argument(
        "--offset", default="-1", help="start after this offset (-1: all, now: new)"
    )
    tail.add_argument("--view", choices=["raw", "compact"], default="raw")
    tail.add_argument("--json", action="store_true", help="print raw envelopes")
    tail.add_argument("--transport", choices=["ws", "sse"], default="ws")

    publish = commands.add_parser(
        "publish",
        help="publish one event to a session",
        description="Publish one event (--type and --data) or a text message "
        "(--text). Prints its offset.",
    )
    common(publish)
    what = publish.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="publish a message with this text")
    what.add_argument("--type", dest="event_type", help="the event type")
    publish.add_argument("--data", help="the event's data, a JSON object (--type)")
    publish.add_argument(
        "--role", choices=["user", "assistant", "system"], help="role of --text"
    )
    publish.add_argument("--id", dest="event_id", help="event id (default: a UUIDv7)")
    publish.add_argument("--visibility", choices=["all", "staff"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command in ("tail", "publish"):
        return _client_command(args)
    if args.command == "audit":
        return audit_verify.run(args)
    if args.command == "demo":
        return demo_command.run(args)
    return _token(args)


# tail and publish


def _client_command(args: argparse.Namespace) -> int:
    name = args.command
    if not args.token:
        print(
            f"threadline {name}: --token or THREADLINE_TOKEN is required",
            file=sys.stderr,
        )
        return 2
    from .exceptions import ThreadlineError

    run = _tail if name == "tail" else _publish
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except (ThreadlineError, ValueError) as exc:
        print(f"threadline {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def _tail(args: argparse.Namespace) -> int:
    import json

    from .client import connect

    async with connect(
        args.url, args.token, device=args.device, transport=args.transport
    ) as client:
        subscription = client.session(args.session).subscribe(
            args.offset, view=args.view
        )
        async with subscription as events:
            async for event in events:
                if args.json:
                    line = json.dumps(event.to_json(), ensure_ascii=False)
                else:
                    line = _event_line(event)
                print(line, flush=True)
    return 0


async def _publish(args: argparse.Namespace) -> int:
    import json

    from .client import connect

    async with connect(
        args.url, args.token, device=args.device, transport="sse"
    ) as client:
        session = client.session(args.session)
        if args.text is not None:
            offset = await session.send_message(
                args.text,
                role=args.role,
                message_id=args.event_id,
                visibility=args.visibility,
            )
        else:
            try:
                data = json.loads(args.data or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"--data is not JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ValueError("--data must be a JSON object")
            offset = await session.publish(
                args.event_type, data, id=args.event_id, visibility=args.visibility
            )
    print(offset)
    return 0


def _event_line(event: Event) -> str:
    """One readable line: time, actor, type, then what the event says."""
    actor = event.actor
    who = f"{actor.name or actor.id} ({actor.role})"
    mark = " [staff]" if event.visibility == "staff" else ""
    return f"{event.ts[11:23]}  {who:<28} {event.type:<18} {_summary(event)}{mark}"


def _summary(event: Event) -> str:
    """What an event says, in a few words."""
    import json

    data = event.data
    kind = event.type
    if kind == "message":
        texts = [p.get("text", f"[{p.get('type')}]") for p in data.get("parts", [])]
        return f"{data.get('role')}: {' '.join(texts)}"
    if kind == "message.start":
        return f"{data.get('role')} {data.get('message_id')} …"
    if kind == "message.delta":
        return repr(data.get("text", data.get("data")))
    if kind in ("message.end", "run.end"):
        reason = data.get("reason")
        return f"{data.get('status')}{f' ({reason})' if reason else ''}"
    if kind == "note":
        return str(data.get("text"))
    if kind.startswith("participant."):
        participant = data.get("participant", {})
        return f"{participant.get('id')} ({participant.get('role')})"
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 120 else text[:119] + "…"


def _token(args: argparse.Namespace) -> int:
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


def _serve(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
