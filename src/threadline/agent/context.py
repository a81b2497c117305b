"""What ``respond(context)`` gets: the conversation, presence, and escalation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..client.ids import uuid7
from ..client.session import Session
from ..protocol.actors import Actor
from ..protocol.events import Event
from ..protocol.offsets import Offset

__all__ = ["Chunk", "Context", "HistoryMessage", "Respond", "history_from"]

Chunk = str | Mapping[str, Any]
"""What ``respond`` yields: text, or a part (``{"type": "tool-call", ...}``,
``{"type": "reasoning", "text": ...}``, ``{"type": "data-card", "data": ...}``)."""


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One message of the conversation, folded (the compact view)."""

    message_id: str
    role: str
    """``user``, ``assistant`` or ``system``."""
    actor: Actor
    """Who wrote it (a customer, the AI, a human agent…)."""
    parts: list[dict[str, Any]]
    """Its parts, as in a ``message`` event."""
    start_offset: Offset
    """Where it started; messages are ordered by it."""
    status: Literal["complete", "cancelled", "error", "streaming"] = "complete"
    """How it ended, or ``streaming`` if it has not."""
    reason: str | None = None
    run_id: str | None = None

    @property
    def text(self) -> str:
        """Its ``text`` parts, joined."""
        return "".join(
            str(part.get("text", "")) for part in self.parts if part["type"] == "text"
        )


def history_from(events: Iterable[Event]) -> list[HistoryMessage]:
    """The messages of a compact read from the start, ordered by start offset."""
    found: dict[str, HistoryMessage] = {}
    for event in events:
        data = event.data
        if event.type in ("message", "message.start") and "message_id" in data:
            start = data.get("start_offset")
            status = data.get("status", "complete")
            if event.type == "message.start":
                status = "streaming"
            found[data["message_id"]] = HistoryMessage(
                message_id=data["message_id"],
                role=str(data.get("role", "assistant")),
                actor=event.actor,
                parts=list(data.get("parts") or ()),
                start_offset=Offset.parse(start) if start else event.offset,
                status=status,
                reason=data.get("reason"),
                run_id=data.get("run_id"),
            )
        elif event.type == "message.end" and data.get("message_id") in found:
            old = found[data["message_id"]]
            found[old.message_id] = HistoryMessage(
                old.message_id,
                old.role,
                old.actor,
                old.parts,
                old.start_offset,
                data.get("status", "complete"),
                data.get("reason"),
                old.run_id,
            )
    return sorted(found.values(), key=lambda m: m.start_offset)


class Context:
    """One reply being made: what ``respond`` needs to know and may do.

    Made by the worker for each run; valid while ``respond`` runs.
    """

    def __init__(
        self,
        session: Session,
        run_id: str,
        message: HistoryMessage,
        history: list[HistoryMessage],
        *,
        customer_present: Callable[[], bool],
    ) -> None:
        self.session = session
        """The session (publish tool events or ``x.*`` events through it)."""
        self.run_id = run_id
        """This reply's run."""
        self.message = message
        """The customer message being answered."""
        self.history = history
        """The conversation up to and including :attr:`message`, compacted
        (one entry per message, ordered by start offset). Earlier replies
        that were cancelled or interrupted are in it with their ``status``."""
        self.stop_reason: str | None = None
        """Why the worker is stopping this reply, once it is: ``cancelled``
        (a ``run.cancel``), ``interrupted`` (a newer customer message),
        ``floor_lost``, ``customer_absent``, ``producer_stopped`` (the
        worker closes)…"""
        self.stop_requested_at: float | None = None
        """When (event loop time) the event that stops this reply reached
        the worker."""
        self._present = customer_present

    def __repr__(self) -> str:
        return f"<Context {self.session.id!r} run {self.run_id!r}>"

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.session.id

    @property
    def text(self) -> str:
        """The text of the customer message being answered."""
        return self.message.text

    @property
    def customer_present(self) -> bool:
        """Whether a device of the customer is connected now.

        Live: it follows the server's ``presence`` messages. ``True`` while
        the server does not report presence.
        """
        return self._present()

    async def note(self, text: str) -> Offset:
        """Whisper to the staff: publish a ``note`` (never shown to the customer).

        Raises:
            ThreadlineError: the server refused it.
        """
        return await self.session.publish("note", {"text": text})

    async def escalate(
        self,
        summary: str,
        *,
        reason: str | None = None,
        mode: Literal["warm", "cold"] = "warm",
    ) -> str:
        """Hand over to a human: a staff ``note`` with ``summary``, then a
        ``control.request``, in one all-or-nothing publish; return its
        ``request_id``.

        ``warm`` (the default) keeps the floor until a human accepts: this
        reply may go on (say, "I am getting a colleague"), and stops when the
        floor passes. ``cold`` releases the floor at once: the server ends
        this reply (``floor_lost``) and the worker stops it.

        Raises:
            NotInControl: the AI no longer holds the floor.
            ThreadlineError: the server refused it.
        """
        request_id = uuid7()
        request: dict[str, Any] = {"request_id": request_id, "mode": mode}
        if reason is not None:
            request["reason"] = reason
        await self.session.publish_many(
            [
                {"type": "note", "data": {"text": summary}},
                {"type": "control.request", "data": request},
            ]
        )
        return request_id


Respond = Callable[[Context], AsyncIterator[Chunk]]
"""The application's reply: ``async def respond(context): yield "text"``.

Called once per run; the worker pulls from it while the AI holds the floor
and closes it (``aclose``) when it stops the reply early.
"""
