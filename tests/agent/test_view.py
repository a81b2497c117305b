"""SessionView, the pure fold: what to answer, when, and where the cursor goes."""

from __future__ import annotations

from typing import Any

from threadline.agent.view import (
    CustomerMessageArrived,
    FloorChanged,
    Policy,
    RunCancelRequested,
    RunEnded,
    SessionView,
)
from threadline.protocol.actors import SERVER, Actor
from threadline.protocol.events import GENESIS_HASH, Event
from threadline.protocol.offsets import Offset

ME = Actor("bot", "ai", None, "agent-1")
TWIN = Actor("bot", "ai", None, "agent-2")  # another replica of the same AI
CUSTOMER = Actor("cust", "customer", None, "tab-1")
HUMAN = Actor("alice", "agent", None, "console")


class Log:
    """Builds events at increasing offsets."""

    def __init__(self) -> None:
        self.position = 0

    def __call__(self, type_: str, actor: Actor, **data: Any) -> Event:
        self.position += 1
        return Event(
            offset=Offset(1, self.position),
            ts="2026-01-01T00:00:00.000000Z",
            type=type_,
            id=f"e{self.position}",
            actor=actor,
            visibility="all",
            data=data,
            prev_hash=GENESIS_HASH,
            hash=GENESIS_HASH,
        )

    def user(self, message_id: str) -> Event:
        return self("message", CUSTOMER, message_id=message_id, role="user", parts=[])


def claim(view: SessionView, policy: Policy) -> str | None:
    """The id of the message the view would claim next."""
    message = view.next_claim(policy)
    return None if message is None else message.message_id


def test_a_customer_message_is_claimable_until_a_run_answers_it():
    """A complete user message is the next claim; once a run answers it and ends
    complete, nothing is left and the watermark is that message's offset."""
    view, log = SessionView(ME), Log()
    arrived = log.user("m1")
    assert view.apply(arrived) == [CustomerMessageArrived(view.open_messages[0])]
    assert claim(view, "interrupt") == "m1"
    view.apply(log("run.start", TWIN, run_id="r1", in_reply_to="m1"))
    assert view.next_claim("interrupt") is None  # an AI run is open: busy
    view.apply(log("run.end", TWIN, run_id="r1", status="complete"))
    assert view.next_claim("interrupt") is None
    assert view.watermark == arrived.offset


def test_interrupt_answers_the_newest_and_enqueue_the_oldest():
    """With several open messages, interrupt claims the newest, enqueue the oldest."""
    view, log = SessionView(ME), Log()
    view.apply(log.user("m1"))
    view.apply(log.user("m2"))
    assert claim(view, "interrupt") == "m2"
    assert claim(view, "enqueue") == "m1"


def test_a_reply_settles_every_message_before_it():
    """A run answering m2 that ends settles m1 too (it was context for m2)."""
    view, log = SessionView(ME), Log()
    view.apply(log.user("m1"))
    second = log.user("m2")
    view.apply(second)
    view.apply(log("run.start", ME, run_id="r1", in_reply_to="m2"))
    view.apply(log("run.end", ME, run_id="r1", status="cancelled", reason="cancelled"))
    assert view.open_messages == []
    assert view.watermark == second.offset


def test_a_lost_producer_leaves_the_message_open_up_to_max_attempts():
    """A run ended producer_lost reopens its message; after max_attempts it is
    settled anyway."""
    view, log = SessionView(ME, max_attempts=2), Log()
    view.apply(log.user("m1"))
    for n, reason in enumerate(["producer_lost", "producer_restarted"]):
        view.apply(log("run.start", ME, run_id=f"r{n}", in_reply_to="m1"))
        view.apply(
            log("run.end", SERVER, run_id=f"r{n}", status="error", reason=reason)
        )
        if n == 0:
            assert claim(view, "interrupt") == "m1"
    assert view.next_claim("interrupt") is None


def test_a_human_reply_settles_the_messages_before_it():
    """An assistant message without a run (a human agent's) settles what came
    before its start, not what came after."""
    view, log = SessionView(ME), Log()
    view.apply(log.user("m1"))
    view.apply(log("message.start", HUMAN, message_id="h1", role="assistant"))
    view.apply(log.user("m2"))
    view.apply(log("message.end", HUMAN, message_id="h1", status="complete"))
    assert [m.message_id for m in view.open_messages] == ["m2"]


def test_a_streamed_customer_message_counts_once_complete():
    """A customer message streamed with start/end is claimable once it ends complete."""
    view, log = SessionView(ME), Log()
    view.apply(log("message.start", CUSTOMER, message_id="m1", role="user"))
    assert view.next_claim("interrupt") is None
    view.apply(log("message.end", CUSTOMER, message_id="m1", status="complete"))
    assert claim(view, "interrupt") == "m1"


def test_no_claim_without_the_floor_and_again_after_a_handback():
    """A human who accepts takes the floor (no claim); released back to the AI,
    the floor and the claim return."""
    view, log = SessionView(ME), Log()
    view.apply(log("control.request", CUSTOMER, request_id="q1", mode="warm"))
    assert view.holds_floor
    assert view.apply(log("control.accept", HUMAN, request_id="q1")) == [FloorChanged()]
    view.apply(log.user("m1"))
    assert not view.holds_floor and view.next_claim("interrupt") is None
    view.apply(log("control.release", HUMAN, to="bot"))
    assert view.holds_floor
    assert claim(view, "interrupt") == "m1"


def test_a_snapshot_floor_is_not_moved_again_by_replayed_control_events():
    """Control events at or before the snapshot's offset are already in it."""
    view, log = SessionView(ME), Log()
    accept = log("control.accept", HUMAN, request_id="q1")
    release = log("control.release", HUMAN, to="bot")
    view.load(
        {"offset": str(release.offset), "controller": {"id": "bot", "role": "ai"}}
    )
    view.apply(accept)
    view.apply(release)
    assert view.holds_floor


def test_load_returns_what_this_device_left_open_and_not_a_twins():
    """Messages and runs of this identity and device are stale; a twin's are not."""
    view = SessionView(ME)
    run = {"start_offset": str(Offset(1, 2)), "in_reply_to": "m1"}
    stale = view.load(
        {
            "offset": str(Offset(1, 4)),
            "controller": {"id": None, "role": "ai"},
            "messages": [
                {
                    "message_id": "a1",
                    "role": "assistant",
                    "actor": ME.to_json(),
                    "run_id": "r1",
                    "start_offset": str(Offset(1, 3)),
                },
                {
                    "message_id": "a2",
                    "role": "assistant",
                    "actor": TWIN.to_json(),
                    "run_id": "r2",
                    "start_offset": str(Offset(1, 4)),
                },
            ],
            "runs": [
                {"run_id": "r1", "actor": ME.to_json(), **run},
                {"run_id": "r2", "actor": TWIN.to_json(), **run},
            ],
        }
    )
    assert stale == (["a1"], ["r1"])
    assert view.busy


def test_cancel_and_run_end_are_signalled():
    """run.cancel and run.end come back as signals, with who sent them."""
    view, log = SessionView(ME), Log()
    view.apply(log.user("m1"))
    view.apply(log("run.start", ME, run_id="r1", in_reply_to="m1"))
    assert view.apply(log("run.cancel", CUSTOMER, run_id="r1")) == [
        RunCancelRequested("r1", CUSTOMER)
    ]
    assert view.apply(
        log("run.end", SERVER, run_id="r1", status="cancelled", reason="floor_lost")
    ) == [RunEnded("r1", "cancelled", "floor_lost", SERVER)]


def test_customer_presence_counts_only_the_customers_devices():
    """Presence is unknown (assumed present) until reported; only customer
    devices count; the return value says whether presence changed."""
    view = SessionView(ME)
    assert view.customer_present
    assert view.set_presence({("bot", "agent-1"): {"actor": ME.to_json()}})
    assert not view.customer_present
    entry = {"actor": CUSTOMER.to_json(), "status": "active"}
    assert view.set_presence({("cust", "tab-1"): entry})
    assert not view.set_presence({("cust", "tab-1"): {**entry, "status": "typing"}})
    assert view.customer_present


def test_events_at_or_before_the_last_offset_are_ignored():
    """A replayed event (at or before the last folded offset) changes nothing."""
    view, log = SessionView(ME), Log()
    event = log.user("m1")
    view.apply(event)
    assert view.apply(event) == []
    assert len(view.open_messages) == 1


def test_a_compacted_message_that_did_not_complete_settles_nothing():
    """A compacted message with a status other than complete is no customer
    message and no reply."""
    view, log = SessionView(ME), Log()
    view.apply(log.user("m1"))
    view.apply(
        log(
            "message",
            HUMAN,
            message_id="h1",
            role="assistant",
            parts=[],
            status="cancelled",
        )
    )
    view.apply(
        log("message", CUSTOMER, message_id="m2", role="user", parts=[], status="error")
    )
    assert [m.message_id for m in view.open_messages] == ["m1"]
