"""Event drafts and checks the session tests share."""

from __future__ import annotations

from threadline.protocol.audit import data_digest, event_hash
from threadline.protocol.events import GENESIS_HASH, Event, EventDraft
from threadline.protocol.payloads import Visibility


def message(event_id: str, text: str, role: str = "user") -> EventDraft:
    """A whole text message (id ``m-{event_id}``)."""
    parts = [{"type": "text", "text": text}]
    return EventDraft(
        "message",
        event_id,
        {"message_id": f"m-{event_id}", "role": role, "parts": parts},
    )


def start(
    mid: str, visibility: Visibility | None = None, role: str = "assistant"
) -> EventDraft:
    """``message.start`` of a streamed message."""
    data = {"message_id": mid, "role": role}
    return EventDraft("message.start", f"{mid}-s", data, visibility)


def delta(mid: str, seq: int, text: str) -> EventDraft:
    """One text delta of a streamed message."""
    data = {
        "message_id": mid,
        "seq": seq,
        "part_index": 0,
        "part_type": "text",
        "text": text,
    }
    return EventDraft("message.delta", f"{mid}-d{seq}", data)


def end(mid: str) -> EventDraft:
    """``message.end``, complete."""
    data = {"message_id": mid, "status": "complete"}
    return EventDraft("message.end", f"{mid}-e", data)


def assert_chain(found: list[Event]) -> None:
    """Each event links to the one before and its hash covers its fields."""
    previous = GENESIS_HASH
    for event in found:
        assert event.prev_hash == previous
        assert event.hash == event_hash(
            prev_hash=previous,
            offset=str(event.offset),
            ts=event.ts,
            type=event.type,
            actor=event.actor.to_json(),
            visibility=event.visibility,
            id=event.id,
            data_sha256=data_digest(event.data),
        )
        previous = event.hash
