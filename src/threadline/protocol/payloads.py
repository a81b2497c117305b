"""Event types and the shape of their ``data``.

Every type of PRODUCT.md's table, with its fields (``?`` optional):

=======================  =====================================================
type                     ``data``
=======================  =====================================================
``message``              ``message_id``, ``role``, ``parts``, ``run_id?``,
                         ``metadata?``
``message.start``        ``message_id``, ``role``, ``run_id?``, ``metadata?``
``message.delta``        ``message_id``, ``seq``, ``part_index``,
                         ``part_type``, and ``text`` (text parts) or ``data``
                         (other parts)
``message.end``          ``message_id``, ``status``, ``reason?``
``run.start``            ``run_id``, ``in_reply_to?`` (a message id)
``run.end``              ``run_id``, ``status``, ``reason?``
``run.cancel``           ``run_id``, ``reason?``
``tool.call``            ``tool_call_id``, ``tool_name``, ``input``,
                         ``run_id?``
``tool.result``          ``tool_call_id``, ``output``, ``tool_name?``,
                         ``is_error?``, ``run_id?``
``control.request``      ``request_id``, ``mode`` (``warm``/``cold``),
                         ``reason?``
``control.accept``       ``request_id``
``control.release``      ``to?`` (a participant id)
``participant.joined``   ``participant`` (``{id, role, name?}``)
``participant.left``     ``participant``
``note``                 ``text``
``session.updated``      at least one of ``customer``, ``channel``,
                         ``priority``, ``language``, ``tags``, ``attributes``
``session.closed``       ``reason?``
``redaction``            ``offset``, ``reason?``
``queue.added``          ``session``, ``reason``, ``cause`` (an offset),
                         ``request_id?``, ``mode?``, ``customer?``,
                         ``metadata?`` (the waiting queue's log only)
``queue.removed``        ``session``, ``reason``, ``cause`` (the queue log)
``session.created``      ``session``, ``controller_role``, ``customer?``,
                         ``metadata?`` (the new-sessions feed only)
``x.<name>``             any object (application events)
=======================  =====================================================

``role`` is ``user``, ``assistant`` or ``system``; ``status`` is
``complete``, ``cancelled`` or ``error``. Unknown fields are refused. Stored
message events may also carry ``start_offset``, which the server sets and a
draft may not; so may the events of a compact read
(:mod:`~threadline.protocol.compaction`): a compacted ``message.start`` its
``parts`` so far, a compacted ``message`` its ``status`` and ``reason`` when
it did not complete, and a compacted ``message.delta`` carries ``parts``
(each ``{part_index, part_type, text | data}``: what the part gained) instead
of ``part_index``, ``part_type`` and ``text`` or ``data``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias

from ..exceptions import InvalidOffset
from ._fields import (
    check_keys,
    expect_bool,
    expect_choice,
    expect_id,
    expect_int,
    expect_name,
    expect_object,
    expect_str,
    fail,
)
from .actors import Actor
from .offsets import Offset
from .parts import TEXT_PART_TYPES, is_part_type, parse_part_body, parse_parts

__all__ = [
    "CONTROL_MODES",
    "END_STATUSES",
    "EVENT_TYPES",
    "MESSAGE_ROLES",
    "MESSAGE_TYPES",
    "QUEUE_REASONS",
    "VISIBILITIES",
    "Visibility",
    "check_data",
    "check_visibility",
    "default_visibility",
    "is_event_type",
    "parse_target_offset",
]

Visibility: TypeAlias = Literal["all", "staff"]
"""Who reads an event: everyone, or staff only."""

VISIBILITIES: Final = ("all", "staff")
MESSAGE_ROLES: Final = ("user", "assistant", "system")
END_STATUSES: Final = ("complete", "cancelled", "error")
CONTROL_MODES: Final = ("warm", "cold")

MESSAGE_TYPES: Final = frozenset(
    {"message", "message.start", "message.delta", "message.end"}
)
"""The floor-controlled types (for assistant-side messages)."""

_APP_TYPE: Final = re.compile(r"\Ax(?:\.[A-Za-z0-9_-]+)+\Z")
_APP_TYPE_LIMIT: Final = 64
_STAFF_BY_DEFAULT: Final = frozenset(
    {
        "tool.call",
        "tool.result",
        "note",
        "queue.added",
        "queue.removed",
        "session.created",
    }
)
_STAFF_ONLY: Final = frozenset(
    {"note", "queue.added", "queue.removed", "session.created"}
)

QUEUE_REASONS: Final = ("requested", "released", "accepted", "handed", "closed")
"""Why a session entered (``requested``: a pending control request;
``released``: an empty floor) or left the waiting queue (``accepted``,
``handed``: the floor went to someone, ``closed``)."""

_Check: TypeAlias = Callable[[object, str], object]


# Field checks beyond _fields


def _json(value: object, path: str) -> object:
    return value


def _part_type(value: object, path: str) -> str:
    text = expect_str(value, path)
    if not is_part_type(text):
        fail(f"unknown part type {text[:80]!r}", path)
    return text


def parse_target_offset(value: object, path: str) -> Offset:
    """Parse an offset that a field names (a redaction's target).

    Raises:
        InvalidEvent: not a string, or not an offset.
    """
    try:
        return Offset.parse(expect_str(value, path))
    except InvalidOffset:
        fail("must be an offset", path)


def _participant(value: object, path: str) -> Actor:
    actor = Actor.parse(value, path)
    if actor.is_server or actor.device is not None:
        fail("must be a participant {id, role, name?}", path)
    return actor


def _tags(value: object, path: str) -> object:
    if not isinstance(value, list):
        fail("must be an array", path)
    for index, tag in enumerate(value):
        expect_name(tag, f"{path}[{index}]")
    return value


def _controller_role(value: object, path: str) -> str | None:
    """The role holding the floor at creation, ``None`` for an empty floor."""
    if value is None:
        return None
    return expect_choice(value, path, ("ai", "agent", "supervisor", "service"))


def _choice(*choices: str) -> _Check:
    return lambda value, path: expect_choice(value, path, choices)


_ROLE: Final = _choice(*MESSAGE_ROLES)
_STATUS: Final = _choice(*END_STATUSES)

# type -> (required fields, optional fields)
_SPECS: Final[dict[str, tuple[dict[str, _Check], dict[str, _Check]]]] = {
    "message": (
        {"message_id": expect_id, "role": _ROLE, "parts": parse_parts},
        {"run_id": expect_id, "metadata": expect_object},
    ),
    "message.start": (
        {"message_id": expect_id, "role": _ROLE},
        {"run_id": expect_id, "metadata": expect_object},
    ),
    "message.delta": (
        {
            "message_id": expect_id,
            "seq": expect_int,
            "part_index": expect_int,
            "part_type": _part_type,
        },
        {"text": expect_str, "data": _json},
    ),
    "message.end": (
        {"message_id": expect_id, "status": _STATUS},
        {"reason": expect_str},
    ),
    "run.start": ({"run_id": expect_id}, {"in_reply_to": expect_id}),
    "run.end": ({"run_id": expect_id, "status": _STATUS}, {"reason": expect_str}),
    "run.cancel": ({"run_id": expect_id}, {"reason": expect_str}),
    "tool.call": (
        {"tool_call_id": expect_name, "tool_name": expect_name, "input": _json},
        {"run_id": expect_id},
    ),
    "tool.result": (
        {"tool_call_id": expect_name, "output": _json},
        {"run_id": expect_id, "tool_name": expect_name, "is_error": expect_bool},
    ),
    "control.request": (
        {"request_id": expect_id, "mode": _choice(*CONTROL_MODES)},
        {"reason": expect_str},
    ),
    "control.accept": ({"request_id": expect_id}, {}),
    "control.release": ({}, {"to": expect_name}),
    "participant.joined": ({"participant": _participant}, {}),
    "participant.left": ({"participant": _participant}, {}),
    "note": ({"text": expect_str}, {}),
    "session.updated": (
        {},
        {
            "customer": expect_name,
            "channel": expect_name,
            "priority": expect_int,
            "language": expect_name,
            "tags": _tags,
            "attributes": expect_object,
        },
    ),
    "session.closed": ({}, {"reason": expect_str}),
    "redaction": ({"offset": parse_target_offset}, {"reason": expect_str}),
    "queue.added": (
        {
            "session": expect_id,
            "reason": _choice(*QUEUE_REASONS),
            "cause": parse_target_offset,
        },
        {
            "request_id": expect_id,
            "mode": _choice(*CONTROL_MODES),
            "customer": expect_name,
            "metadata": expect_object,
        },
    ),
    "queue.removed": (
        {
            "session": expect_id,
            "reason": _choice(*QUEUE_REASONS),
            "cause": parse_target_offset,
        },
        {},
    ),
    "session.created": (
        {"session": expect_id, "controller_role": _controller_role},
        {"customer": expect_name, "metadata": expect_object},
    ),
}

_STORED_ONLY: Final[dict[str, dict[str, _Check]]] = {
    "message": {
        "start_offset": parse_target_offset,
        "status": _STATUS,
        "reason": expect_str,
    },
    "message.start": {"start_offset": parse_target_offset, "parts": parse_parts},
    "message.delta": {"start_offset": parse_target_offset},
    "message.end": {"start_offset": parse_target_offset},
}

EVENT_TYPES: Final = tuple(sorted(_SPECS))
"""Every type of the event table; applications add ``x.<name>`` types."""


def is_event_type(name: str) -> bool:
    """Whether ``name`` is a known type or an application type ``x.<name>``."""
    return name in _SPECS or (
        len(name) <= _APP_TYPE_LIMIT and _APP_TYPE.match(name) is not None
    )


def default_visibility(event_type: str) -> Visibility:
    """The visibility of a draft that names none.

    ``staff`` for ``tool.call``, ``tool.result`` and ``note``; ``all`` for the
    rest. (A delta or end of a message, and the end of a run, take the
    visibility of what they continue: :class:`SessionState` decides those.)
    """
    return "staff" if event_type in _STAFF_BY_DEFAULT else "all"


def check_visibility(event_type: str, visibility: str | None, path: str) -> None:
    """Check a visibility, absent (``None``) or not.

    Raises:
        InvalidEvent: not ``all`` or ``staff``, or a ``note`` visible to all.
    """
    if visibility is None:
        return
    expect_choice(visibility, path, VISIBILITIES)
    if event_type in _STAFF_ONLY and visibility != "staff":
        fail(f"a {event_type} is always staff", path)


def check_data(
    event_type: str, data: dict[str, Any], *, stored: bool, path: str = "data"
) -> None:
    """Check the ``data`` of a known or application event type.

    Args:
        event_type: A type for which :func:`is_event_type` holds.
        data: The JSON object.
        stored: Whether this is a stored event's data, which may carry the
            fields the server sets (``start_offset``).
        path: Where ``data`` is, for error messages.

    Raises:
        InvalidEvent: a missing, unknown or mistyped field.
    """
    spec = _SPECS.get(event_type)
    if spec is None:
        return  # x.<name>: any object
    if stored and event_type == "message.delta" and "parts" in data:
        _check_coalesced(data, path)
        return
    required, optional = spec
    if stored and event_type in _STORED_ONLY:
        optional = {**optional, **_STORED_ONLY[event_type]}
    check_keys(data, path, required, optional)
    for key, value in data.items():
        (required.get(key) or optional[key])(value, f"{path}.{key}")
    if event_type == "message.delta":
        _check_delta(data, path)
    elif event_type == "session.updated" and not data:
        fail("must change at least one field", path)


def _check_coalesced(data: dict[str, Any], path: str) -> None:
    """A compacted delta: what each part gained since a compact read's offset."""
    check_keys(data, path, ("message_id", "seq", "parts"), ("start_offset",))
    expect_id(data["message_id"], f"{path}.message_id")
    expect_int(data["seq"], f"{path}.seq")
    if "start_offset" in data:
        parse_target_offset(data["start_offset"], f"{path}.start_offset")
    parts = data["parts"]
    if not isinstance(parts, list) or not parts:
        fail("must be a non-empty array", f"{path}.parts")
    for index, value in enumerate(parts):
        item = f"{path}.parts[{index}]"
        gained = expect_object(value, item)
        check_keys(gained, item, ("part_index", "part_type"), ("text", "data"))
        expect_int(gained["part_index"], f"{item}.part_index")
        _part_type(gained["part_type"], f"{item}.part_type")
        if "text" in gained:
            expect_str(gained["text"], f"{item}.text")
        _check_delta(gained, item)


def _check_delta(data: dict[str, Any], path: str) -> None:
    part_type = data["part_type"]
    if part_type in TEXT_PART_TYPES:
        if "text" not in data or "data" in data:
            fail(f"a {part_type} delta carries text, not data", path)
    elif "data" not in data or "text" in data:
        fail(f"a {part_type} delta carries data, not text", path)
    else:
        parse_part_body(part_type, data["data"], f"{path}.data")
