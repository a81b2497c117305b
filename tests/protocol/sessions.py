"""A session with a fake log, for the SessionState tests: no I/O, no clock."""

from __future__ import annotations

import itertools

from threadline.protocol.actors import Actor
from threadline.protocol.events import GENESIS_HASH, Event, EventDraft, format_ts
from threadline.protocol.offsets import Offset
from threadline.protocol.state import Accepted, SessionState

CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-7f3a")
OTHER_CUSTOMER = Actor("cust_7", "customer")
AI = Actor("ai_1", "ai", "Assistant")
AI_2 = Actor("ai_2", "ai")
AGENT = Actor("agent_1", "agent", "Sam")
AGENT_2 = Actor("agent_2", "agent")
SUPERVISOR = Actor("sup_1", "supervisor", "Kim")
SERVICE = Actor("svc", "service")

GENERATION = 3
T0 = 1_780_000_000.0


class Session:
    """A SessionState fed through validate(), a fake commit, then apply()."""

    def __init__(self, state: SessionState | None = None) -> None:
        self.state = state if state is not None else SessionState(CUSTOMER.id)
        self.log: list[Event] = []
        self.now = T0
        self._ids = itertools.count()
        self.generation = GENERATION
        """The generation new events are stored in (a restore moves it on)."""

    def draft(self, type_, data, visibility=None) -> EventDraft:
        draft = EventDraft(type_, f"e{next(self._ids)}", data, visibility)
        draft.check()
        return draft

    def validate(self, actor, type_, data, *, visibility=None, caps=()) -> Accepted:
        return self.state.validate(
            self.draft(type_, data, visibility), actor, caps=caps
        )

    def publish(self, actor, type_, data, *, visibility=None, caps=()) -> list[Event]:
        """Validate, store and fold one draft with its server events."""
        accepted = self.validate(actor, type_, data, visibility=visibility, caps=caps)
        return self.store(accepted.entries())

    def store(self, entries) -> list[Event]:
        """Store drafts (each with its actor) at the next offsets, and fold them."""
        events = []
        for actor, draft in entries:
            self.now += 0.25
            event = draft.to_event(
                offset=Offset(self.generation, len(self.log) + 1),
                ts=format_ts(self.now),
                actor=actor,
                prev_hash=GENESIS_HASH,
                hash=GENESIS_HASH,
            )
            event.check()
            self.state.apply(event)
            self.log.append(event)
            events.append(event)
        return events

    # Shorthands for the common events

    def say(self, actor, message_id, text="hi", role="user", **data):
        parts = [{"type": "text", "text": text}]
        return self.publish(
            actor,
            "message",
            {"message_id": message_id, "role": role, "parts": parts, **data},
        )

    def start(self, actor, message_id, role="assistant", **data):
        return self.publish(
            actor, "message.start", {"message_id": message_id, "role": role, **data}
        )

    def delta(self, actor, message_id, seq, text="x", part_index=0, **kw):
        return self.publish(
            actor,
            "message.delta",
            delta(message_id, seq, text, part_index),
            **kw,
        )

    def end(self, actor, message_id, status="complete"):
        return self.publish(
            actor, "message.end", {"message_id": message_id, "status": status}
        )

    def run(self, actor, run_id, **data):
        return self.publish(actor, "run.start", {"run_id": run_id, **data})


def delta(message_id, seq, text="x", part_index=0, part_type="text"):
    """The data of a text delta."""
    return {
        "message_id": message_id,
        "seq": seq,
        "part_index": part_index,
        "part_type": part_type,
        "text": text,
    }
