"""Close codes and error codes of the WebSocket protocol ``threadline.v1``.

A close code's range tells the client what to do next, so a client needs no
table of codes to behave well (STYLE E5):

.. code-block:: text

    1000         normal closure: the client asked to close; do not reconnect
    4000–4099    retryable: reconnect with backoff and resubscribe from the
                 offsets you hold; nothing is lost
    4400–4499    terminal: do not reconnect until something changes (a new
                 token, a fixed client)
    4900–4949    for applications, retryable
    4950–4999    for applications, terminal

Other standard codes: 1002, 1003, 1007, 1008, 1009 and 1010 say the peer
refused our data, so they are terminal; every other code (1001 going away,
1006 abnormal closure, 1011 internal error, 1012 service restart, codes this
version does not know) is retried with backoff.

``error`` messages carry a machine-readable ``code`` string instead: the codes
the wire layer itself sends are :class:`ErrorCode`; the server sends the same
codes as its HTTP API for the rest (``forbidden``, ``offset_gone``,
``id_conflict``…).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "APPLICATION_RETRYABLE",
    "APPLICATION_TERMINAL",
    "RETRYABLE",
    "TERMINAL",
    "WS_1000_NORMAL_CLOSURE",
    "WS_4000_SLOW_CONSUMER",
    "WS_4001_TOKEN_EXPIRED",
    "WS_4002_SERVER_RESTARTING",
    "WS_4401_UNAUTHORIZED",
    "WS_4403_FORBIDDEN",
    "WS_4408_HELLO_TIMEOUT",
    "WS_4409_PROTOCOL_ERROR",
    "WS_4413_FRAME_TOO_LARGE",
    "Close",
    "CloseCode",
    "ErrorCode",
    "is_retryable",
]

RETRYABLE: Final = range(4000, 4100)
"""Threadline's retryable close codes: reconnect and resume."""

TERMINAL: Final = range(4400, 4500)
"""Threadline's terminal close codes: stop."""

APPLICATION_RETRYABLE: Final = range(4900, 4950)
"""Close codes an application may send that tell clients to reconnect."""

APPLICATION_TERMINAL: Final = range(4950, 5000)
"""Close codes an application may send that tell clients to stop."""

# Standard codes (RFC 6455 § 7.4.1) that mean "the peer refused our data".
_TERMINAL_STANDARD: Final = frozenset({1000, 1002, 1003, 1007, 1008, 1009, 1010})

# RFC 6455 § 5.5.1: the close payload is at most 125 bytes, 2 of them the code.
_MAX_REASON_BYTES: Final = 123


def is_retryable(code: int) -> bool:
    """Whether a client should reconnect after a close with ``code``.

    Any integer is accepted, so a client can decide on codes it does not know.
    """
    if code in RETRYABLE or code in APPLICATION_RETRYABLE:
        return True
    if code in TERMINAL or code in APPLICATION_TERMINAL:
        return False
    return code not in _TERMINAL_STANDARD


class CloseCode(IntEnum):
    """The close codes Threadline sends; see the module docstring for ranges."""

    NORMAL_CLOSURE = 1000
    """The client closed the connection; no reconnect."""

    SLOW_CONSUMER = 4000
    """The client read too slowly and its send queue filled: resume from your
    offsets (the missed events are replayed)."""

    TOKEN_EXPIRED = 4001
    """The token expired (plus grace) without a ``refresh``: get a fresh token
    and reconnect."""

    SERVER_RESTARTING = 4002
    """The server is shutting down or restarting: reconnect, maybe to another
    node."""

    UNAUTHORIZED = 4401
    """The first message was not a ``hello``, or its token is missing, forged,
    expired or malformed (also a bad token in ``refresh``)."""

    FORBIDDEN = 4403
    """The token is valid but may not use this connection (e.g. a ``refresh``
    for another identity)."""

    HELLO_TIMEOUT = 4408
    """No ``hello`` arrived within the hello timeout (5 s by default)."""

    PROTOCOL_ERROR = 4409
    """A frame is not a JSON array of message objects, or a ``hello`` came twice:
    a bug in the peer."""

    FRAME_TOO_LARGE = 4413
    """A frame has more bytes or more messages than the limits allow."""

    @property
    def retryable(self) -> bool:
        """Whether a client should reconnect after this close."""
        return is_retryable(self)


WS_1000_NORMAL_CLOSURE: Final = CloseCode.NORMAL_CLOSURE
WS_4000_SLOW_CONSUMER: Final = CloseCode.SLOW_CONSUMER
WS_4001_TOKEN_EXPIRED: Final = CloseCode.TOKEN_EXPIRED
WS_4002_SERVER_RESTARTING: Final = CloseCode.SERVER_RESTARTING
WS_4401_UNAUTHORIZED: Final = CloseCode.UNAUTHORIZED
WS_4403_FORBIDDEN: Final = CloseCode.FORBIDDEN
WS_4408_HELLO_TIMEOUT: Final = CloseCode.HELLO_TIMEOUT
WS_4409_PROTOCOL_ERROR: Final = CloseCode.PROTOCOL_ERROR
WS_4413_FRAME_TOO_LARGE: Final = CloseCode.FRAME_TOO_LARGE


class ErrorCode(StrEnum):
    """The ``code`` of the errors that the wire layer raises or sends itself."""

    INVALID_FRAME = "invalid_frame"
    """A frame is not JSON, not an array, or empty (closes 4409)."""

    FRAME_TOO_LARGE = "frame_too_large"
    """A frame exceeds the byte limit (closes 4413)."""

    TOO_MANY_MESSAGES = "too_many_messages"
    """A frame holds more messages than the limit (closes 4413)."""

    INVALID_MESSAGE = "invalid_message"
    """A message has a missing, unknown or mistyped field, or a bad value."""

    UNKNOWN_TYPE = "unknown_type"
    """A message's ``type`` is not one this side accepts."""

    INVALID_OFFSET = "invalid_offset"
    """An offset is malformed (the same code as the HTTP API's)."""

    DUPLICATE_RID = "duplicate_rid"
    """A request reuses the ``rid`` of a request still in flight."""

    ALREADY_SUBSCRIBED = "already_subscribed"
    """The connection is already subscribed to that session."""

    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    """The connection holds as many subscriptions as the limit allows."""


@dataclass(frozen=True, slots=True)
class Close:
    """The decision to close the connection, as returned by ``data_to_send()``.

    The I/O layer sends every frame before it, then closes the WebSocket with
    this code and reason.
    """

    code: int
    """The close code: a :class:`CloseCode`, or an application code."""

    reason: str = ""
    """A short human-readable reason (at most 123 bytes of UTF-8)."""

    def __post_init__(self) -> None:
        if not (self.code == 1000 or 3000 <= self.code <= 4999):
            raise ValueError(f"cannot send close code {self.code}")
        if len(self.reason.encode("utf-8", "surrogatepass")) > _MAX_REASON_BYTES:
            raise ValueError("close reason longer than 123 bytes")

    @classmethod
    def truncated(cls, code: int, reason: str) -> Close:
        """A close whose reason is cut to fit the 123-byte limit."""
        data = reason.encode("utf-8", "surrogatepass")[:_MAX_REASON_BYTES]
        return cls(code, data.decode("utf-8", "ignore"))

    @property
    def retryable(self) -> bool:
        """Whether the client should reconnect after this close."""
        return is_retryable(self.code)
