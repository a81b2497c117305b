"""``threadline demo``: the server, the demo AI and the web pages, in one process."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Any, Final

from .defaults import DEFAULT_PACE, DEFAULT_PORT, DEFAULT_STORE, LLM_ENV

__all__ = ["add_parser", "run"]

LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")


def add_parser(commands: Any) -> None:
    """Add ``demo`` to the ``threadline`` command's subcommands."""
    demo = commands.add_parser(
        "demo",
        help="run the web demo: server, AI agent, customer/agent/supervisor pages",
        description="Run the support demo on the embedded default (SQLite, no "
        "other service): the server, a deterministic order-support AI, and the "
        "customer chat, agent console and supervisor pages; print their URLs. "
        "Its sign-in gives anyone a token: demo only, not for production. "
        f"With {', '.join(LLM_ENV)} set, the AI is that OpenAI-compatible model "
        "(pip install 'threadline[demo]').",
    )
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; the sign-in is open to "
        "anyone who reaches it)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    demo.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=f"sqlite:///PATH or memory:// (default {DEFAULT_STORE})",
    )
    demo.add_argument(
        "--ai-pace",
        type=float,
        default=DEFAULT_PACE,
        metavar="SECONDS",
        help=f"seconds per streamed token of the built-in AI (default {DEFAULT_PACE})",
    )
    demo.add_argument(
        "--no-ai",
        action="store_true",
        help="run no AI (answer as a human, or bring your own worker)",
    )
    demo.add_argument("--log-level", default="warning")


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or SIGTERM; the exit status."""
    try:
        from ..server.running import bind, run_uvicorn
    except ImportError:  # pragma: no cover - depends on the install
        print(
            "threadline demo needs the server extra: pip install 'threadline[server]'",
            file=sys.stderr,
        )
        return 2
    from ..exceptions import StorageError
    from .app import DemoApp, DemoSettings

    def fail(message: str) -> int:
        print(f"threadline demo: {message}", file=sys.stderr)
        return 2

    if args.ai_pace < 0:
        return fail("--ai-pace is seconds per token, at least 0")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        return fail(f"cannot bind {args.host}:{args.port}: {exc}")
    host, port = sock.getsockname()[:2]
    shown = _url_host(host)
    base = f"http://{shown}:{port}"
    try:
        app = DemoApp(
            DemoSettings(
                url=base, store=args.store, ai=not args.no_ai, pace=args.ai_pace
            )
        )
    except (ValueError, RuntimeError, StorageError) as exc:
        sock.close()
        return fail(str(exc))

    ran = run_uvicorn(
        app,
        sock,
        log_level=args.log_level,
        drain_timeout=2.0,
        on_started=lambda: print(_banner(app, base, args), flush=True),
    )
    return 0 if ran else 1


def _url_host(host: str) -> str:
    """The host as a URL shows it (an unspecified address as localhost)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


def _banner(app: Any, base: str, args: argparse.Namespace) -> str:
    """What the demo prints once it listens."""
    from .llm import LLMAgent

    agent = app.ai.respond if app.ai is not None else None
    if agent is None:
        ai = "none (--no-ai)"
    elif isinstance(agent, LLMAgent):
        ai = f"model {agent.model} (THREADLINE_LLM_BASE_URL)"
    else:
        ai = f"built-in order-support agent, {args.ai_pace:g} s per token"
    lines = [
        f"threadline: listening on {base} (store {args.store}, auth on)",
        "threadline demo: DEMO ONLY - anyone who reaches it can sign in;"
        " not for production",
        f"  customer chat     {base}/demo",
        f"  agent console     {base}/demo/agent",
        f"  supervisor view   {base}/demo/supervisor",
        f"  AI                {ai}",
        "  Try: sign in as a customer and ask 'Where is my order #1234?'",
    ]
    if args.host not in LOOPBACK:
        lines.insert(
            2,
            f"threadline demo: WARNING: bound to {args.host}, not loopback: "
            "the open sign-in is reachable from the network",
        )
    return "\n".join(lines)
