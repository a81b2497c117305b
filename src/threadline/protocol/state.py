"""SessionState: the fold of a session's events, and the rules for the next one.

The server keeps one :class:`SessionState` per session. To publish, it
validates the draft against the state, stores the events that validation
returns in one commit, then folds them in::

    accepted = state.validate(draft, actor)        # raises on a refusal
    events = [d.to_event(offset=…, ts=…, actor=a, …) for a, d in accepted.entries()]
    store.commit(events)                           # all or nothing
    for event in events:
        state.apply(event)

A batch validates each draft against a :meth:`~SessionState.copy` that has
folded the drafts before it, and swaps the copy in after the commit.

:meth:`~SessionState.validate` never changes the state, and
:meth:`~SessionState.apply` never refuses: it folds what validation accepted
and skips what it cannot fold, so rebuilding a state from any stored log
succeeds. Memory is bounded by what is open (messages with their parts so far,
runs) plus one short record per message, run, control request and participant
ever seen, never by the number of events.

No clock is read: the dead-producer lease compares the ``ts`` of the last
event of each open message or run with a ``now`` passed in.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from ..exceptions import Forbidden, SessionClosed
from .actors import SERVER, SERVER_ID, Actor, Role
from .events import Event, EventDraft, format_ts
from .folds import fold_event
from .offsets import Offset
from .payloads import Visibility
from .records import (
    ControlRequest,
    OpenMessage,
    OpenRun,
    Participant,
    end_message,
    end_run,
    server_event_id,
)
from .rules import FLOOR_ROLES, check_event, holds

__all__ = [
    "FLOOR_ROLES",
    "LEASE",
    "Accepted",
    "SessionState",
]

LEASE: Final = 30.0
"""Seconds without an event after which an open message or run is ended."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """What :meth:`SessionState.validate` accepted: the events of one commit."""

    actor: Actor
    """The publisher."""

    draft: EventDraft
    """The draft as it will be stored, its visibility resolved."""

    before: tuple[EventDraft, ...] = ()
    """Server events stored just before the draft (ends at a close)."""

    after: tuple[EventDraft, ...] = ()
    """Server events stored just after the draft (ends at a floor change)."""

    def entries(self) -> list[tuple[Actor, EventDraft]]:
        """Every event of the commit, in log order, with its actor."""
        return [
            *((SERVER, draft) for draft in self.before),
            (self.actor, self.draft),
            *((SERVER, draft) for draft in self.after),
        ]


class SessionState:
    """The state of one session, folded from its events.

    Args:
        customer: The session's customer (the participant id that may
            publish as ``customer``); ``None`` if it has none yet.
        controller_role: The role holding the floor at the start: ``ai``
            by default, ``None`` for an empty floor.
        controller: The participant holding the floor at the start; ``None``
            lets any participant of ``controller_role`` hold it ("the AI").

    Raises:
        ValueError: ``controller_role`` cannot hold the floor, or
            ``controller`` comes without a role.
    """

    def __init__(
        self,
        customer: str | None = None,
        *,
        controller_role: Role | None = "ai",
        controller: str | None = None,
    ) -> None:
        if controller_role is not None and controller_role not in FLOOR_ROLES:
            raise ValueError(f"a {controller_role} cannot hold the floor")
        if controller is not None and controller_role is None:
            raise ValueError("a controller needs its role")
        self.customer = customer
        """The session's customer id."""
        self.controller_role: Role | None = controller_role
        """The role that holds the floor; ``None`` when the floor is empty."""
        self.controller = controller
        """The participant that holds the floor (``None``: any of its role)."""
        self.closed = False
        """Whether a ``session.closed`` made the session read-only."""
        self.last_offset: Offset | None = None
        """The offset of the last event folded in."""
        self.earlier_generations: list[tuple[int, int]] = []
        """``(generation, last position)`` of each generation the session's
        log went on from, oldest first: a restore continues a log in a new
        generation after the backup's tail. Empty for almost every session."""
        self.participants: dict[str, Participant] = {}
        """Everyone who joined or published, by id."""
        self.messages: dict[str, OpenMessage] = {}
        """Open (streaming) messages, by message id, in start order."""
        self.runs: dict[str, OpenRun] = {}
        """Open runs, by run id, in start order."""
        self.requests: dict[str, ControlRequest] = {}
        """Control requests, by request id."""
        self.ended_messages: dict[str, Visibility] = {}
        """Ids of complete and ended messages, with their visibility."""
        self.ended_runs: dict[str, Visibility] = {}
        """Ids of ended runs, with their visibility."""

    def copy(self) -> SessionState:
        """An independent copy (to validate a batch without touching this one)."""
        return copy.deepcopy(self)

    # Queries

    def holds_floor(self, actor: Actor) -> bool:
        """Whether ``actor`` holds the floor."""
        return holds(self.controller_role, self.controller, actor)

    # Validation

    def validate(
        self,
        draft: EventDraft,
        actor: Actor,
        *,
        caps: Collection[str] = (),
    ) -> Accepted:
        """Check that ``actor`` may publish ``draft`` next; change nothing.

        ``draft`` must be checked already (:meth:`EventDraft.parse` does it).
        The checks run in this order: the server's identity, a closed session,
        the customer's ownership, the rights table and the floor, then the
        rules of the type (references, sequence numbers, visibility).

        Args:
            draft: The draft to publish.
            actor: The verified publisher (:data:`SERVER` for the server).
            caps: The publisher's token caps (``threadline.auth.Claims.caps``):
                ``barge`` lets a supervisor accept a control request.

        Returns:
            The draft with its visibility resolved, and the server events
            to store with it in the same commit.

        Raises:
            Forbidden: the rights table refuses it (403).
            SessionClosed: the session is read-only.
            NotInControl: it needs the floor, which ``actor`` does not hold.
            DeltaGap: a delta's ``seq`` is not the message's next.
            UnknownReference: it names something the session does not
                have, or that ``actor`` may not see.
            DuplicateReference: it starts a message, run or request twice.
            AlreadyEnded: it continues or ends an ended message or run.
            AlreadyAccepted: the control request was accepted already.
            InvalidEvent: its visibility contradicts what it continues or
                names, or a delta breaks its message's parts.
        """
        if (actor.id == SERVER_ID) != actor.is_server:
            raise Forbidden("only the server is the server actor")
        if self.closed:
            raise SessionClosed("the session is closed")
        if actor.role == "customer" and actor.id != self.customer:
            raise Forbidden("a customer publishes only in their own session")
        visibility, before, after = check_event(self, draft, actor, caps)
        if visibility == "staff" and not actor.is_staff:
            raise Forbidden("a customer publishes events visible to all")
        if draft.visibility != visibility:
            draft = EventDraft(
                draft.type, draft.id, draft.data, visibility, draft.trace_id
            )
        return Accepted(actor, draft, tuple(before), tuple(after))

    # Server events

    def expired(self, now: float, lease: float = LEASE) -> list[EventDraft]:
        """The server events that end every message and run silent for ``lease``.

        Each ends ``status: error, reason: producer_lost``; messages come
        before runs. Store them as :data:`SERVER` in one commit. Their ids are
        derived from the message or run id, so two nodes that expire the same
        message publish the same event, stored once.

        Args:
            now: The current time, in epoch seconds.
            lease: Seconds of silence that end a producer (default 30).

        Raises:
            ValueError: ``lease`` is not positive.
        """
        if not lease > 0:
            raise ValueError("the lease must be positive")
        cutoff = format_ts(now - lease)
        return [
            end_message(message, "error", "producer_lost")
            for message in self.messages.values()
            if message.last_activity <= cutoff
        ] + [
            end_run(run, "error", "producer_lost")
            for run in self.runs.values()
            if run.last_activity <= cutoff
        ]

    def join(self, actor: Actor) -> EventDraft | None:
        """The ``participant.joined`` to store when ``actor`` joins, if any.

        ``None`` when ``actor`` is a member already. A supervisor's is
        staff-only (silent monitoring).

        Raises:
            ValueError: ``actor`` is the server.
        """
        participant = self._participant(actor)
        if participant is not None and participant.member:
            return None
        visibility: Visibility = "staff" if actor.role == "supervisor" else "all"
        return self._membership("participant.joined", actor, visibility)

    def leave(self, actor: Actor) -> EventDraft | None:
        """The ``participant.left`` to store when ``actor`` leaves, if any.

        ``None`` when ``actor`` is not a member; otherwise it has the
        visibility its join had.

        Raises:
            ValueError: ``actor`` is the server.
        """
        participant = self._participant(actor)
        if participant is None or not participant.member:
            return None
        visibility: Visibility = "staff" if participant.staff else "all"
        return self._membership("participant.left", actor, visibility)

    def _participant(self, actor: Actor) -> Participant | None:
        if actor.is_server:
            raise ValueError("the server is not a participant")
        return self.participants.get(actor.id)

    def _membership(
        self, event_type: str, actor: Actor, visibility: Visibility
    ) -> EventDraft:
        who = Actor(actor.id, actor.role, actor.name)
        key = f"{actor.id}\x00{self.last_offset}"
        return EventDraft(
            event_type,
            server_event_id(event_type, key),
            {"participant": who.to_json()},
            visibility,
        )

    # Folding

    def apply(self, event: Event) -> None:
        """Fold a stored event into the state.

        Raises:
            ValueError: the event's offset does not follow the last one.
        """
        if self.last_offset is not None and event.offset <= self.last_offset:
            raise ValueError(
                f"event offset {event.offset} does not follow {self.last_offset}"
            )
        last = self.last_offset
        if last is not None and event.offset.generation != last.generation:
            self.earlier_generations.append((last.generation, last.position))
        self.last_offset = event.offset
        fold_event(self, event)

    def owner_generation(self, position: int) -> int | None:
        """The generation whose offset names ``position`` (``None``: no event
        was folded in yet)."""
        for generation, upto in self.earlier_generations:
            if position <= upto:
                return generation
        return None if self.last_offset is None else self.last_offset.generation

    # Persistence and views

    def to_json(self, *, ended: bool = True) -> dict[str, Any]:
        """Everything the state holds, as JSON, for the index to store.

        Args:
            ended: Include the ids of ended messages and runs, which grow with
                the session's age; a store that keeps them apart (one entry
                each, written once) passes ``False``.
        """
        obj: dict[str, Any] = {
            "customer": self.customer,
            "controller_role": self.controller_role,
            "controller": self.controller,
            "closed": self.closed,
            "last_offset": None if self.last_offset is None else str(self.last_offset),
            "participants": [p.to_json() for p in self.participants.values()],
            "messages": [m.to_json() for m in self.messages.values()],
            "runs": [r.to_json() for r in self.runs.values()],
            "requests": [r.to_json() for r in self.requests.values()],
        }
        if self.earlier_generations:
            obj["earlier_generations"] = [list(g) for g in self.earlier_generations]
        if ended:
            obj["ended_messages"] = self.ended_messages
            obj["ended_runs"] = self.ended_runs
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SessionState:
        """Restore a state from :meth:`to_json` (trusted: the store wrote it).

        Without the ended ids (``ended=False``) the state knows of no ended
        message or run until the caller fills them in.
        """
        state = cls(
            obj["customer"],
            controller_role=obj["controller_role"],
            controller=obj["controller"],
        )
        state.closed = obj["closed"]
        last = obj["last_offset"]
        state.last_offset = None if last is None else Offset.parse(last)
        state.earlier_generations = [
            (generation, upto)
            for generation, upto in obj.get("earlier_generations", [])
        ]
        for item in obj["participants"]:
            participant = Participant.from_json(item)
            state.participants[participant.id] = participant
        for item in obj["messages"]:
            message = OpenMessage.from_json(item)
            state.messages[message.message_id] = message
        for item in obj["runs"]:
            run = OpenRun.from_json(item)
            state.runs[run.run_id] = run
        for item in obj["requests"]:
            request = ControlRequest.from_json(item)
            state.requests[request.request_id] = request
        state.ended_messages = dict(obj.get("ended_messages", ()))
        state.ended_runs = dict(obj.get("ended_runs", ()))
        return state

    def snapshot(self, *, staff: bool) -> dict[str, Any]:
        """What a reader sees of the state (the session's state snapshot).

        Args:
            staff: Whether the reader reads staff events; a customer does not
                see staff messages, runs, requests or memberships.
        """

        def shown(visibility: str) -> bool:
            return staff or visibility == "all"

        controller = None
        if self.controller_role is not None:
            controller = {"id": self.controller, "role": self.controller_role}
        return {
            "customer": self.customer,
            "controller": controller,
            "closed": self.closed,
            "participants": [
                {"id": p.id, "role": p.role, "name": p.name}
                for p in self.participants.values()
                if p.member and (staff or not p.staff)
            ],
            "messages": [
                {
                    "message_id": m.message_id,
                    "role": m.role,
                    "actor": m.producer.to_json(),
                    "run_id": m.run_id,
                    "start_offset": str(m.start_offset),
                    "next_seq": m.next_seq,
                    "parts": [part.to_json() for part in m.fold.parts()],
                }
                for m in self.messages.values()
                if shown(m.visibility)
            ],
            "runs": [
                {
                    "run_id": r.run_id,
                    "actor": r.owner.to_json(),
                    "start_offset": str(r.start_offset),
                    "in_reply_to": r.in_reply_to,
                }
                for r in self.runs.values()
                if shown(r.visibility)
            ],
            "requests": [
                {"request_id": r.request_id, "by": r.by, "mode": r.mode}
                for r in self.requests.values()
                if not r.accepted and shown(r.visibility)
            ],
        }
