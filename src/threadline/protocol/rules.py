"""The rules a session applies to the next event (:meth:`SessionState.validate`).

One rule per event type. Each applies the rights table
(:mod:`~threadline.protocol.rights`) and the floor, then the type's own
checks against the state, and says which visibility the draft gets and which
server events go with it. A rule never changes the state.

Visibility holds on every path (PRODUCT.md guarantee 5): a customer is told
that a staff message, run or request is unknown, never that it exists, and
staff may not name a staff thing in an event visible to all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Final, TypeAlias

from ..exceptions import (
    AlreadyAccepted,
    AlreadyEnded,
    DeltaGap,
    DuplicateReference,
    Forbidden,
    NotInControl,
    UnknownReference,
)
from ._fields import fail
from .actors import Actor
from .events import EventDraft
from .payloads import Visibility, default_visibility, parse_target_offset
from .records import OpenMessage, OpenRun, end_message, end_run
from .rights import Permission, granting_cap, publish_permission

if TYPE_CHECKING:
    from .state import SessionState

__all__ = [
    "FLOOR_ROLES",
    "Verdict",
    "check_event",
    "holds",
]

FLOOR_ROLES: Final = frozenset({"ai", "agent", "supervisor"})
"""Roles that can hold the floor (the controller's role)."""

Verdict: TypeAlias = tuple[Visibility, list[EventDraft], list[EventDraft]]
"""A rule's answer: the draft's visibility, and the server events to store
before and after it."""

_Caps: TypeAlias = Collection[str]


def check_event(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    """Apply the rule of ``draft``'s type (see :meth:`SessionState.validate`)."""
    return _RULES.get(draft.type, _other)(state, draft, actor, caps)


def holds(role: str | None, ident: str | None, actor: Actor) -> bool:
    """Whether ``actor`` holds the floor that ``role`` and ``ident`` hold.

    ``ident`` ``None`` means any participant of ``role``; ``role`` ``None``
    means an empty floor, which nobody holds.
    """
    return role is not None and actor.role == role and ident in (None, actor.id)


def _require(
    state: SessionState,
    actor: Actor,
    draft: EventDraft,
    caps: _Caps,
    message_role: str = "user",
) -> None:
    if actor.is_server:
        return
    permission = publish_permission(actor.role, draft.type, message_role)
    if permission is Permission.NEVER or (
        permission is Permission.GRANTED and granting_cap(draft.type) not in caps
    ):
        raise Forbidden(f"a {actor.role} may not publish {draft.type}")
    if permission is Permission.CONTROLLER and not state.holds_floor(actor):
        raise NotInControl(f"{draft.type} needs the floor")


# Rules, one per type


def _message(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # message, message.start
    data = draft.data
    _require(state, actor, draft, caps, data["role"])
    message_id = data["message_id"]
    if message_id in state.messages or message_id in state.ended_messages:
        raise DuplicateReference("message", message_id)
    visibility = draft.visibility or "all"
    if "run_id" in data:
        _refer_to_run(state, data["run_id"], actor, visibility)
    return visibility, [], []


def _continue(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # message.delta, message.end: only the producer, in sequence
    data = draft.data
    message = _open_message(state, data["message_id"], actor)
    visibility = _continuing(draft, message.visibility)
    if not actor.is_server and actor.id != message.producer.id:
        raise Forbidden("only a message's producer continues it")
    if draft.type == "message.delta":
        if data["seq"] != message.next_seq:
            raise DeltaGap(message.next_seq, data["seq"])
        message.fold.check(data["part_index"], data["part_type"])
    return visibility, [], []


def _run_start(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    _require(state, actor, draft, caps)
    run_id = draft.data["run_id"]
    if run_id in state.runs or run_id in state.ended_runs:
        raise DuplicateReference("run", run_id)
    visibility = draft.visibility or "all"
    if "in_reply_to" in draft.data:
        reply = draft.data["in_reply_to"]
        message = state.messages.get(reply)
        target = (
            state.ended_messages.get(reply) if message is None else message.visibility
        )
        _refer(target, "message", reply, actor, visibility)
    return visibility, [], []


def _run_end(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    _require(state, actor, draft, caps)
    run = _open_run(state, draft.data["run_id"], actor)
    visibility = _continuing(draft, run.visibility)
    if not actor.is_server and actor.id != run.owner.id:
        raise Forbidden("only a run's owner ends it")
    return visibility, [], []


def _run_reference(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # run.cancel, tool.call, tool.result: the run, if named, must be open
    _require(state, actor, draft, caps)
    visibility = draft.visibility or default_visibility(draft.type)
    if "run_id" in draft.data:
        _refer_to_run(state, draft.data["run_id"], actor, visibility)
    return visibility, [], []


def _control_request(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    _require(state, actor, draft, caps)
    request_id, mode = draft.data["request_id"], draft.data["mode"]
    if actor.role == "customer" and mode != "warm":
        raise Forbidden("a customer's control request is always warm")
    if request_id in state.requests:
        raise DuplicateReference("request", request_id)
    after = _floor_to(state, None, None) if mode == "cold" else []
    return draft.visibility or "all", [], after


_BARGERS: Final = frozenset({"supervisor", "service"})


def _control_accept(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    _require(state, actor, draft, caps)
    request_id = draft.data["request_id"]
    request = state.requests.get(request_id)
    visibility = draft.visibility or "all"
    if request is None and actor.role in _BARGERS:
        # A barge: the floor is taken without a pending request (a supervisor
        # with the ``barge`` cap, which ``_require`` checked, or a service).
        return visibility, [], _floor_to(state, actor.role, actor.id)
    target = None if request is None else request.visibility
    _refer(target, "request", request_id, actor, visibility)
    if request is not None and request.accepted:
        raise AlreadyAccepted(f"request {request_id!r} was accepted already")
    return visibility, [], _floor_to(state, actor.role, actor.id)


def _control_release(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    _require(state, actor, draft, caps)
    to = draft.data.get("to")
    if to is None:
        return draft.visibility or "all", [], _floor_to(state, None, None)
    participant = state.participants.get(to)
    if participant is None:
        raise UnknownReference("participant", to)
    if participant.role not in FLOOR_ROLES:
        fail("the floor goes to an ai, agent or supervisor", "data.to")
    after = _floor_to(state, participant.role, participant.id)
    return draft.visibility or "all", [], after


def _session_closed(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # Nothing may stay open in a read-only session: end it all, just before.
    _require(state, actor, draft, caps)
    before = [
        end_message(message, "cancelled", "session_closed")
        for message in state.messages.values()
    ] + [end_run(run, "cancelled", "session_closed") for run in state.runs.values()]
    return draft.visibility or "all", before, []


def _redaction(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # Offsets count events, so every position up to the last one is an event.
    _require(state, actor, draft, caps)
    target = parse_target_offset(draft.data["offset"], "data.offset")
    last = state.last_offset
    if (
        last is None
        or not 0 < target.position <= last.position
        or target.generation != state.owner_generation(target.position)
    ):
        raise UnknownReference("offset", str(target))
    return draft.visibility or "all", [], []


def _other(
    state: SessionState, draft: EventDraft, actor: Actor, caps: _Caps
) -> Verdict:
    # note, session.updated, participant.*, x.<name>: the rights table only
    _require(state, actor, draft, caps)
    return draft.visibility or default_visibility(draft.type), [], []


# References


def _sees(actor: Actor, visibility: str | None) -> bool:
    """Whether ``actor`` may know of a thing of ``visibility`` (``None``: none)."""
    return visibility is not None and (visibility == "all" or actor.is_staff)


def _refer(
    target: str | None, kind: str, ident: str, actor: Actor, visibility: str
) -> None:
    """Check that an event of ``visibility`` may name a thing of ``target``.

    ``target`` is the visibility of the ``kind`` named ``ident``, ``None``
    when there is no such thing.
    """
    if not _sees(actor, target):
        raise UnknownReference(kind, ident)
    if target == "staff" and visibility == "all":
        fail(f"an event visible to all cannot name a staff {kind}", "visibility")


def _open_message(state: SessionState, message_id: str, actor: Actor) -> OpenMessage:
    message = state.messages.get(message_id)
    if message is not None and _sees(actor, message.visibility):
        return message
    if _sees(actor, state.ended_messages.get(message_id)):
        raise AlreadyEnded("message", message_id)
    raise UnknownReference("message", message_id)


def _open_run(state: SessionState, run_id: str, actor: Actor) -> OpenRun:
    run = state.runs.get(run_id)
    if run is not None and _sees(actor, run.visibility):
        return run
    if _sees(actor, state.ended_runs.get(run_id)):
        raise AlreadyEnded("run", run_id)
    raise UnknownReference("run", run_id)


def _refer_to_run(
    state: SessionState, run_id: str, actor: Actor, visibility: str
) -> None:
    run = _open_run(state, run_id, actor)
    _refer(run.visibility, "run", run_id, actor, visibility)


def _continuing(draft: EventDraft, visibility: Visibility) -> Visibility:
    if draft.visibility is not None and draft.visibility != visibility:
        fail(f"must be {visibility!r}, like what it continues", "visibility")
    return visibility


# Floor


def _floor_to(
    state: SessionState, role: str | None, ident: str | None
) -> list[EventDraft]:
    """The server events that end the loser's open messages and runs.

    The floor passes to ``(role, ident)``; if it stays, there are none.
    """
    old_role, old = state.controller_role, state.controller

    def lost(producer: Actor) -> bool:
        return holds(old_role, old, producer) and not holds(role, ident, producer)

    messages = [
        end_message(message, "cancelled", "floor_lost")
        for message in state.messages.values()
        if message.role == "assistant" and lost(message.producer)
    ]
    runs = [
        end_run(run, "cancelled", "floor_lost")
        for run in state.runs.values()
        if lost(run.owner)
    ]
    return messages + runs


_Rule: TypeAlias = Callable[["SessionState", EventDraft, Actor, _Caps], Verdict]
_RULES: Final[dict[str, _Rule]] = {
    "message": _message,
    "message.start": _message,
    "message.delta": _continue,
    "message.end": _continue,
    "run.start": _run_start,
    "run.end": _run_end,
    "run.cancel": _run_reference,
    "tool.call": _run_reference,
    "tool.result": _run_reference,
    "control.request": _control_request,
    "control.accept": _control_accept,
    "control.release": _control_release,
    "session.closed": _session_closed,
    "redaction": _redaction,
}
