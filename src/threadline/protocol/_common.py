"""What the two ends of a connection share: its states and small helpers."""

from __future__ import annotations

from enum import Enum
from typing import Final, TypeVar

from ..exceptions import ProtocolError
from .codes import Close, CloseCode, ErrorCode
from .frames import encode_json
from .messages import Message

__all__ = ["State", "checked", "close_for", "encoded"]

_TOO_LARGE: Final = (ErrorCode.FRAME_TOO_LARGE, ErrorCode.TOO_MANY_MESSAGES)
_M = TypeVar("_M", bound=Message)


class State(Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    """Server: no ``hello`` yet."""

    OPEN = "open"
    """Messages flow."""

    CLOSED = "closed"
    """Closing or closed: nothing more is received or queued."""


def checked(message: _M) -> _M:
    """``message``, after checking it: a caller's bad argument is a ValueError.

    Raises:
        ValueError: a value of ``message`` is malformed.
    """
    try:
        message.check()
    except ProtocolError as exc:
        raise ValueError(str(exc)) from exc
    return message


def encoded(message: Message) -> str:
    """The canonical JSON text of one message."""
    return encode_json(message.serialize())


def close_for(exc: ProtocolError) -> Close:
    """The close that answers a frame that failed to decode or parse."""
    code = (
        CloseCode.FRAME_TOO_LARGE
        if exc.code in _TOO_LARGE
        else CloseCode.PROTOCOL_ERROR
    )
    return Close.truncated(code, str(exc))
