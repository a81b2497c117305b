"""Strict readers for JSON-decoded values, shared by the event codecs.

Each reader takes the value and its path in the event (``data.parts[0].url``)
and raises :class:`~threadline.exceptions.InvalidEvent` naming that path. JSON
has no integer type of its own, so ``True`` is not an integer here, and
neither is ``1.0``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final, NoReturn

from ..exceptions import InvalidEvent

__all__ = [
    "ID_PATTERN",
    "check_keys",
    "expect_bool",
    "expect_choice",
    "expect_id",
    "expect_int",
    "expect_name",
    "expect_object",
    "expect_str",
    "fail",
]

ID_PATTERN: Final = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
"""Event, message, run and request ids: the session-id alphabet, 1–128 chars."""

_NAME_LIMIT: Final = 256
_INT_LIMIT: Final = 2**53 - 1  # exact in every JSON implementation (IEEE doubles)


def fail(message: str, path: str) -> NoReturn:
    """Raise :class:`InvalidEvent` for ``path``."""
    raise InvalidEvent(f"{path}: {message}", path)


def expect_object(value: object, path: str) -> dict[str, Any]:
    """A JSON object (a ``dict`` with string keys, as ``json.loads`` makes)."""
    if not isinstance(value, dict):
        fail("must be an object", path)
    return value


def check_keys(
    obj: Mapping[str, object],
    path: str,
    required: Collection[str],
    optional: Collection[str] = (),
) -> None:
    """Refuse a missing required key, or a key that is neither required nor optional."""
    for key in required:
        if key not in obj:
            fail("is required", f"{path}.{key}")
    for key in obj:
        if key not in required and key not in optional:
            fail("is not a known field", f"{path}.{key}")


def expect_str(value: object, path: str) -> str:
    """Any string, empty included."""
    if not isinstance(value, str):
        fail("must be a string", path)
    return value


def expect_name(value: object, path: str) -> str:
    """A non-empty string of at most 256 characters (names, URLs' kin)."""
    text = expect_str(value, path)
    if not 0 < len(text) <= _NAME_LIMIT:
        fail(f"must be 1 to {_NAME_LIMIT} characters", path)
    return text


def expect_id(value: object, path: str) -> str:
    """An id: ``[A-Za-z0-9._:-]{1,128}``."""
    text = expect_str(value, path)
    if not ID_PATTERN.match(text):
        fail("must match [A-Za-z0-9._:-]{1,128}", path)
    return text


def expect_int(value: object, path: str) -> int:
    """An integer (not a boolean, not a float) in ``0 .. 2**53 - 1``."""
    if type(value) is not int:
        fail("must be an integer", path)
    if not 0 <= value <= _INT_LIMIT:
        fail(f"must be in 0..{_INT_LIMIT}", path)
    return value


def expect_bool(value: object, path: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        fail("must be a boolean", path)
    return value


def expect_choice(value: object, path: str, choices: Collection[str]) -> str:
    """One of ``choices``."""
    text = expect_str(value, path)
    if text not in choices:
        fail(f"must be one of {', '.join(sorted(choices))}", path)
    return text
