"""What a worker knows of one session: a fold of its events, with no I/O.

:class:`SessionView` folds the events a worker reads (staff view) and answers
the questions the worker asks before it acts: which customer message to
answer next, whether someone already answers it, whether the AI holds the
floor, whether the customer is present, and how far its durable cursor may
move. It returns :class:`Signal` objects for what the worker must react to at
once (a cancel, a lost floor, a new customer message).

**Customer messages.** A complete message with ``role: user`` (a ``message``
event, or a streamed message whose ``message.end`` is ``complete``), from the
customer or a service writing on the customer's behalf. Each is *open* until
it is *settled*:

* a run answering it (``run.start {in_reply_to}``) ends — ``complete``,
  ``cancelled`` (by the customer, an interrupt, a lost floor) or ``error``
  from the producer's code — which settles it and every customer message
  before it;
* an assistant message without such a run (a human's reply) completes, which
  settles the customer messages before its start;
* a run answering it ends because its producer died (``producer_lost`` from
  the server's lease, ``producer_restarted`` / ``producer_stopped`` from a
  worker): the message is open again and is answered again, at most
  ``max_attempts`` times in all.

The **watermark** is the offset of the last customer message such that it and
every one before it are settled: where the worker's cursor may go, and where a
restarted worker resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..protocol.actors import Actor
from ..protocol.events import Event
from ..protocol.offsets import Offset

__all__ = [
    "LOST_REASONS",
    "CustomerMessage",
    "CustomerMessageArrived",
    "FloorChanged",
    "MessageEnded",
    "OpenRun",
    "Policy",
    "RunCancelRequested",
    "RunEnded",
    "SessionClosed",
    "SessionView",
    "Signal",
]

LOST_REASONS: Final = frozenset(
    {"producer_lost", "producer_restarted", "producer_stopped"}
)
"""``run.end`` reasons that mean the producer died or stopped: the customer
message is answered again."""

Policy = Literal["interrupt", "enqueue"]
"""Double texting: answer the newest message (cancelling a reply in flight),
or answer each message in turn."""


@dataclass(slots=True)
class CustomerMessage:
    """A complete customer message, open until settled."""

    message_id: str
    offset: Offset
    """Where it became complete (its ``message`` or ``message.end``)."""
    attempts: int = 0
    """Runs answering it that ended because their producer was lost."""
    settled: bool = False
    run_id: str | None = None
    """The open run answering it, if any."""


@dataclass(frozen=True, slots=True)
class OpenRun:
    """A run that has started and not ended."""

    run_id: str
    owner: Actor
    in_reply_to: str | None


@dataclass(slots=True)
class _Streaming:
    role: str
    producer: Actor
    run_id: str | None
    start_offset: Offset


# Signals


@dataclass(frozen=True, slots=True)
class CustomerMessageArrived:
    """A new customer message is complete."""

    message: CustomerMessage


@dataclass(frozen=True, slots=True)
class RunCancelRequested:
    """Someone asked to cancel a run (``run.cancel``)."""

    run_id: str | None
    actor: Actor


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run ended (``run.end``), by its owner or by the server."""

    run_id: str
    status: str
    reason: str | None
    actor: Actor


@dataclass(frozen=True, slots=True)
class MessageEnded:
    """A streamed message ended (``message.end``)."""

    message_id: str
    status: str
    reason: str | None
    actor: Actor


@dataclass(frozen=True, slots=True)
class FloorChanged:
    """The floor may have passed (a control event)."""


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session closed: nothing more may be published."""


Signal = (
    CustomerMessageArrived
    | RunCancelRequested
    | RunEnded
    | MessageEnded
    | FloorChanged
    | SessionClosed
)


class SessionView:
    """One worker's fold of one session (staff view). No I/O, no clock.

    Args:
        me: The worker's identity and device.
        max_attempts: Most runs that answer one customer message when their
            producers keep dying.
    """

    def __init__(self, me: Actor, *, max_attempts: int = 3) -> None:
        self.me = me
        self.max_attempts = max_attempts
        self.last_offset: Offset | None = None
        """The offset of the last event folded."""
        self.controller_role: str | None = "ai"
        self.controller: str | None = None
        self.closed = False
        self.runs: dict[str, OpenRun] = {}
        """Open runs by id."""
        self.presence_known = False
        """Whether the server reports presence (its state carries it)."""
        self.customer_devices = 0
        """The customer's present devices, as presence last said."""
        self._snapshot_offset: Offset | None = None
        self._roles: dict[str, str] = {me.id: me.role}
        self._streams: dict[str, _Streaming] = {}
        self._messages: list[CustomerMessage] = []  # open ones, in order
        self._by_id: dict[str, CustomerMessage] = {}
        self._watermark: Offset | None = None

    # Loading

    def load(self, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Take the state snapshot the subscription started with.

        The snapshot describes the tail; events up to its ``offset`` may be
        replayed after it (from the worker's cursor), and control events
        among them do not move the floor again.

        Returns:
            The ids of the messages and runs this worker's identity and
            device left open: an earlier incarnation of this worker, which
            stopped without ending them.
        """
        offset = state.get("offset")
        if isinstance(offset, str):
            self._snapshot_offset = Offset.parse(offset)
        controller = state.get("controller")
        if isinstance(controller, dict):
            self.controller_role = controller.get("role")
            self.controller = controller.get("id")
        else:
            self.controller_role = self.controller = None
        self.closed = bool(state.get("closed"))
        for participant in state.get("participants") or ():
            self._roles[participant["id"]] = participant["role"]
        stale_messages = []
        for message in state.get("messages") or ():
            producer = Actor.parse(message["actor"])
            self._streams[message["message_id"]] = _Streaming(
                message["role"],
                producer,
                message.get("run_id"),
                Offset.parse(message["start_offset"]),
            )
            if self._is_me(producer):
                stale_messages.append(message["message_id"])
        stale_runs = []
        for run in state.get("runs") or ():
            owner = Actor.parse(run["actor"])
            self.runs[run["run_id"]] = OpenRun(
                run["run_id"], owner, run.get("in_reply_to")
            )
            if self._is_me(owner):
                stale_runs.append(run["run_id"])
        return stale_messages, stale_runs

    def set_presence(self, presence: Mapping[Any, Mapping[str, Any]] | None) -> bool:
        """Take the present devices; return whether the customer's presence
        (present or not) changed."""
        before = self.customer_present
        self.presence_known = presence is not None
        self.customer_devices = sum(
            1
            for entry in (presence or {}).values()
            if entry.get("actor", {}).get("role") == "customer"
            and entry.get("status") != "offline"
        )
        return self.customer_present != before

    # Folding

    def apply(self, event: Event) -> list[Signal]:
        """Fold the next event; return what the worker must react to."""
        if self.last_offset is not None and event.offset <= self.last_offset:
            return []
        self.last_offset = event.offset
        actor, data = event.actor, event.data
        if not actor.is_server:
            self._roles.setdefault(actor.id, actor.role)
        signals: list[Signal] = []
        kind = event.type
        if kind == "message":
            self._whole_message(event, signals)
        elif kind == "message.start":
            self._streams[data["message_id"]] = _Streaming(
                data.get("role", "assistant"), actor, data.get("run_id"), event.offset
            )
        elif kind == "message.end":
            self._message_end(event, signals)
        elif kind == "run.start":
            run = OpenRun(data["run_id"], actor, data.get("in_reply_to"))
            self.runs[run.run_id] = run
            message = self._by_id.get(run.in_reply_to or "")
            if message is not None:
                message.run_id = run.run_id
        elif kind == "run.end":
            self._run_end(event, signals)
        elif kind == "run.cancel":
            signals.append(RunCancelRequested(data.get("run_id"), actor))
        elif kind.startswith("control."):
            if not self._replayed(event):
                self._control(event)
            signals.append(FloorChanged())
        elif kind == "participant.joined":
            participant = data.get("participant") or {}
            if "id" in participant:
                self._roles[participant["id"]] = participant.get("role", "")
        elif kind == "session.closed":
            self.closed = True
            signals.append(SessionClosed())
        self._advance_watermark()
        return signals

    # Questions

    @property
    def holds_floor(self) -> bool:
        """Whether this worker may publish assistant messages now."""
        if self.closed:
            return False
        if self.me.role == "service":
            return True  # a service's messages are never floor-controlled
        return self.controller_role == self.me.role and self.controller in (
            None,
            self.me.id,
        )

    @property
    def customer_present(self) -> bool:
        """Whether a device of the customer is connected (``True`` while the
        server does not report presence)."""
        return not self.presence_known or self.customer_devices > 0

    @property
    def busy(self) -> bool:
        """Whether an AI run is open (this worker waits for it to end)."""
        return any(
            run.owner.role == "ai" or run.owner.id == self.me.id
            for run in self.runs.values()
        )

    @property
    def watermark(self) -> Offset | None:
        """The offset of the last settled customer message with none open
        before it: where the worker's cursor may move."""
        return self._watermark

    @property
    def open_messages(self) -> list[CustomerMessage]:
        """Customer messages not settled yet, in order."""
        return [m for m in self._messages if not m.settled]

    def next_claim(self, policy: Policy) -> CustomerMessage | None:
        """The customer message to answer now, if any.

        None while the session is closed, the floor is elsewhere, or an AI
        run is open. ``interrupt`` answers the newest open message (the
        earlier ones are part of its context); ``enqueue`` the oldest.
        """
        if self.closed or not self.holds_floor or self.busy:
            return None
        waiting = [m for m in self._messages if not m.settled and m.run_id is None]
        if not waiting:
            return None
        return waiting[-1] if policy == "interrupt" else waiting[0]

    def is_mine(self, actor: Actor) -> bool:
        """Whether ``actor`` is this worker (its identity and device)."""
        return self._is_me(actor)

    # Private methods

    def _is_me(self, actor: Actor) -> bool:
        return actor.id == self.me.id and actor.device == self.me.device

    def _replayed(self, event: Event) -> bool:
        """Whether the state snapshot already includes ``event``."""
        snapshot = self._snapshot_offset
        return snapshot is not None and event.offset <= snapshot

    def _whole_message(self, event: Event, signals: list[Signal]) -> None:
        data = event.data
        if data.get("status", "complete") != "complete":
            return  # a compacted message that was cancelled or failed
        role = data.get("role")
        if role == "user":
            self._arrive(data["message_id"], event.offset, signals)
        elif role == "assistant" and not self._answers_a_message(data.get("run_id")):
            self._settle_before(event.offset)

    def _message_end(self, event: Event, signals: list[Signal]) -> None:
        data = event.data
        stream = self._streams.pop(data["message_id"], None)
        status = data.get("status", "complete")
        signals.append(
            MessageEnded(data["message_id"], status, data.get("reason"), event.actor)
        )
        if stream is None or status != "complete":
            return
        if stream.role == "user":
            self._arrive(data["message_id"], event.offset, signals)
        elif stream.role == "assistant" and not self._answers_a_message(stream.run_id):
            self._settle_before(stream.start_offset)

    def _run_end(self, event: Event, signals: list[Signal]) -> None:
        data = event.data
        run = self.runs.pop(data["run_id"], None)
        reason = data.get("reason")
        signals.append(
            RunEnded(data["run_id"], data.get("status", ""), reason, event.actor)
        )
        if run is None or run.in_reply_to is None:
            return
        message = self._by_id.get(run.in_reply_to)
        if message is None:
            return  # settled and forgotten, or before the cursor
        if message.run_id == run.run_id:
            message.run_id = None
        if reason in LOST_REASONS:
            message.attempts += 1
            if message.attempts < self.max_attempts:
                return
        self._settle_through(message.offset)

    def _control(self, event: Event) -> None:
        data, actor = event.data, event.actor
        if event.type == "control.accept":
            self.controller_role, self.controller = actor.role, actor.id
        elif event.type == "control.release":
            to = data.get("to")
            if to is None:
                self.controller_role = self.controller = None
            else:
                self.controller_role, self.controller = self._roles.get(to), to
        elif event.type == "control.request" and data.get("mode") == "cold":
            self.controller_role = self.controller = None

    def _answers_a_message(self, run_id: str | None) -> bool:
        run = None if run_id is None else self.runs.get(run_id)
        return run is not None and run.in_reply_to is not None

    def _arrive(self, message_id: str, offset: Offset, signals: list[Signal]) -> None:
        if message_id in self._by_id:
            return
        message = CustomerMessage(message_id, offset)
        self._messages.append(message)
        self._by_id[message_id] = message
        signals.append(CustomerMessageArrived(message))

    def _settle_through(self, offset: Offset) -> None:
        for message in self._messages:
            if message.offset <= offset:
                message.settled = True

    def _settle_before(self, offset: Offset) -> None:
        for message in self._messages:
            if message.offset < offset:
                message.settled = True

    def _advance_watermark(self) -> None:
        while self._messages and self._messages[0].settled:
            if self._messages[0].run_id is not None:
                break  # its run still streams: keep it for the run's end
            message = self._messages.pop(0)
            del self._by_id[message.message_id]
            self._watermark = message.offset
