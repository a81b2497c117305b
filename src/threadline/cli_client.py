"""``threadline tail`` and ``threadline publish``: the SDK on the command line.

They use only the client (:mod:`threadline.client`), imported when the
command runs: never the server or its dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from .cli_args import DEFAULT_PORT

if TYPE_CHECKING:
    from .protocol.events import Event

__all__ = ["DEFAULT_URL", "add_parser", "run"]

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def add_parser(commands: Any) -> None:
    """Add ``tail`` and ``publish`` to the ``threadline`` subcommands."""

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


def run(args: argparse.Namespace) -> int:
    """Run ``tail`` or ``publish``; returns the exit status."""
    name = args.command
    if not args.token:
        print(
            f"threadline {name}: --token or THREADLINE_TOKEN is required",
            file=sys.stderr,
        )
        return 2
    from .exceptions import ThreadlineError

    command = _tail if name == "tail" else _publish
    try:
        return asyncio.run(command(args))
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
