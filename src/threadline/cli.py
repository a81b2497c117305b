"""The ``threadline`` command line: ``serve`` and ``token``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

DEFAULT_PORT = 4437


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
        "--no-auth",
        action="store_true",
        help="accept requests without tokens (local development only)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="generate a secret if none is set and print a token",
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
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request")

    token = commands.add_parser("token", help="mint a token (HS256)")
    token.add_argument("--secret", default=os.environ.get("THREADLINE_SECRET"))
    token.add_argument("--sub", default="dev")
    token.add_argument("--role", default="service")
    token.add_argument("--tenant", default="default")
    token.add_argument("--ttl", type=_duration, default=3600.0, metavar="DURATION")
    token.add_argument("--streams-read", action="append", default=None, metavar="GLOB")
    token.add_argument("--streams-write", action="append", default=None, metavar="GLOB")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _token(args)


def _token(args: argparse.Namespace) -> int:
    from .auth import create_token

    if not args.secret:
        print(
            "threadline token: --secret or THREADLINE_SECRET is required",
            file=sys.stderr,
        )
        return 2
    streams = {
        "read": args.streams_read or ["**"],
        "write": args.streams_write or ["**"],
    }
    print(
        create_token(
            args.secret,
            sub=args.sub,
            role=args.role,
            tenant=args.tenant,
            ttl_seconds=int(args.ttl),
            streams=streams,
        )
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
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
    secret = args.secret
    if args.dev and not secret:
        secret = secrets.token_urlsafe(32)
    auth = not args.no_auth
    if auth and not secret:
        print(
            "threadline serve: set --secret (or THREADLINE_SECRET), use --dev, "
            "or --no-auth for local development",
            file=sys.stderr,
        )
        return 2
    config = Config(
        store=args.store,
        auth=auth,
        secret=secret,
        long_poll_timeout=args.long_poll_timeout,
        drain_timeout=args.drain_timeout,
        max_body_bytes=args.max_body,
        cors_origins=tuple(
            o.strip() for o in args.cors_origins.split(",") if o.strip()
        ),
    )
    try:
        app = create_app(config)
    except (ValueError, StorageError) as exc:
        print(f"threadline serve: {exc}", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(
            f"threadline serve: cannot bind {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    host, port = sock.getsockname()[:2]
    uv_config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=args.access_log,
        log_level=args.log_level,
        timeout_graceful_shutdown=max(1, int(round(config.drain_timeout))),
        timeout_keep_alive=30,
        server_header=False,
        proxy_headers=False,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:
                # A drained SIGTERM is a clean stop: exit 0, not "killed by signal".
                self._captured_signals.remove(sig)
            loop = getattr(self, "_threadline_loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(app.drain)

        async def startup(self, sockets: Any = None) -> None:
            self._threadline_loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)
            if self.started:
                base = f"http://{host}:{port}"
                print(
                    f"threadline: listening on {base} (store {config.store}, "
                    f"auth {'on' if auth else 'off'})",
                    flush=True,
                )
                if args.dev:
                    from .auth import create_token

                    token = create_token(
                        secret,
                        sub="dev",
                        role="service",
                        streams={"read": ["**"], "write": ["**"]},
                    )
                    print(
                        f"threadline: dev token (service, all streams): {token}",
                        flush=True,
                    )

    server = Server(uv_config)
    server.run(sockets=[sock])
    if not server.started:
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
