"""Frames of the WebSocket protocol ``threadline.v1``: the JSON they are made of.

A frame is one WebSocket text message holding a JSON array of one or more
message objects. This module reads that JSON, and packs messages waiting to
be sent into as few frames as the limits allow (:class:`Outbox`); the
messages themselves are in :mod:`~threadline.protocol.messages`.

Frames are written in one canonical form (:func:`encode_json`): compact (no
spaces), UTF-8 rather than ``\\u`` escapes, no NaN or Infinity. Frames are read
strictly: no NaN or Infinity, no duplicate keys, no lone surrogates (UTF-8
cannot carry them onward), and within the limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from ..exceptions import ProtocolError
from .codes import ErrorCode

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGES",
    "SUBPROTOCOL",
    "EncodedEvent",
    "JSONObject",
    "Outbox",
    "Side",
    "decode_frame",
    "encode_json",
    "utf8_size",
]

SUBPROTOCOL: Final = "threadline.v1"
"""The WebSocket subprotocol that names this version of the protocol."""

DEFAULT_MAX_FRAME_BYTES: Final = 2 * 1024 * 1024
"""Largest frame, in UTF-8 bytes: a full publish batch (1 MB) plus framing."""

DEFAULT_MAX_MESSAGES: Final = 256
"""Most messages in one frame: a hello plus 100 resubscribes fit with room."""

JSONObject = dict[str, Any]
"""A decoded JSON object (an event, a state snapshot, error details)."""

# A \uD800-\uDFFF escape may decode to a lone surrogate: such frames (rare)
# get the full check.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


class Side(Enum):
    """Which end of a connection sent a message."""

    CLIENT = "client"
    SERVER = "server"


def encode_json(value: object) -> str:
    """The canonical text of a JSON value: compact, UTF-8, no NaN or Infinity.

    Raises:
        ValueError: ``value`` holds NaN or an infinity.
        TypeError: ``value`` holds something JSON cannot represent.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def utf8_size(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (free for ASCII text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event encoded once, spliced verbatim into every frame that carries it.

    Build one per stored event and hand it to every subscriber's protocol, so
    that fan-out encodes nothing per subscriber. ``text`` must be the
    canonical encoding of the event object (:func:`encode_json`, or any
    encoder with the same output, such as orjson's defaults).
    """

    offset: str
    """The event's offset, which orders and deduplicates it."""

    text: str
    """The event object's JSON text."""

    size: int
    """``text`` in UTF-8 bytes."""

    @classmethod
    def encode(cls, event: Mapping[str, Any]) -> EncodedEvent:
        """Encode an event object.

        Raises:
            ValueError: the event has no string ``offset``, or holds NaN.
        """
        offset = event.get("offset")
        if not isinstance(offset, str):
            raise ValueError("an event needs a string offset")
        text = encode_json(event)
        return cls(offset, text, utf8_size(text))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> JSONObject:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in an object")
    return obj


def _encodable(value: object) -> bool:
    try:
        encode_json(value).encode()
    except UnicodeEncodeError:
        return False
    return True


_DECODER: Final = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_unique_keys
)


def decode_frame(
    text: str,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> list[object]:
    """Decode a frame's JSON into its list of (unparsed) messages.

    Args:
        text: The frame, as received.
        max_frame_bytes: Largest frame accepted, in UTF-8 bytes.
        max_messages: Most messages accepted in one frame.

    Raises:
        ProtocolError: ``frame_too_large`` or ``too_many_messages`` past a
            limit; ``invalid_frame`` if the text is not a non-empty JSON array.
    """
    if utf8_size(text) > max_frame_bytes:
        raise ProtocolError(
            f"frame larger than {max_frame_bytes} bytes", ErrorCode.FRAME_TOO_LARGE
        )
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"frame is not JSON (at character {exc.pos})", ErrorCode.INVALID_FRAME
        ) from exc
    except (ValueError, RecursionError) as exc:  # the hooks, int digits, nesting
        raise ProtocolError(
            f"frame is not strict JSON: {exc}", ErrorCode.INVALID_FRAME
        ) from exc
    if _SURROGATE_ESCAPE.search(text) and not _encodable(value):
        raise ProtocolError("frame holds a lone surrogate", ErrorCode.INVALID_FRAME)
    if not isinstance(value, list) or not value:
        raise ProtocolError(
            "frame must be a non-empty JSON array", ErrorCode.INVALID_FRAME
        )
    if len(value) > max_messages:
        raise ProtocolError(
            f"frame holds more than {max_messages} messages",
            ErrorCode.TOO_MANY_MESSAGES,
        )
    return value


@dataclass(slots=True)
class _Text:
    text: str
    size: int


@dataclass(slots=True)
class _Batch:
    """An ``events`` message still open to more events of its session."""

    header: str
    size: int  # header plus "]}", in bytes
    texts: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


class Outbox:
    """Messages waiting to be sent, packed into frames when the transport asks.

    Events of one session that wait together travel as one ``events``
    message: an event joins the session's last waiting ``events`` message
    unless another message about that session was queued after it, so each
    session's order holds. Messages of different sessions may overtake each
    other; nothing else is reordered.

    Frames hold at most ``max_messages`` messages and ``max_frame_bytes``
    bytes; an ``events`` message is split between events to fit, and one
    message that is larger on its own travels alone.
    """

    def __init__(self, *, max_frame_bytes: int, max_messages: int) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._max_messages = max_messages
        self._items: list[_Text | _Batch] = []
        self._open: dict[str, _Batch] = {}
        self.bytes = 0
        """Bytes waiting (an estimate that leaves out commas and brackets)."""
        self.messages = 0
        """Messages waiting; each event counts as one."""

    def add(self, text: str, *, session: str | None = None) -> None:
        """Queue one encoded message, about ``session`` if it names one."""
        size = utf8_size(text)
        self._items.append(_Text(text, size))
        self.bytes += size
        self.messages += 1
        if session is not None:
            self._open.pop(session, None)

    def add_events(self, session: str, events: list[EncodedEvent]) -> None:
        """Queue events of ``session``, joining its waiting ``events`` message."""
        batch = self._open.get(session)
        if batch is None:
            header = f'{{"type":"events","session":{encode_json(session)},"events":['
            batch = _Batch(header, utf8_size(header) + 2)
            self._items.append(batch)
            self._open[session] = batch
            self.bytes += batch.size
        for event in events:
            batch.texts.append(event.text)
            batch.sizes.append(event.size)
            self.bytes += event.size + 1
        self.messages += len(events)

    def clear(self) -> None:
        """Drop everything waiting."""
        self._items.clear()
        self._open.clear()
        self.bytes = self.messages = 0

    def frames(self) -> list[str]:
        """Pack everything waiting into frames, and empty the outbox."""
        frames: list[str] = []
        parts: list[str] = []
        size = 2  # the brackets

        def flush() -> None:
            nonlocal size
            frames.append("[" + ",".join(parts) + "]")
            parts.clear()
            size = 2

        for item in self._items:
            if isinstance(item, _Text):
                if parts and not self._fits(size + 1 + item.size, len(parts)):
                    flush()
                size += item.size + (1 if parts else 0)
                parts.append(item.text)
                continue
            start = 0
            while start < len(item.texts):
                used = size + item.size + (1 if parts else 0) + item.sizes[start]
                if parts and not self._fits(used, len(parts)):
                    flush()
                    continue
                end = start + 1
                while (
                    end < len(item.texts)
                    and used + 1 + item.sizes[end] <= self._max_frame_bytes
                ):
                    used += 1 + item.sizes[end]
                    end += 1
                parts.append(item.header + ",".join(item.texts[start:end]) + "]}")
                size = used
                start = end
        if parts:
            flush()
        self.clear()
        return frames

    def _fits(self, size: int, count: int) -> bool:
        return size <= self._max_frame_bytes and count < self._max_messages
