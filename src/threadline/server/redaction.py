"""What a ``redaction`` does to its session, in the commit that stores it.

A ``redaction {offset, reason?}`` names an event by its staff-view offset.
In the same transaction as the redaction event itself, the server:

1. rewrites the target's stored envelope in the staff view, and in the
   customer view when the target is visible there: ``data`` blanked as
   :func:`~threadline.protocol.redaction.redact_data` says, ``"redacted":
   true`` added, every other field (and so ``hash``) unchanged
   (:meth:`~threadline.storage.index.Txn.replace`);
2. keeps the blanked data's digest, ``data_sha256``, in the index table
   ``redactions`` (``{session}\\n{view}\\n{offset}``), so that an audit
   export still links the event into its chain. Readers never see it;
3. refolds what was folded from the target: the parts of its message
   (the open message in the working state, or the folded message in
   ``messages``), a redacted ``message``'s parts, a ``message.end``'s reason.

Every read path reads the rewritten records or the refolded state: raw and
compact reads, SSE, WebSocket catch-up and the live feeds' recent events
(a feed drops them when it reads a redaction), the state snapshot. What was
already sent live is not recalled; readers get the ``redaction`` event and
may blank their copy.

**Where it shows.** A redaction is visible exactly where its target is:
``staff`` for a staff event, ``all`` for an event visible to all — and then
the customer view's copy names the target's customer-view offset, so no
offset betrays a staff event. A draft naming another visibility is refused
(``400 invalid_event``).

State the target's event changed (the floor, a session's metadata, a run) is
not undone: a redaction removes content, not history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..exceptions import InvalidEvent, StorageError
from ..protocol.audit import data_digest
from ..protocol.events import Event
from ..protocol.offsets import Offset
from ..protocol.parts import PartsFold, parse_parts
from ..protocol.payloads import Visibility
from ..protocol.redaction import fold_deltas, redact_data
from ..protocol.state import Accepted
from ..storage.index import Txn
from .session_writes import (
    ALL_PREFIX,
    FULL_PREFIX,
    MESSAGES,
    StoredEvents,
    WorkingState,
)

__all__ = ["REDACTIONS", "PlannedRedaction", "apply_redactions", "plan_redaction"]

REDACTIONS: Final = "redactions"  # {id}\n{view}\n{offset} -> {"data_sha256"}

_PAGE: Final = 1000
_VISIBILITY_KEY: Final = b'"visibility":"'


@dataclass(frozen=True, slots=True)
class PlannedRedaction:
    """A redaction accepted in this publish, to apply once its events are appended."""

    target: Offset
    """The staff-view offset of the event to blank."""
    visible_target: Offset | None
    """Its customer-view offset, when it is visible to all."""


def plan_redaction(
    txn: Txn,
    session_id: str,
    working: WorkingState,
    stored: StoredEvents,
    requested: str | None,
    accepted: Accepted,
    planned: list[PlannedRedaction],
) -> tuple[Accepted, dict[str, Any] | None]:
    """Place an accepted redaction: visible where its target is.

    Call it after validation (which checked that the target is an event of
    the session) and before storing the draft. Appends the redaction to
    ``planned``, for :func:`apply_redactions`.

    Args:
        requested: The visibility the publisher's draft named, if any.

    Returns:
        The accepted draft with its visibility, and the ``data`` of its
        customer-view copy (``None`` when it is staff).

    Raises:
        InvalidEvent: the draft names a visibility its target does not have.
    """
    draft = accepted.draft
    target = Offset.parse(draft.data["offset"])
    log = _StaffLog(txn, session_id, working, stored)
    visibility = _visibility(log.record(target.position))
    if requested is not None and requested != visibility:
        raise InvalidEvent(
            f"a redaction is visible where its target is ({visibility})", "visibility"
        )
    visible_target = None
    data = None
    if visibility == "all":
        later = log.count_visible(target.position, working.full_tail.position)
        visible_target = _offset_at(
            txn, ALL_PREFIX + session_id, working.all_tail.position - later
        )
        data = {**draft.data, "offset": str(visible_target)}
    planned.append(PlannedRedaction(target, visible_target))
    placed = dataclasses.replace(draft, visibility=visibility)
    return dataclasses.replace(accepted, draft=placed), data


def apply_redactions(
    txn: Txn,
    session_id: str,
    working: WorkingState,
    planned: list[PlannedRedaction],
) -> None:
    """Blank the targets and refold what came from them (the redaction's commit).

    Call it after the publish's events are appended to ``txn`` and before the
    working state is put: it may change open messages' parts. Redacting an
    event twice changes nothing more.
    """
    for redaction in planned:
        event = _blank(txn, session_id, FULL_PREFIX, "staff", redaction.target)
        if event is None:
            continue  # redacted before
        if redaction.visible_target is not None:
            shown = _blank(
                txn, session_id, ALL_PREFIX, "customer", redaction.visible_target
            )
            if shown is not None and shown.id != event.id:
                raise StorageError(f"session {session_id}: the views disagree")
        _refold(txn, session_id, working, event)


def _blank(
    txn: Txn, session_id: str, prefix: str, view: str, offset: Offset
) -> Event | None:
    """Rewrite one stored event blanked; its original (``None``: redacted before)."""
    name = prefix + session_id
    before = Offset(offset.generation, offset.position - 1)
    [record] = txn.read(name, before, limit=1)
    event = Event.parse(orjson.loads(record.data))
    if event.redacted:
        return None
    blank = dataclasses.replace(
        event, data=redact_data(event.type, event.data), redacted=True
    )
    txn.replace(name, offset, blank.serialize())
    digest = orjson.dumps({"data_sha256": data_digest(event.data)})
    txn.put(REDACTIONS, f"{session_id}\n{view}\n{offset}", digest)
    return event


def _refold(txn: Txn, session_id: str, working: WorkingState, event: Event) -> None:
    """Take the target's content out of the messages folded from it."""
    if event.type == "message":
        key = f"{session_id}\n{event.offset}"
        _update_folded(txn, key, lambda folded: {**folded, "parts": []})
        return
    if event.type not in ("message.delta", "message.end"):
        return  # a message.start's fields are not folded
    message_id = event.data["message_id"]
    start = Offset.parse(event.data["start_offset"])
    opened = working.state.messages.get(message_id)
    if opened is not None and opened.start_offset == start:
        parts = _fold(txn, session_id, message_id, start, working.full_tail)
        opened.fold = PartsFold(parse_parts(parts))
        return
    key = f"{session_id}\n{start}"
    if event.type == "message.end":
        _update_folded(txn, key, lambda folded: {**folded, "reason": None})
        return

    def refold(folded: dict[str, Any]) -> dict[str, Any]:
        end = Offset.parse(folded["end_offset"])
        return {**folded, "parts": _fold(txn, session_id, message_id, start, end)}

    _update_folded(txn, key, refold)


def _update_folded(
    txn: Txn, key: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    raw = txn.get(MESSAGES, key)
    if raw is not None:
        txn.put(MESSAGES, key, orjson.dumps(change(orjson.loads(raw))))


def _fold(
    txn: Txn, session_id: str, message_id: str, start: Offset, end: Offset
) -> list[dict[str, Any]]:
    """The parts of a message, folded again from its stored deltas."""
    deltas = []
    name = FULL_PREFIX + session_id
    position = start
    while position < end:
        wanted = min(_PAGE, end.position - position.position)
        page = txn.read(name, position, limit=wanted)
        if not page:
            break
        for record in page:
            envelope = orjson.loads(record.data)
            data = envelope["data"]
            if envelope["type"] == "message.delta" and data["message_id"] == message_id:
                deltas.append(data)
        position = page[-1].offset
    return fold_deltas(deltas)


def _visibility(raw: bytes) -> Visibility:
    """A stored envelope's visibility, without decoding it.

    ``Event.serialize`` writes ``visibility`` right after ``actor``, whose
    values are JSON strings (quotes escaped): the first ``"visibility":"`` is
    the envelope's own.
    """
    at = raw.find(_VISIBILITY_KEY)
    if at < 0:  # pragma: no cover - every stored envelope has one
        raise StorageError("stored event without a visibility")
    return "all" if raw[at + len(_VISIBILITY_KEY)] == ord("a") else "staff"


def _offset_at(txn: Txn, name: str, position: int) -> Offset:
    """The offset naming ``position`` of a session log as ``txn`` sees it; past
    its tail (this publish's events, not appended yet), the head generation's."""
    info = txn.info(name)
    if position > info.tail.position:
        return Offset(info.generation, position)
    return info.offset_at(position)


class _StaffLog:
    """The staff view as the publish sees it: the log, then this publish's events.

    The publish appends its events (``stored.full``) at its end; until then
    they are the last positions of the working state's tail.
    """

    def __init__(
        self, txn: Txn, session_id: str, working: WorkingState, stored: StoredEvents
    ) -> None:
        self._txn = txn
        self._name = FULL_PREFIX + session_id
        self._stored = stored
        self._logged = working.full_tail.position - len(stored.full)
        """The last position the log holds; this publish's events follow it."""

    def record(self, position: int) -> bytes:
        """The stored envelope at ``position``."""
        return self.records(position - 1, position)[0]

    def count_visible(self, low: int, high: int) -> int:
        """Events visible to all at positions ``(low, high]``."""
        count = 0
        while low < high:
            page = self.records(low, min(high, low + _PAGE))
            count += sum(_visibility(raw) == "all" for raw in page)
            low += len(page)
        return count

    def records(self, low: int, high: int) -> list[bytes]:
        """The envelopes at positions ``(low, high]``."""
        logged = self._logged
        found: list[bytes] = []
        if low < logged:
            after = _offset_at(self._txn, self._name, low)
            page = self._txn.read(self._name, after, limit=min(high, logged) - low)
            found += [record.data for record in page]
        found += self._stored.full[max(low, logged) - logged : max(0, high - logged)]
        return found
