"""Field readers and value checks shared by the wire messages.

Each raises :class:`~threadline.exceptions.ProtocolError` with the code
``invalid_message`` (``invalid_offset`` for offsets) and a message naming the
field, as ``subscribe.view must be one of raw, compact``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from ..exceptions import InvalidOffset, ProtocolError
from .codes import ErrorCode
from .frames import JSONObject
from .offsets import NOW, START

__all__ = [
    "CODE",
    "DEVICE",
    "GONE_REASONS",
    "RID",
    "ROLES",
    "SESSION",
    "STATUSES",
    "VIEWS",
    "check_actor",
    "check_choice",
    "check_event_offsets",
    "check_nonempty",
    "check_offset",
    "check_offset_param",
    "check_token",
    "fields",
    "match",
    "read_object",
    "read_objects",
    "read_optional_str",
    "read_str",
    "read_strs",
]

RID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SESSION: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
DEVICE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
VIEWS: Final = ("raw", "compact")
STATUSES: Final = ("active", "idle", "typing")
GONE_REASONS: Final = ("deleted", "forbidden", "offset_gone")
ROLES: Final = ("customer", "ai", "agent", "supervisor", "service", "server")
_OFFSET: Final = re.compile(r"[0-9]{16}_[0-9]{16}")
_MAX_TOKEN: Final = 16384


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(message, ErrorCode.INVALID_MESSAGE)


# Readers


def fields(
    obj: Mapping[str, object],
    name: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    *,
    strict: bool,
) -> None:
    """Refuse a missing required field; with ``strict``, an unknown one too."""
    for key in required:
        if key not in obj:
            raise _invalid(f"{name}: missing field {key!r}")
    if strict:
        for key in obj:
            if key != "type" and key not in required and key not in optional:
                raise _invalid(f"{name}: unknown field {key[:64]!r}")


def read_str(obj: Mapping[str, object], key: str, name: str) -> str:
    """A string field."""
    value = obj[key]
    if not isinstance(value, str):
        raise _invalid(f"{name}.{key} must be a string")
    return value


def read_optional_str(obj: Mapping[str, object], key: str, name: str) -> str | None:
    """A string field that may be absent (``null`` is not absent)."""
    return read_str(obj, key, name) if key in obj else None


def read_object(obj: Mapping[str, object], key: str, name: str) -> JSONObject:
    """An object field."""
    value = obj[key]
    if not isinstance(value, dict):
        raise _invalid(f"{name}.{key} must be an object")
    return value


def read_objects(
    obj: Mapping[str, object], key: str, name: str
) -> tuple[JSONObject, ...]:
    """An array-of-objects field."""
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise _invalid(f"{name}.{key} must be an array of objects")
    return tuple(value)


def read_strs(obj: Mapping[str, object], key: str, name: str) -> tuple[str, ...]:
    """An array-of-strings field."""
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _invalid(f"{name}.{key} must be an array of strings")
    return tuple(value)


# Checks


def match(pattern: re.Pattern[str], value: str, what: str) -> None:
    """``value`` matches ``pattern`` in full."""
    if pattern.fullmatch(value) is None:
        raise _invalid(f"{what} is malformed: {value[:64]!r}")


def check_offset(value: str, what: str) -> None:
    """``value`` is an offset (not ``-1`` or ``now``)."""
    if _OFFSET.fullmatch(value) is None:
        raise InvalidOffset(f"{what} is malformed: {value[:64]!r}")


def check_offset_param(value: str, what: str) -> None:
    """``value`` is an offset, ``-1`` or ``now``."""
    if value != START and value != NOW:
        check_offset(value, what)


def check_token(value: str, what: str) -> None:
    """``value`` is a plausible token: 1 to 16384 characters."""
    if not 0 < len(value) <= _MAX_TOKEN:
        raise _invalid(f"{what} must be 1 to {_MAX_TOKEN} characters")


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise _invalid(f"{what} must be one of {', '.join(choices)}")


def check_nonempty(values: Sequence[object], what: str) -> None:
    """``values`` has at least one item."""
    if not values:
        raise _invalid(f"{what} must not be empty")


def check_event_offsets(events: Sequence[JSONObject], what: str) -> None:
    """Every event has a string ``offset`` that is an offset."""
    for event in events:
        offset = event.get("offset")
        if not isinstance(offset, str):
            raise _invalid(f"{what}: an event has no string offset")
        check_offset(offset, f"{what} offset")


def check_actor(actor: JSONObject, what: str) -> None:
    """``actor`` has a non-empty string ``id`` and a known ``role``."""
    actor_id = actor.get("id")
    if not isinstance(actor_id, str) or not actor_id:
        raise _invalid(f"{what}.id must be a non-empty string")
    role = actor.get("role")
    if not isinstance(role, str):
        raise _invalid(f"{what}.role must be a string")
    check_choice(role, ROLES, f"{what}.role")
