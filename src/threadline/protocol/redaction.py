"""What a ``redaction`` leaves of an event: its place, not its content.

A ``redaction`` (``{offset, reason?}``, published by a supervisor or a
service) blanks the ``data`` of an earlier event. The stored event keeps its
offset, ``ts``, ``type``, ``id``, ``actor``, ``visibility`` and hashes, gains
``"redacted": true``, and its ``data`` keeps only the fields that give the
event its place in the session — ids, sequence numbers, part indexes and
types, roles, statuses, offsets — so that everything folded from the log
(compact reads, open and folded messages) still works. Everything a person
wrote or a tool returned is dropped or emptied:

=======================  ======================================================
type                     ``data`` after a redaction
=======================  ======================================================
``message``              ``message_id``, ``role``, ``run_id?``, ``parts: []``,
                         ``start_offset``
``message.start``        ``message_id``, ``role``, ``run_id?``, ``start_offset``
``message.delta``        ``message_id``, ``seq``, ``part_index``,
                         ``part_type``, ``start_offset``, and ``text: ""``
                         (text parts) or an empty body (other parts, below)
``message.end``          ``message_id``, ``status``, ``start_offset``
``run.*``                ``run_id``, ``in_reply_to?``, ``status?``
``tool.call``            ``tool_call_id``, ``tool_name``, ``run_id?``,
                         ``input: null``
``tool.result``          ``tool_call_id``, ``tool_name?``, ``is_error?``,
                         ``run_id?``, ``output: null``
``control.*``            ``request_id``, ``mode``, ``to`` (those it had)
``participant.*``        ``participant: {id, role}`` (no name)
``note``                 ``text: ""``
``redaction``            ``offset``
anything else            ``{}``
=======================  ======================================================

The empty body of a non-text part keeps its ids and type and empties the
rest: ``tool-call`` ``input: null``, ``tool-result`` ``output: null``,
``file`` ``url: "data:,"`` (the empty data URL, with its ``media_type``),
``data-<name>`` ``data: null``.

Redacting twice changes nothing more: :func:`redact_data` of redacted data is
that data. The chain still verifies because it covers ``data`` by its digest,
which the store keeps apart (see :mod:`threadline.protocol.audit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .parts import TEXT_PART_TYPES, PartsFold, parse_part_body

__all__ = ["EMPTY_FILE_URL", "fold_deltas", "redact_data"]

EMPTY_FILE_URL: Final = "data:,"
"""The ``url`` of a redacted ``file`` part: RFC 2397's empty data URL."""

# type -> the fields a redaction keeps, in this order (start_offset stays last:
# compact reads peek at it as the last key of a message event's data).
_KEEP: Final[dict[str, tuple[str, ...]]] = {
    "message": ("message_id", "role", "run_id"),
    "message.start": ("message_id", "role", "run_id"),
    "message.delta": ("message_id", "seq", "part_index", "part_type"),
    "message.end": ("message_id", "status"),
    "run.start": ("run_id", "in_reply_to"),
    "run.end": ("run_id", "status"),
    "run.cancel": ("run_id",),
    "tool.call": ("tool_call_id", "tool_name", "run_id"),
    "tool.result": ("tool_call_id", "tool_name", "is_error", "run_id"),
    "control.request": ("request_id", "mode"),
    "control.accept": ("request_id",),
    "control.release": ("to",),
    "redaction": ("offset",),
}

# type -> the content fields it gets back, emptied
_EMPTIED: Final[dict[str, dict[str, Any]]] = {
    "message": {"parts": []},
    "tool.call": {"input": None},
    "tool.result": {"output": None},
    "note": {"text": ""},
}

# non-text part type -> (kept fields, emptied fields) of its delta body
_BODIES: Final[dict[str, tuple[tuple[str, ...], dict[str, Any]]]] = {
    "tool-call": (("tool_call_id", "tool_name"), {"input": None}),
    "tool-result": (("tool_call_id", "tool_name", "is_error"), {"output": None}),
    "file": (("media_type",), {"url": EMPTY_FILE_URL}),
}


def redact_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` a redaction leaves of an event of ``event_type``.

    ``data`` is the stored event's (it may carry ``start_offset``); a new
    object is returned and ``data`` is left as it is.
    """
    if event_type in ("participant.joined", "participant.left"):
        participant = data.get("participant")
        if not isinstance(participant, dict):
            return {}
        kept = {k: participant[k] for k in ("id", "role") if k in participant}
        return {"participant": kept}
    blank = {key: data[key] for key in _KEEP.get(event_type, ()) if key in data}
    blank.update(_EMPTIED.get(event_type, {}))
    if event_type == "message.delta":
        blank.update(_delta_content(data))
    if "start_offset" in data and event_type.startswith("message"):
        blank["start_offset"] = data["start_offset"]
    return blank


def _delta_content(data: dict[str, Any]) -> dict[str, Any]:
    """A redacted delta's content: no text, or the emptied body of its part."""
    part_type = data.get("part_type")
    if part_type in TEXT_PART_TYPES or not isinstance(part_type, str):
        return {"text": ""}
    body = data.get("data")
    body = body if isinstance(body, dict) else {}
    kept, emptied = _BODIES.get(part_type, (("id",), {"data": None}))
    blank = {key: body[key] for key in kept if key in body}
    blank.update(emptied)
    return {"data": blank}


def fold_deltas(deltas: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts a message's deltas build, as JSON (as the session state folds them).

    Args:
        deltas: The ``data`` of a message's ``message.delta`` events, in
            offset order; redacted ones fold as their emptied content.

    Raises:
        InvalidEvent: a delta's body does not parse (the store is corrupt).
    """
    fold = PartsFold()
    for data in deltas:
        index, part_type = data["part_index"], data["part_type"]
        if not fold.fits(index, part_type):
            continue  # never stored: validation refuses it
        if part_type in TEXT_PART_TYPES:
            fold.add_text(index, part_type, data["text"])
        else:
            fold.set_part(index, parse_part_body(part_type, data["data"], "data"))
    return [part.to_json() for part in fold.parts()]
