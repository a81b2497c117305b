"""How each stored event changes a session's state (:meth:`SessionState.apply`).

A fold trusts its event: validation accepted it before it was stored. What a
fold cannot use (a delta for a message it does not know, a second start) it
skips instead of raising, so rebuilding a state from any stored log succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .events import Event
from .parts import TEXT_PART_TYPES, parse_part_body
from .records import ControlRequest, OpenMessage, OpenRun, Participant

if TYPE_CHECKING:
    from .state import SessionState

__all__ = [
    "fold_event",
]


def fold_event(state: SessionState, event: Event) -> None:
    """Fold ``event`` into ``state`` (offset order is the caller's to keep)."""
    actor = event.actor
    if not actor.is_server and actor.id not in state.participants:
        state.participants[actor.id] = Participant(actor.id, actor.role, actor.name)
    fold = _FOLDS.get(event.type)
    if fold is not None:
        fold(state, event, event.data)


def _touch(state: SessionState, run_id: str | None, ts: str) -> None:
    run = state.runs.get(run_id) if run_id is not None else None
    if run is not None:
        run.last_activity = ts


def _message(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    state.ended_messages[data["message_id"]] = event.visibility
    _touch(state, data.get("run_id"), event.ts)


def _start(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    message_id = data["message_id"]
    if message_id in state.messages or message_id in state.ended_messages:
        return
    state.messages[message_id] = OpenMessage(
        message_id,
        data["role"],
        event.actor,
        event.visibility,
        data.get("run_id"),
        event.offset,
        event.ts,
    )
    _touch(state, data.get("run_id"), event.ts)


def _delta(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    message = state.messages.get(data["message_id"])
    if message is None:
        return
    message.next_seq = data["seq"] + 1
    message.last_activity = event.ts
    _touch(state, message.run_id, event.ts)
    index, part_type = data["part_index"], data["part_type"]
    if not message.fold.fits(index, part_type):
        return
    if part_type in TEXT_PART_TYPES:
        message.fold.add_text(index, part_type, data["text"])
    else:
        message.fold.set_part(index, parse_part_body(part_type, data["data"], "data"))


def _end(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    message = state.messages.pop(data["message_id"], None)
    state.ended_messages[data["message_id"]] = event.visibility
    if message is not None:
        _touch(state, message.run_id, event.ts)


def _run_start(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    run_id = data["run_id"]
    if run_id not in state.runs and run_id not in state.ended_runs:
        state.runs[run_id] = OpenRun(
            run_id,
            event.actor,
            event.visibility,
            event.offset,
            event.ts,
            data.get("in_reply_to"),
        )


def _run_end(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    state.runs.pop(data["run_id"], None)
    state.ended_runs[data["run_id"]] = event.visibility


def _tool(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    _touch(state, data.get("run_id"), event.ts)


def _request(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    state.requests[data["request_id"]] = ControlRequest(
        data["request_id"], event.actor.id, data["mode"], event.visibility
    )
    if data["mode"] == "cold":
        state.controller_role = state.controller = None


def _accept(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    # The first accept answers every pending request: a later one is refused.
    for request in state.requests.values():
        request.accepted = True
    state.controller_role, state.controller = event.actor.role, event.actor.id


def _release(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    participant = state.participants.get(data.get("to", ""))
    if participant is None:
        state.controller_role = state.controller = None
    else:
        state.controller_role, state.controller = participant.role, participant.id


def _membership(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    who = data["participant"]
    state.participants[who["id"]] = Participant(
        who["id"],
        who["role"],
        who.get("name"),
        member=event.type == "participant.joined",
        staff=event.visibility == "staff",
    )


def _updated(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    state.customer = data.get("customer", state.customer)


def _closed(state: SessionState, event: Event, data: dict[str, Any]) -> None:
    state.closed = True


_Fold = Callable[["SessionState", Event, dict[str, Any]], None]
_FOLDS: Final[dict[str, _Fold]] = {
    "message": _message,
    "message.start": _start,
    "message.delta": _delta,
    "message.end": _end,
    "run.start": _run_start,
    "run.end": _run_end,
    "tool.call": _tool,
    "tool.result": _tool,
    "control.request": _request,
    "control.accept": _accept,
    "control.release": _release,
    "participant.joined": _membership,
    "participant.left": _membership,
    "session.updated": _updated,
    "session.closed": _closed,
}
