"""The waiting queue's rule: when a session waits for a human, and its events."""

from __future__ import annotations

import pytest

from threadline.exceptions import Forbidden, InvalidEvent
from threadline.protocol.events import EventDraft
from threadline.protocol.offsets import Offset
from threadline.protocol.queue import (
    Waiting,
    queue_change,
    session_created,
    waiting,
)
from threadline.protocol.state import SessionState

from .sessions import AGENT, AI, CUSTOMER, SERVICE, Session

CAUSE = Offset(3, 9)


def test_a_new_session_with_the_ai_in_control_does_not_wait():
    """The AI holds the floor: nobody waits for a human."""
    assert waiting(Session().state) is None


def test_a_session_without_a_controller_waits_released():
    """An empty floor waits for whoever takes it."""
    state = SessionState(CUSTOMER.id, controller_role=None)
    assert waiting(state) == Waiting("released")


def test_a_warm_request_waits_while_the_ai_keeps_the_floor():
    """A pending warm request waits, naming the request, the AI still talks."""
    session = Session()
    session.publish(CUSTOMER, "control.request", {"request_id": "q1", "mode": "warm"})
    assert waiting(session.state) == Waiting("requested", "q1", "warm")
    assert session.state.controller_role == "ai"


def test_an_accepted_request_stops_waiting():
    """A human accepting the floor takes the session out of the queue."""
    session = Session()
    session.publish(AI, "control.request", {"request_id": "q1", "mode": "cold"})
    before = waiting(session.state)
    session.publish(AGENT, "control.accept", {"request_id": "q1"})
    assert waiting(session.state) is None
    change = queue_change("s1", before, session.state, CAUSE)
    assert change is not None and change.type == "queue.removed"
    assert change.data == {"session": "s1", "reason": "accepted", "cause": str(CAUSE)}
    assert change.visibility == "staff"


def test_entering_the_queue_names_the_request_customer_and_metadata():
    """queue.added carries what a console routes on."""
    session = Session()
    before = waiting(session.state)
    session.publish(AI, "control.request", {"request_id": "q1", "mode": "warm"})
    change = queue_change(
        "s1",
        before,
        session.state,
        CAUSE,
        customer=CUSTOMER.id,
        metadata={"priority": 2},
    )
    assert change is not None and change.type == "queue.added"
    assert change.data == {
        "session": "s1",
        "reason": "requested",
        "cause": str(CAUSE),
        "request_id": "q1",
        "mode": "warm",
        "customer": CUSTOMER.id,
        "metadata": {"priority": 2},
    }
    change.check()


def test_a_release_without_to_enters_the_queue_bare():
    """An empty floor enters the queue without request, customer or metadata."""
    session = Session()
    session.publish(AI, "control.release", {})
    change = queue_change("s1", None, session.state, CAUSE)
    assert change is not None
    assert change.data == {"session": "s1", "reason": "released", "cause": str(CAUSE)}


def test_no_change_no_event():
    """Staying out of, or in, the queue writes nothing."""
    session = Session()
    assert queue_change("s1", None, session.state, CAUSE) is None
    session.publish(AI, "control.release", {})
    assert queue_change("s1", Waiting("requested"), session.state, CAUSE) is None


def test_closing_a_waiting_session_removes_it_closed():
    """A closed session leaves the queue with reason closed."""
    session = Session()
    session.publish(AI, "control.release", {})
    before = waiting(session.state)
    session.publish(SERVICE, "session.closed", {})
    change = queue_change("s1", before, session.state, CAUSE)
    assert change is not None and change.data["reason"] == "closed"


def test_a_handback_to_the_ai_removes_it_handed():
    """The floor going to the AI (not a human) leaves the queue as handed."""
    session = Session()
    session.publish(AI, "control.release", {})
    before = waiting(session.state)
    session.publish(SERVICE, "control.release", {"to": AI.id})
    change = queue_change("s1", before, session.state, CAUSE)
    assert change is not None and change.data["reason"] == "handed"


def test_queue_events_are_server_only_and_staff_only():
    """No token publishes queue events, and they are never visible to all."""
    session = Session()
    data = {"session": "s1", "reason": "released", "cause": str(CAUSE)}
    with pytest.raises(Forbidden):
        session.validate(SERVICE, "queue.added", data)
    with pytest.raises(InvalidEvent, match="always staff"):
        EventDraft("queue.removed", "e", data, "all").check()


def test_session_created_names_the_new_session():
    """The feed's event: staff, the server's id for it, customer and metadata
    only when there are some."""
    bare = session_created("s1", customer=None, metadata=None, controller_role=None)
    assert bare.data == {"session": "s1", "controller_role": None}
    bare.check()
    full = session_created(
        "s1", customer="c", metadata={"tags": ["x"]}, controller_role="ai"
    )
    assert full.data == {
        "session": "s1",
        "controller_role": "ai",
        "customer": "c",
        "metadata": {"tags": ["x"]},
    }
    assert full.visibility == "staff" and full.id == bare.id
    with pytest.raises(InvalidEvent):
        EventDraft(
            "session.created", "e", {**full.data, "controller_role": "x"}
        ).check()
