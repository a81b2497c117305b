"""Messages of the WebSocket protocol ``threadline.v1``: parsing and writing frames.

A frame is one WebSocket text message: a JSON array of one or more message
objects, each naming itself with ``type``::

    [{"type":"subscribe","rid":"1","session":"order-1","offset":"-1","view":"raw"}]

Each message is a frozen dataclass (client → server in
:mod:`~threadline.protocol.client_messages`, server → client in
:mod:`~threadline.protocol.server_messages`, all re-exported here) with
``parse()`` from a decoded JSON object, ``serialize()`` to one, and
``check()`` of its values. ``schema/threadline.v1.json`` defines the same
shapes for other languages; the tests keep the two in step.

The client's ``presence`` and the server's are different messages
(:class:`SetPresence` and :class:`Presence`), so parsing needs to know who
sent a frame: pass :class:`Side`.

Events are JSON objects at this layer, checked only for the ``offset`` that
ordering and resume need; :mod:`~threadline.protocol.events` validates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, overload

from ..exceptions import ProtocolError
from .client_messages import (
    Cursor,
    Hello,
    PresenceStatus,
    Publish,
    Refresh,
    SetPresence,
    Subscribe,
    Unsubscribe,
    View,
)
from .codes import ErrorCode
from .frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGES,
    JSONObject,
    Side,
    decode_frame,
    encode_json,
)
from .server_messages import (
    ErrorMessage,
    Events,
    Gone,
    GoneReason,
    Presence,
    Published,
    Subscribed,
)

__all__ = [
    "ClientMessage",
    "Cursor",
    "ErrorMessage",
    "Events",
    "Gone",
    "GoneReason",
    "Hello",
    "JSONObject",
    "Message",
    "Presence",
    "PresenceStatus",
    "Publish",
    "Published",
    "Refresh",
    "ServerMessage",
    "SetPresence",
    "Side",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "View",
    "parse_frame",
    "parse_message",
    "serialize_frame",
]

ClientMessage = (
    Hello | Subscribe | Unsubscribe | Publish | Cursor | SetPresence | Refresh
)
"""Any message a client sends."""

ServerMessage = Subscribed | Events | Published | ErrorMessage | Presence | Gone
"""Any message a server sends."""

Message = ClientMessage | ServerMessage
"""Any message."""

_CLIENT_PARSERS: Final[dict[str, Callable[[Mapping[str, object]], ClientMessage]]] = {
    "hello": Hello.parse,
    "subscribe": Subscribe.parse,
    "unsubscribe": Unsubscribe.parse,
    "publish": Publish.parse,
    "cursor": Cursor.parse,
    "presence": SetPresence.parse,
    "refresh": Refresh.parse,
}
_SERVER_PARSERS: Final[dict[str, Callable[[Mapping[str, object]], ServerMessage]]] = {
    "subscribed": Subscribed.parse,
    "events": Events.parse,
    "published": Published.parse,
    "error": ErrorMessage.parse,
    "presence": Presence.parse,
    "gone": Gone.parse,
}


@overload
def parse_message(obj: object, sender: Literal[Side.CLIENT]) -> ClientMessage: ...
@overload
def parse_message(obj: object, sender: Literal[Side.SERVER]) -> ServerMessage: ...
@overload
def parse_message(obj: object, sender: Side) -> Message: ...
def parse_message(obj: object, sender: Side) -> Message:
    """Parse one decoded message that ``sender`` sent.

    Raises:
        ProtocolError: ``unknown_type`` if ``obj`` has no ``type`` that
            ``sender`` may send; ``invalid_message`` or ``invalid_offset`` if
            a field is wrong.
    """
    if not isinstance(obj, dict):
        raise ProtocolError(
            "a message must be a JSON object", ErrorCode.INVALID_MESSAGE
        )
    kind = obj.get("type")
    parsers: Mapping[str, Callable[[Mapping[str, object]], Message]] = (
        _CLIENT_PARSERS if sender is Side.CLIENT else _SERVER_PARSERS
    )
    parse = parsers.get(kind) if isinstance(kind, str) else None
    if parse is None:
        shown = kind[:64] if isinstance(kind, str) else kind
        raise ProtocolError(
            f"unknown message type from the {sender.value}: {shown!r}",
            ErrorCode.UNKNOWN_TYPE,
        )
    return parse(obj)


@overload
def parse_frame(
    text: str,
    sender: Literal[Side.CLIENT],
    *,
    max_frame_bytes: int = ...,
    max_messages: int = ...,
) -> list[ClientMessage]: ...
@overload
def parse_frame(
    text: str,
    sender: Literal[Side.SERVER],
    *,
    max_frame_bytes: int = ...,
    max_messages: int = ...,
) -> list[ServerMessage]: ...
@overload
def parse_frame(
    text: str, sender: Side, *, max_frame_bytes: int = ..., max_messages: int = ...
) -> list[ClientMessage] | list[ServerMessage]: ...
def parse_frame(
    text: str,
    sender: Side,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> list[ClientMessage] | list[ServerMessage]:
    """Parse a whole frame that ``sender`` sent; one bad message fails it.

    Args:
        text: The frame, as received.
        sender: Who sent it.
        max_frame_bytes: Largest frame accepted, in UTF-8 bytes.
        max_messages: Most messages accepted in one frame.

    Raises:
        ProtocolError: see :func:`~threadline.protocol.frames.decode_frame`
            and :func:`parse_message`.
    """
    items = decode_frame(
        text, max_frame_bytes=max_frame_bytes, max_messages=max_messages
    )
    if sender is Side.CLIENT:
        return [parse_message(item, Side.CLIENT) for item in items]
    return [parse_message(item, Side.SERVER) for item in items]


def serialize_frame(messages: Iterable[Message]) -> str:
    """The canonical text of a frame holding ``messages``, in order.

    Raises:
        ValueError: a message holds NaN or an infinity.
    """
    return encode_json([message.serialize() for message in messages])
