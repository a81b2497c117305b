"""What the ``threadline`` commands' arguments share: the default port and
the duration type (``30s``, ``5m``, ``1h``)."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_PORT", "duration"]

DEFAULT_PORT = 4437


def duration(text: str) -> float:
    """An argparse type: a duration as the server's config spells it, in seconds."""
    from .server.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
