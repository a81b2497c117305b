"""Server-Sent Events: an encoder that cannot be injected, and an incremental decoder.

Payload lines are split on every line terminator SSE knows (CRLF, LF, CR), so
no byte of a payload can end an event or start a field: a decoder joins the
``data:`` lines back with LF. Binary payloads go base64 (RFC 4648), which has
no terminators at all.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "SSEDecoder",
    "SSEEvent",
    "encode_comment",
    "encode_control",
    "encode_data",
    "encode_event",
]

_LINES: Final = re.compile(rb"\r\n|\r|\n")
_BASE64_LINE: Final = 76 * 1024


def encode_event(
    data: bytes, *, event: str | None = None, id: str | None = None
) -> bytes:
    """Encode one event; ``data`` may contain any line terminators.

    Raises:
        ValueError: ``event`` or ``id`` contains a line terminator, which
            would end the field early and let the rest pose as new fields.
    """
    parts: list[bytes] = []
    if event is not None:
        parts.append(b"event: " + _field_value(event, "event") + b"\n")
    if id is not None:
        parts.append(b"id: " + _field_value(id, "id") + b"\n")
    for line in _LINES.split(data):
        # Decoders drop one space after the colon: a line that starts with one
        # gets an extra space, so its own survives.
        parts.append((b"data: " if line.startswith(b" ") else b"data:") + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def _field_value(value: str, name: str) -> bytes:
    encoded = value.encode()
    if _LINES.search(encoded):
        raise ValueError(f"SSE {name} must not contain a line terminator: {value!r}")
    return encoded


def encode_data(payload: bytes, encoding: str | None) -> bytes:
    """A Durable Streams ``event: data`` (base64 when ``encoding`` says so)."""
    if encoding == "base64":
        text = base64.b64encode(payload)
        lines = [text[i : i + _BASE64_LINE] for i in range(0, len(text), _BASE64_LINE)]
        return (
            b"event: data\n"
            + b"".join(b"data:" + x + b"\n" for x in lines or [b""])
            + b"\n"
        )
    return encode_event(payload, event="data")


def encode_control(json_payload: bytes) -> bytes:
    """A Durable Streams ``event: control`` carrying a JSON object.

    Compact JSON is one ``data:`` line; pretty-printed JSON is split like
    any payload, so its line breaks cannot end the event.
    """
    return encode_event(json_payload, event="control")


def encode_comment(text: str = "") -> bytes:
    """A comment (heartbeat): one ``:`` line per line of ``text``; decoders skip it."""
    lines = _LINES.split(text.encode())
    return b"".join(b": " + line + b"\n" for line in lines) + b"\n"


@dataclass(slots=True)
class SSEEvent:
    """One decoded event."""

    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass(slots=True)
class SSEDecoder:
    """Incremental decoder: feed bytes, take complete events (WHATWG rules)."""

    _buffer: bytes = b""
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None
    _pending_cr: bool = False

    def receive_data(self, chunk: bytes) -> list[SSEEvent]:
        """Feed bytes; return the events they complete."""
        events: list[SSEEvent] = []
        buffer = self._buffer + chunk
        if not buffer:
            return events  # an empty chunk must not forget a pending CR
        if self._pending_cr and buffer.startswith(b"\n"):
            buffer = buffer[1:]
        self._pending_cr = False
        start = 0
        for match in _LINES.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer):
                self._pending_cr = True  # may be the first half of CRLF
            line = buffer[start : match.start()].decode("utf-8", "replace")
            start = match.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""  # WHATWG: no data, no event; the type resets
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
