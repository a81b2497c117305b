"""The rules of each event type, exercised through SessionState.validate()."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import (
    AlreadyAccepted,
    AlreadyEnded,
    DeltaGap,
    DuplicateReference,
    Forbidden,
    InvalidEvent,
    NotInControl,
    SessionClosed,
    UnknownReference,
)
from threadline.protocol.actors import SERVER
from threadline.protocol.offsets import Offset
from threadline.protocol.rules import holds
from threadline.protocol.state import SessionState

from .sessions import (
    AGENT,
    AGENT_2,
    AI,
    AI_2,
    CUSTOMER,
    GENERATION,
    OTHER_CUSTOMER,
    SERVICE,
    SUPERVISOR,
    Session,
    delta,
)


@pytest.fixture
def session():
    return Session()


def streaming(session, actor=AI, message_id="m1", **data):
    """A session where ``actor`` streams message ``message_id``."""
    session.start(actor, message_id, **data)
    session.delta(actor, message_id, 0, "Good")
    return session


def escalated(session, request="q1"):
    """A session where the customer asked for a human (warm)."""
    session.publish(
        CUSTOMER, "control.request", {"request_id": request, "mode": "warm"}
    )
    return session


def humans_floor(session):
    """A session where the agent accepted the customer's request."""
    escalated(session)
    session.publish(AGENT, "control.accept", {"request_id": "q1"})
    return session


# Who holds the floor


def test_holds_any_participant_of_a_role_held_floor():
    """A floor held by a role, without an id, is held by all of that role."""
    assert holds("ai", None, AI) and holds("ai", None, AI_2)


def test_holds_only_the_named_participant():
    """A floor held by an id is held by that participant only."""
    assert holds("ai", AI.id, AI) and not holds("ai", AI.id, AI_2)


def test_holds_nothing_on_an_empty_floor():
    """Nobody holds an empty floor."""
    assert not holds(None, None, AI)


# Messages: rights and floor


def test_customer_publishes_a_user_message(session):
    """The session's customer may say something; it is visible to all."""
    (event,) = session.say(CUSTOMER, "m1")
    assert event.visibility == "all"


def test_customer_may_not_publish_an_assistant_message(session):
    """Assistant-side messages are not the customer's."""
    with pytest.raises(Forbidden) as caught:
        session.say(CUSTOMER, "m1", role="assistant")
    assert (caught.value.code, caught.value.status) == ("forbidden", 403)


def test_ai_may_not_publish_a_user_message(session):
    """User-side messages are the customer's (and a service's)."""
    with pytest.raises(Forbidden):
        session.say(AI, "m1", role="user")


def test_ai_publishes_assistant_messages_at_the_start(session):
    """The AI holds the floor when a session starts."""
    session.say(AI, "m1", role="assistant")
    session.start(AI_2, "m2")


def test_agent_without_the_floor_is_not_in_control(session):
    """An agent's assistant message before it takes the floor is 409."""
    with pytest.raises(NotInControl) as caught:
        session.start(AGENT, "m1")
    assert (caught.value.code, caught.value.status) == ("not_in_control", 409)


def test_supervisor_without_the_floor_is_not_in_control(session):
    """A supervisor speaks to the customer only while holding the floor."""
    with pytest.raises(NotInControl):
        session.say(SUPERVISOR, "m1", role="assistant")


def test_service_publishes_assistant_messages_without_the_floor(session):
    """A service is not floor-controlled."""
    humans_floor(session)
    session.say(SERVICE, "m1", role="assistant")


def test_staff_publish_system_messages_without_the_floor(session):
    """System messages are staff's and not floor-controlled."""
    session.say(AGENT, "m1", role="system")


def test_customer_may_not_publish_a_system_message(session):
    """System messages are staff's."""
    with pytest.raises(Forbidden):
        session.say(CUSTOMER, "m1", role="system")


def test_caps_that_grant_nothing_change_nothing(session):
    """Unknown caps grant nothing and take nothing away."""
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant"},
        caps={"unknown-cap"},
    )


# Messages: ids and references


def test_second_message_with_an_id_is_a_duplicate(session):
    """A message id is used once."""
    session.say(CUSTOMER, "m1")
    with pytest.raises(DuplicateReference) as caught:
        session.say(CUSTOMER, "m1")
    assert (caught.value.code, caught.value.status) == ("duplicate_message", 409)


def test_second_start_with_an_id_is_a_duplicate(session):
    """A second message.start of an open message is refused."""
    streaming(session)
    with pytest.raises(DuplicateReference, match="'m1' already exists"):
        session.start(AI, "m1")


def test_start_reusing_an_ended_message_id_is_a_duplicate(session):
    """Ended message ids stay taken."""
    streaming(session)
    session.end(AI, "m1")
    with pytest.raises(DuplicateReference):
        session.start(AI, "m1")


def test_message_in_an_open_run_is_accepted(session):
    """A message may name its open run."""
    session.run(AI, "r1")
    session.start(AI, "m1", run_id="r1")


def test_message_in_an_unknown_run_is_refused(session):
    """A message may not name a run that never started."""
    with pytest.raises(UnknownReference) as caught:
        session.start(AI, "m1", run_id="r9")
    assert caught.value.code == "unknown_run"


def test_message_in_an_ended_run_is_refused(session):
    """A message may not name a run that ended."""
    session.run(AI, "r1")
    session.publish(AI, "run.end", {"run_id": "r1", "status": "complete"})
    with pytest.raises(AlreadyEnded) as caught:
        session.start(AI, "m1", run_id="r1")
    assert caught.value.code == "run_ended"


def test_visible_message_may_not_name_a_staff_run(session):
    """Naming a staff run in an event the customer sees would reveal it."""
    session.publish(AI, "run.start", {"run_id": "r1"}, visibility="staff")
    with pytest.raises(InvalidEvent, match="cannot name a staff run") as caught:
        session.start(AI, "m1", run_id="r1")
    assert caught.value.field == "visibility"


def test_staff_message_may_name_a_staff_run(session):
    """A staff message may belong to a staff run."""
    session.publish(AI, "run.start", {"run_id": "r1"}, visibility="staff")
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant", "run_id": "r1"},
        visibility="staff",
    )


def test_customer_is_told_a_staff_run_is_unknown(session):
    """A customer cannot learn that a staff run exists."""
    session.publish(AI, "run.start", {"run_id": "r1"}, visibility="staff")
    with pytest.raises(UnknownReference):
        session.say(CUSTOMER, "m1", run_id="r1")


# Deltas and ends


def test_delta_for_an_unknown_message_is_refused(session):
    """A delta needs its message.start first."""
    with pytest.raises(UnknownReference) as caught:
        session.delta(AI, "m9", 0)
    assert (caught.value.code, caught.value.status) == ("unknown_message", 409)


def test_delta_for_an_ended_message_is_refused(session):
    """A delta after the end tells the producer its message has ended."""
    streaming(session)
    session.end(AI, "m1")
    with pytest.raises(AlreadyEnded) as caught:
        session.delta(AI, "m1", 1)
    assert (caught.value.code, caught.value.status) == ("message_ended", 409)


def test_second_end_is_refused(session):
    """A message ends once."""
    streaming(session)
    session.end(AI, "m1")
    with pytest.raises(AlreadyEnded, match="'m1' has ended"):
        session.end(AI, "m1", "error")


def test_end_of_a_complete_message_is_refused(session):
    """A complete message event has no end to come."""
    session.say(CUSTOMER, "m1")
    with pytest.raises(AlreadyEnded):
        session.end(CUSTOMER, "m1")


def test_delta_gap_names_the_expected_seq(session):
    """A delta that skips a seq is 409 delta_gap with the seq expected."""
    streaming(session)
    with pytest.raises(DeltaGap) as caught:
        session.delta(AI, "m1", 2)
    assert (caught.value.code, caught.value.status) == ("delta_gap", 409)
    assert (caught.value.expected, caught.value.received) == (1, 2)


def test_replayed_seq_is_a_gap(session):
    """A delta repeating an earlier seq (under a new event id) is refused."""
    streaming(session)
    with pytest.raises(DeltaGap) as caught:
        session.delta(AI, "m1", 0)
    assert caught.value.expected == 1


@given(st.permutations(range(6)))
def test_deltas_out_of_order_are_refused_at_the_first_misplaced(order):
    """Any delivery order is accepted exactly up to its first seq out of place."""
    session = Session()
    session.start(AI, "m1")
    for position, seq in enumerate(order):
        if seq != position:
            with pytest.raises(DeltaGap) as caught:
                session.delta(AI, "m1", seq)
            assert (caught.value.expected, caught.value.received) == (position, seq)
            return
        session.delta(AI, "m1", seq)


def test_only_the_producer_continues_a_message(session):
    """Another participant cannot write into someone's message."""
    streaming(session)
    with pytest.raises(Forbidden, match="producer"):
        session.delta(AI_2, "m1", 1)


def test_customer_may_not_end_the_ai_message(session):
    """A customer stops a reply with run.cancel, not by ending it."""
    streaming(session)
    with pytest.raises(Forbidden):
        session.end(CUSTOMER, "m1")


def test_server_may_end_any_message(session):
    """The server ends messages (floor lost, producer lost)."""
    streaming(session)
    session.store(
        session.state.validate(
            session.draft(
                "message.end",
                {"message_id": "m1", "status": "error", "reason": "producer_lost"},
            ),
            SERVER,
        ).entries()
    )
    assert "m1" not in session.state.messages


def test_delta_takes_the_visibility_of_its_message(session):
    """A delta with no visibility is staff when its message is."""
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant"},
        visibility="staff",
    )
    (event,) = session.delta(AI, "m1", 0)
    assert event.visibility == "staff"


def test_delta_may_not_change_the_visibility_of_its_message(session):
    """A delta visible to all of a staff message would reveal it."""
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant"},
        visibility="staff",
    )
    with pytest.raises(InvalidEvent, match="like what it continues"):
        session.delta(AI, "m1", 0, visibility="all")


def test_delta_may_repeat_the_visibility_of_its_message(session):
    """An explicit visibility equal to the message's passes."""
    streaming(session)
    session.delta(AI, "m1", 1, visibility="all")


def test_delta_that_skips_a_part_index_is_refused(session):
    """A new part takes the next free index."""
    streaming(session)
    with pytest.raises(InvalidEvent) as caught:
        session.delta(AI, "m1", 1, part_index=2)
    assert caught.value.field == "data.part_index"


def test_delta_that_changes_a_part_type_is_refused(session):
    """A part keeps its type."""
    streaming(session)
    data = delta("m1", 1, "x", 0, "reasoning")
    with pytest.raises(InvalidEvent) as caught:
        session.publish(AI, "message.delta", data)
    assert caught.value.field == "data.part_type"


def test_customer_is_told_a_staff_message_is_unknown(session):
    """Open or ended, a staff message does not exist for a customer."""
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant"},
        visibility="staff",
    )
    with pytest.raises(UnknownReference):
        session.delta(CUSTOMER, "m1", 0)
    session.end(AI, "m1")
    with pytest.raises(UnknownReference):
        session.end(CUSTOMER, "m1")


# Runs


@pytest.mark.parametrize("actor", [CUSTOMER, SUPERVISOR])
def test_run_start_is_refused_to_customers_and_supervisors(session, actor):
    """Runs are the AI's, agents' and services'."""
    with pytest.raises(Forbidden):
        session.run(actor, "r1")


def test_run_id_is_used_once(session):
    """Open or ended, a run id cannot start a second run."""
    session.run(AI, "r1")
    with pytest.raises(DuplicateReference) as caught:
        session.run(AI, "r1")
    assert caught.value.code == "duplicate_run"
    session.publish(AI, "run.end", {"run_id": "r1", "status": "complete"})
    with pytest.raises(DuplicateReference):
        session.run(AI, "r1")


def test_run_may_reply_to_an_open_or_complete_message(session):
    """in_reply_to names a message of the session."""
    session.say(CUSTOMER, "m1")
    session.run(AI, "r1", in_reply_to="m1")
    session.start(CUSTOMER, "m2", role="user")
    session.run(AI, "r2", in_reply_to="m2")


def test_run_may_not_reply_to_an_unknown_message(session):
    """in_reply_to must name a message that exists."""
    with pytest.raises(UnknownReference) as caught:
        session.run(AI, "r1", in_reply_to="m9")
    assert caught.value.code == "unknown_message"


def test_visible_run_may_not_reply_to_a_staff_message(session):
    """A run visible to all cannot name a staff message."""
    session.publish(
        AI,
        "message",
        {"message_id": "m1", "role": "system", "parts": []},
        visibility="staff",
    )
    with pytest.raises(InvalidEvent):
        session.run(AI, "r1", in_reply_to="m1")


def test_run_end_takes_the_visibility_of_its_run(session):
    """A staff run ends staff."""
    session.publish(AI, "run.start", {"run_id": "r1"}, visibility="staff")
    (event,) = session.publish(AI, "run.end", {"run_id": "r1", "status": "complete"})
    assert event.visibility == "staff"


def test_only_the_owner_ends_a_run(session):
    """Another AI cannot end the run."""
    session.run(AI, "r1")
    with pytest.raises(Forbidden, match="owner"):
        session.publish(AI_2, "run.end", {"run_id": "r1", "status": "complete"})


def test_run_end_of_an_unknown_run_is_refused(session):
    """run.end needs an open run."""
    with pytest.raises(UnknownReference):
        session.publish(AI, "run.end", {"run_id": "r1", "status": "complete"})


def test_customer_cancels_a_run_in_their_session(session):
    """run.cancel is the customer's stop button."""
    session.run(AI, "r1")
    (event,) = session.publish(CUSTOMER, "run.cancel", {"run_id": "r1"})
    assert event.visibility == "all"


def test_other_customer_may_not_cancel(session):
    """A customer acts only in their own session."""
    session.run(AI, "r1")
    with pytest.raises(Forbidden, match="own session"):
        session.publish(OTHER_CUSTOMER, "run.cancel", {"run_id": "r1"})


def test_cancel_of_an_ended_run_is_refused(session):
    """A cancel that lost the race with the end tells the canceller."""
    session.run(AI, "r1")
    session.publish(AI, "run.end", {"run_id": "r1", "status": "complete"})
    with pytest.raises(AlreadyEnded):
        session.publish(CUSTOMER, "run.cancel", {"run_id": "r1"})


def test_customer_is_told_a_staff_run_is_unknown_on_cancel(session):
    """A customer cannot cancel, or learn of, a staff run."""
    session.publish(AI, "run.start", {"run_id": "r1"}, visibility="staff")
    with pytest.raises(UnknownReference):
        session.publish(CUSTOMER, "run.cancel", {"run_id": "r1"})


def test_tool_call_is_staff_by_default(session):
    """Tool I/O is staff unless published otherwise."""
    session.run(AI, "r1")
    (event,) = session.publish(
        AI,
        "tool.call",
        {"tool_call_id": "c1", "tool_name": "lookup", "input": {}, "run_id": "r1"},
    )
    assert event.visibility == "staff"


def test_tool_result_without_a_run_is_accepted(session):
    """run_id is optional on tool events."""
    session.publish(AGENT, "tool.result", {"tool_call_id": "c1", "output": "ok"})


def test_customer_may_not_publish_tool_events(session):
    """Tool I/O is staff's."""
    with pytest.raises(Forbidden):
        session.publish(
            CUSTOMER, "tool.call", {"tool_call_id": "c", "tool_name": "t", "input": 1}
        )


# Floor control


def test_customer_asks_for_a_human_warm(session):
    """A warm request keeps the floor with the AI until a human accepts."""
    events = session.publish(
        CUSTOMER, "control.request", {"request_id": "q1", "mode": "warm"}
    )
    assert [e.type for e in events] == ["control.request"]
    assert session.state.controller_role == "ai"


def test_customer_may_not_ask_cold(session):
    """A customer's request is always warm."""
    with pytest.raises(Forbidden, match="always warm"):
        session.publish(
            CUSTOMER, "control.request", {"request_id": "q", "mode": "cold"}
        )


def test_request_id_is_used_once(session):
    """A second request with the same id is refused."""
    escalated(session)
    with pytest.raises(DuplicateReference) as caught:
        escalated(session)
    assert caught.value.code == "duplicate_request"


def test_agent_may_not_request_without_the_floor(session):
    """An ai's or agent's request needs the floor."""
    with pytest.raises(NotInControl):
        session.publish(AGENT, "control.request", {"request_id": "q", "mode": "warm"})


def test_supervisor_may_not_request(session):
    """Supervisors accept (with barge), they do not request."""
    with pytest.raises(Forbidden):
        session.publish(
            SUPERVISOR, "control.request", {"request_id": "q", "mode": "warm"}
        )


def test_cold_request_empties_the_floor_and_ends_the_ai_stream(session):
    """A cold request releases the floor now: the AI's messages and runs end."""
    session.run(AI, "r1")
    streaming(session, run_id="r1")
    session.start(CUSTOMER, "u1", role="user")
    events = session.publish(AI, "control.request", {"request_id": "q", "mode": "cold"})
    assert [(e.type, e.actor.role) for e in events] == [
        ("control.request", "ai"),
        ("message.end", "server"),
        ("run.end", "server"),
    ]
    assert events[1].data == {
        "message_id": "m1",
        "status": "cancelled",
        "reason": "floor_lost",
    }
    assert events[2].data["reason"] == "floor_lost"
    assert session.state.controller_role is None
    assert list(session.state.messages) == ["u1"]


def test_accept_gives_the_floor_and_ends_the_ai_stream(session):
    """The first accept takes the floor; the AI's open message ends in the commit."""
    streaming(session)
    escalated(session)
    events = session.publish(AGENT, "control.accept", {"request_id": "q1"})
    assert [e.type for e in events] == ["control.accept", "message.end"]
    assert (session.state.controller_role, session.state.controller) == (
        "agent",
        AGENT.id,
    )
    with pytest.raises(NotInControl):
        session.start(AI, "m2")
    session.start(AGENT, "m2")


def test_second_accept_is_already_accepted(session):
    """First accept wins; the next one is 409 already_accepted."""
    humans_floor(session)
    with pytest.raises(AlreadyAccepted) as caught:
        session.publish(AGENT_2, "control.accept", {"request_id": "q1"})
    assert (caught.value.code, caught.value.status) == ("already_accepted", 409)


def test_accept_answers_every_pending_request(session):
    """Once a human took the floor, older pending requests are answered too."""
    escalated(session, "q1")
    session.publish(AI, "control.request", {"request_id": "q2", "mode": "warm"})
    session.publish(AGENT, "control.accept", {"request_id": "q2"})
    with pytest.raises(AlreadyAccepted):
        session.publish(AGENT_2, "control.accept", {"request_id": "q1"})


def test_accept_of_an_unknown_request_is_refused(session):
    """control.accept names a request of the session."""
    with pytest.raises(UnknownReference) as caught:
        session.publish(AGENT, "control.accept", {"request_id": "q9"})
    assert caught.value.code == "unknown_request"


@pytest.mark.parametrize("actor", [CUSTOMER, AI])
def test_accept_is_refused_to_customers_and_the_ai(session, actor):
    """Only humans (and services) accept."""
    escalated(session)
    with pytest.raises(Forbidden):
        session.publish(actor, "control.accept", {"request_id": "q1"})


def test_supervisor_accepts_only_with_barge(session):
    """A supervisor's accept needs the right that the barge cap grants."""
    escalated(session)
    with pytest.raises(Forbidden):
        session.publish(SUPERVISOR, "control.accept", {"request_id": "q1"})
    session.publish(SUPERVISOR, "control.accept", {"request_id": "q1"}, caps={"barge"})
    assert session.state.controller == SUPERVISOR.id


def test_supervisor_barges_in_without_a_request(session):
    """With barge, a supervisor takes the floor with no pending request, and
    the AI's open message ends in the same commit."""
    streaming(session)
    events = session.publish(
        SUPERVISOR, "control.accept", {"request_id": "barge-1"}, caps={"barge"}
    )
    assert [e.type for e in events] == ["control.accept", "message.end"]
    assert events[1].data["reason"] == "floor_lost"
    assert session.state.controller == SUPERVISOR.id
    with pytest.raises(UnknownReference):
        session.publish(AGENT, "control.accept", {"request_id": "barge-2"})


def test_barge_does_not_help_a_customer(session):
    """A cap cannot turn a never into a may."""
    escalated(session)
    with pytest.raises(Forbidden):
        session.publish(
            CUSTOMER, "control.accept", {"request_id": "q1"}, caps={"barge"}
        )


def test_accept_of_a_staff_request_must_be_staff(session):
    """Accepting a silent escalation must not reveal it to the customer."""
    session.publish(
        AI, "control.request", {"request_id": "q1", "mode": "warm"}, visibility="staff"
    )
    with pytest.raises(InvalidEvent):
        session.publish(AGENT, "control.accept", {"request_id": "q1"})
    session.publish(AGENT, "control.accept", {"request_id": "q1"}, visibility="staff")


def test_accept_by_the_holder_changes_nothing(session):
    """An accept by whoever holds the floor ends nothing."""
    humans_floor(session)
    session.start(AGENT, "m1")
    session.publish(AGENT, "control.request", {"request_id": "q2", "mode": "warm"})
    events = session.publish(AGENT, "control.accept", {"request_id": "q2"})
    assert [e.type for e in events] == ["control.accept"]


def test_release_hands_the_floor_back_to_the_ai(session):
    """Handback: the agent's open message ends and the AI may speak again."""
    session.say(AI, "m0", role="assistant")
    humans_floor(session)
    session.start(AGENT, "m1")
    events = session.publish(AGENT, "control.release", {"to": AI.id})
    assert [e.type for e in events] == ["control.release", "message.end"]
    assert (session.state.controller_role, session.state.controller) == ("ai", AI.id)
    session.start(AI, "m2")
    with pytest.raises(NotInControl):
        session.start(AI_2, "m3")


def test_release_without_a_target_empties_the_floor(session):
    """Without to, nobody holds the floor: the session waits in the queue."""
    humans_floor(session)
    session.publish(AGENT, "control.release", {})
    assert session.state.controller_role is None
    with pytest.raises(NotInControl):
        session.start(AI, "m1")


def test_release_to_an_unknown_participant_is_refused(session):
    """to names a participant the session knows."""
    humans_floor(session)
    with pytest.raises(UnknownReference) as caught:
        session.publish(AGENT, "control.release", {"to": "nobody"})
    assert caught.value.code == "unknown_participant"


def test_release_to_the_customer_is_refused(session):
    """The floor goes to an ai, agent or supervisor."""
    humans_floor(session)
    with pytest.raises(InvalidEvent, match="the floor goes to") as caught:
        session.publish(AGENT, "control.release", {"to": CUSTOMER.id})
    assert caught.value.field == "data.to"


def test_release_by_a_non_controller_is_not_in_control(session):
    """Only the controller releases the floor."""
    humans_floor(session)
    with pytest.raises(NotInControl):
        session.publish(AI, "control.release", {})


def test_customer_may_not_release(session):
    """Customers do not hold the floor."""
    with pytest.raises(Forbidden):
        session.publish(CUSTOMER, "control.release", {})


def test_service_pins_a_role_held_floor_to_one_ai(session):
    """Passing the floor from any AI to one AI ends the other AIs' messages."""
    session.say(AI, "m0", role="assistant")
    streaming(session, AI, "m1")
    streaming(session, AI_2, "m2")
    events = session.publish(SERVICE, "control.release", {"to": AI.id})
    assert [e.data.get("message_id") for e in events] == [None, "m2"]


# Notes, session events, redaction, membership, app events


def test_note_is_staff_by_default(session):
    """A supervisor's whisper is staff."""
    (event,) = session.publish(SUPERVISOR, "note", {"text": "offer a voucher"})
    assert event.visibility == "staff"


def test_customer_may_not_publish_a_note(session):
    """Notes are staff's."""
    with pytest.raises(Forbidden):
        session.publish(CUSTOMER, "note", {"text": "x"})


def test_service_updates_the_session(session):
    """session.updated is a service's."""
    session.publish(SERVICE, "session.updated", {"priority": 1})


def test_agent_may_not_update_the_session(session):
    """The rights table gives session.* to services only."""
    with pytest.raises(Forbidden):
        session.publish(AGENT, "session.updated", {"priority": 1})


def test_close_ends_what_is_open_just_before(session):
    """Closing ends open messages and runs first, then the session is read-only."""
    session.run(AI, "r1")
    streaming(session, run_id="r1")
    events = session.publish(SERVICE, "session.closed", {"reason": "resolved"})
    assert [(e.type, e.data.get("reason")) for e in events] == [
        ("message.end", "session_closed"),
        ("run.end", "session_closed"),
        ("session.closed", "resolved"),
    ]
    with pytest.raises(SessionClosed) as caught:
        session.say(CUSTOMER, "m2")
    assert (caught.value.code, caught.value.status) == ("session_closed", 409)


def test_redaction_of_an_earlier_event_is_accepted(session):
    """A supervisor may blank an event that exists."""
    (event,) = session.say(CUSTOMER, "m1", text="my card is 4111…")
    session.publish(SUPERVISOR, "redaction", {"offset": str(event.offset)})


@pytest.mark.parametrize(
    "offset",
    [
        "0000000000000003_0000000000000002",
        "0000000000000003_0000000000000000",
        "0000000000000004_0000000000000001",
    ],
)
def test_redaction_of_an_offset_that_is_no_event_is_refused(session, offset):
    """Beyond the tail, the start, or another generation: no such event."""
    session.say(CUSTOMER, "m1")
    with pytest.raises(UnknownReference) as caught:
        session.publish(SUPERVISOR, "redaction", {"offset": offset})
    assert caught.value.code == "unknown_offset"


def test_redaction_after_a_restore_names_events_by_their_generation(session):
    """After a restore continued the log in a newer generation, an event is
    named with the generation that stored it; a position named with another
    one (an offset the restore lost) is no event."""
    (old,) = session.say(CUSTOMER, "m1")
    session.generation = GENERATION + 5
    (new,) = session.say(CUSTOMER, "m2")
    session.publish(SUPERVISOR, "redaction", {"offset": str(old.offset)})
    session.publish(SUPERVISOR, "redaction", {"offset": str(new.offset)})
    for wrong in (Offset(GENERATION + 5, 1), Offset(GENERATION, 2)):
        with pytest.raises(UnknownReference):
            session.publish(SUPERVISOR, "redaction", {"offset": str(wrong)})


def test_redaction_in_an_empty_session_is_refused(session):
    """An empty session has no event to redact."""
    with pytest.raises(UnknownReference):
        session.publish(
            SERVICE, "redaction", {"offset": "0000000000000003_0000000000000001"}
        )


def test_agent_may_not_redact(session):
    """Redaction is a supervisor's or a service's."""
    (event,) = session.say(CUSTOMER, "m1")
    with pytest.raises(Forbidden):
        session.publish(AGENT, "redaction", {"offset": str(event.offset)})


def test_membership_events_are_the_servers(session):
    """No participant publishes participant.joined."""
    data = {"participant": {"id": AGENT.id, "role": "agent"}}
    with pytest.raises(Forbidden):
        session.publish(AGENT, "participant.joined", data)
    session.store(
        session.state.validate(
            session.draft("participant.joined", data), SERVER
        ).entries()
    )


def test_customer_publishes_app_events(session):
    """x.<name> events are open to the customer, in their own session."""
    session.publish(CUSTOMER, "x.feedback", {"stars": 5})


def test_customer_may_not_publish_staff_events(session):
    """Whatever a customer publishes is visible to all."""
    with pytest.raises(Forbidden, match="visible to all"):
        session.publish(CUSTOMER, "x.feedback", {"stars": 1}, visibility="staff")


def test_validate_changes_nothing(session):
    """A refused or accepted draft leaves the state as it was until applied."""
    streaming(session)
    before = session.state.to_json()
    escalated_draft = session.draft(
        "control.request", {"request_id": "q", "mode": "cold"}
    )
    session.state.validate(escalated_draft, AI)
    with pytest.raises(DeltaGap):
        session.state.validate(session.draft("message.delta", delta("m1", 5)), AI)
    assert session.state.to_json() == before


def test_session_without_customer_refuses_customers():
    """A session with no customer yet has no customer to publish."""
    session = Session(SessionState(None))
    with pytest.raises(Forbidden):
        session.say(CUSTOMER, "m1")
