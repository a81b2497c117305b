"""Message parts, and the fold that rebuilds them from streamed deltas.

A message is a list of parts. They map one to one onto the Vercel AI SDK's
UI message parts and AG-UI events:

=================  ==================================================
``type``           fields (``?`` optional)
=================  ==================================================
``text``           ``text``
``reasoning``      ``text``
``tool-call``      ``tool_call_id``, ``tool_name``, ``input`` (any JSON)
``tool-result``    ``tool_call_id``, ``output`` (any JSON), ``tool_name?``,
                   ``is_error?``
``file``           ``url``, ``media_type``, ``name?``
``data-<name>``    ``data`` (any JSON), ``id?``
=================  ==================================================

A streamed message builds its parts with ``message.delta`` events, each
naming a ``part_index`` and a ``part_type``. A delta for a text part
(``text``, ``reasoning``) carries ``text``, appended to the part. A delta for
any other part carries ``data``: the part's fields without ``type``, which
replace the part. The first delta of a part must use the next free index, and
later deltas must keep its type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, cast

from ._fields import (
    check_keys,
    expect_bool,
    expect_name,
    expect_object,
    expect_str,
    fail,
)

__all__ = [
    "PART_TYPES",
    "TEXT_PART_TYPES",
    "DataPart",
    "FilePart",
    "Part",
    "PartsFold",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "is_part_type",
    "parse_part",
    "parse_part_body",
    "parse_parts",
]

PART_TYPES: Final = ("text", "reasoning", "tool-call", "tool-result", "file")
"""The fixed part types; ``data-<name>`` parts come in addition."""

TEXT_PART_TYPES: Final = frozenset({"text", "reasoning"})
"""Part types whose deltas carry ``text`` to append."""

_DATA_TYPE: Final = re.compile(r"\Adata-([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\Z")
_MEDIA_TYPE: Final = re.compile(r"\A[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text shown to the reader."""

    text: str

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return "text"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """The model's reasoning, shown apart from its answer."""

    text: str

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return "reasoning"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        return {"type": "reasoning", "text": self.text}


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call the assistant made, with its input."""

    tool_call_id: str
    tool_name: str
    input: Any

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return "tool-call"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        return {
            "type": "tool-call",
            "tool_call_id": self.tool_call_id,
            "tool_name": self.tool_name,
            "input": self.input,
        }


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The output of a tool call; ``is_error`` marks a failed call."""

    tool_call_id: str
    output: Any
    tool_name: str | None = None
    is_error: bool = False

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return "tool-result"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        obj: dict[str, Any] = {
            "type": "tool-result",
            "tool_call_id": self.tool_call_id,
            "output": self.output,
        }
        if self.tool_name is not None:
            obj["tool_name"] = self.tool_name
        if self.is_error:
            obj["is_error"] = True
        return obj


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file by URL (``https:``, or a ``data:`` URL for small files)."""

    url: str
    media_type: str
    name: str | None = None

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return "file"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        obj: dict[str, Any] = {
            "type": "file",
            "url": self.url,
            "media_type": self.media_type,
        }
        if self.name is not None:
            obj["name"] = self.name
        return obj


@dataclass(frozen=True, slots=True)
class DataPart:
    """App data of type ``data-<name>`` (a card, a status, an order summary)."""

    name: str
    data: Any
    id: str | None = None

    @property
    def part_type(self) -> str:
        """The part's ``type``."""
        return f"data-{self.name}"

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without absent optional fields."""
        obj: dict[str, Any] = {"type": self.part_type, "data": self.data}
        if self.id is not None:
            obj["id"] = self.id
        return obj


Part: TypeAlias = (
    TextPart | ReasoningPart | ToolCallPart | ToolResultPart | FilePart | DataPart
)
"""Any message part."""


def is_part_type(name: str) -> bool:
    """Whether ``name`` is a part type: a fixed one or ``data-<name>``."""
    return name in PART_TYPES or _DATA_TYPE.match(name) is not None


def parse_part(value: object, path: str = "part") -> Part:
    """Parse one part from its JSON object (with ``type``).

    Raises:
        InvalidEvent: not an object, an unknown type, a missing, unknown or
            mistyped field.
    """
    obj = expect_object(value, path)
    if "type" not in obj:
        fail("is required", f"{path}.type")
    part_type = expect_str(obj["type"], f"{path}.type")
    body = {key: item for key, item in obj.items() if key != "type"}
    return parse_part_body(part_type, body, path)


def parse_part_body(part_type: str, value: object, path: str) -> Part:
    """Parse a part of type ``part_type`` from its fields without ``type``.

    This is the form a ``message.delta`` for a non-text part carries in
    ``data``.

    Raises:
        InvalidEvent: an unknown type, a missing, unknown or mistyped field.
    """
    body = expect_object(value, path)
    if part_type in TEXT_PART_TYPES:
        check_keys(body, path, ("text",))
        text = expect_str(body["text"], f"{path}.text")
        return TextPart(text) if part_type == "text" else ReasoningPart(text)
    if part_type == "tool-call":
        check_keys(body, path, ("tool_call_id", "tool_name", "input"))
        return ToolCallPart(
            expect_name(body["tool_call_id"], f"{path}.tool_call_id"),
            expect_name(body["tool_name"], f"{path}.tool_name"),
            body["input"],
        )
    if part_type == "tool-result":
        check_keys(body, path, ("tool_call_id", "output"), ("tool_name", "is_error"))
        tool_name = body.get("tool_name")
        return ToolResultPart(
            expect_name(body["tool_call_id"], f"{path}.tool_call_id"),
            body["output"],
            None if tool_name is None else expect_name(tool_name, f"{path}.tool_name"),
            expect_bool(body.get("is_error", False), f"{path}.is_error"),
        )
    if part_type == "file":
        check_keys(body, path, ("url", "media_type"), ("name",))
        media_type = expect_str(body["media_type"], f"{path}.media_type")
        if not _MEDIA_TYPE.match(media_type):
            fail("must be a media type such as image/png", f"{path}.media_type")
        url = expect_str(body["url"], f"{path}.url")
        if not url:
            fail("must not be empty", f"{path}.url")
        name = body.get("name")
        return FilePart(
            url, media_type, None if name is None else expect_name(name, f"{path}.name")
        )
    match = _DATA_TYPE.match(part_type)
    if match is None:
        fail(f"unknown part type {part_type[:80]!r}", f"{path}.type")
    check_keys(body, path, ("data",), ("id",))
    part_id = body.get("id")
    return DataPart(
        match[1],
        body["data"],
        None if part_id is None else expect_name(part_id, f"{path}.id"),
    )


def parse_parts(value: object, path: str = "parts") -> list[Part]:
    """Parse a JSON array of parts (it may be empty).

    Raises:
        InvalidEvent: not an array, or a bad part.
    """
    if not isinstance(value, list):
        fail("must be an array", path)
    return [parse_part(item, f"{path}[{index}]") for index, item in enumerate(value)]


class PartsFold:
    """The parts of a streamed message, rebuilt delta by delta.

    Text is kept as a list of chunks and joined when read, so folding a long
    message costs linear time, not quadratic.
    """

    __slots__ = ("_types", "_values")

    def __init__(self, parts: Iterable[Part] = ()) -> None:
        self._types: list[str] = []
        self._values: list[list[str] | Part] = []
        for part in parts:
            if isinstance(part, TextPart | ReasoningPart):
                self._types.append(part.part_type)
                self._values.append([part.text])
            else:
                self._types.append(part.part_type)
                self._values.append(part)

    def __len__(self) -> int:
        return len(self._types)

    def fits(self, part_index: int, part_type: str) -> bool:
        """Whether a delta may write ``part_type`` at ``part_index``.

        It may at the next free index, or at a part of the same type.
        """
        return part_index == len(self._types) or (
            part_index < len(self._types) and self._types[part_index] == part_type
        )

    def check(self, part_index: int, part_type: str, path: str = "data") -> None:
        """Check that a delta may write ``part_type`` at ``part_index``.

        Raises:
            InvalidEvent: the index skips past the next free one, or names a
                part of another type.
        """
        if part_index > len(self._types):
            fail(
                f"skips ahead: the next new part has index {len(self._types)}",
                f"{path}.part_index",
            )
        if not self.fits(part_index, part_type):
            fail(
                f"part {part_index} has type {self._types[part_index]!r}",
                f"{path}.part_type",
            )

    def add_text(self, part_index: int, part_type: str, text: str) -> None:
        """Append ``text`` to a text part, opening it at the next free index."""
        if part_index == len(self._types):
            self._types.append(part_type)
            self._values.append([text])
        else:
            # check() keeps a text part's type, so its value is its chunks.
            cast(list[str], self._values[part_index]).append(text)

    def set_part(self, part_index: int, part: Part) -> None:
        """Set (or open, at the next free index) a non-text part."""
        if part_index == len(self._types):
            self._types.append(part.part_type)
            self._values.append(part)
        else:
            self._values[part_index] = part

    def parts(self) -> list[Part]:
        """The parts so far."""
        parts: list[Part] = []
        for part_type, value in zip(self._types, self._values, strict=True):
            if isinstance(value, list):
                if len(value) > 1:
                    value[:] = ["".join(value)]
                text = value[0]
                parts.append(
                    TextPart(text) if part_type == "text" else ReasoningPart(text)
                )
            else:
                parts.append(value)
        return parts
