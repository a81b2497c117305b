from __future__ import annotations

import json

import pytest

from threadline.exceptions import Forbidden, NotInControl, SessionClosed
from threadline.protocol.actors import SERVER, Actor
from threadline.protocol.events import EventDraft
from threadline.protocol.records import server_event_id
from threadline.protocol.state import LEASE, SessionState

from .sessions import (
    AGENT,
    AI,
    AI_2,
    CUSTOMER,
    GENERATION,
    OTHER_CUSTOMER,
    SERVICE,
    SUPERVISOR,
    Session,
)


@pytest.fixture
def session():
    return Session()


# Construction and the floor


def test_session_starts_with_the_ai_holding_the_floor():
    """By default any AI holds the floor of a new session."""
    state = SessionState(CUSTOMER.id)
    assert state.holds_floor(AI) and state.holds_floor(AI_2)
    assert not state.holds_floor(AGENT)


def test_session_may_start_with_a_named_controller():
    """The initial controller is configurable per session."""
    state = SessionState(CUSTOMER.id, controller_role="agent", controller=AGENT.id)
    assert state.holds_floor(AGENT) and not state.holds_floor(AI)


def test_session_may_start_with_an_empty_floor():
    """With no controller role the floor starts empty."""
    session = Session(SessionState(CUSTOMER.id, controller_role=None))
    with pytest.raises(NotInControl):
        session.start(AI, "m1")


def test_customer_cannot_be_the_initial_controller():
    """Only ai, agent and supervisor hold the floor."""
    with pytest.raises(ValueError, match="cannot hold the floor"):
        SessionState(CUSTOMER.id, controller_role="customer")


def test_controller_needs_a_role():
    """A named controller without its role is refused."""
    with pytest.raises(ValueError, match="needs its role"):
        SessionState(CUSTOMER.id, controller_role=None, controller=AI.id)


# validate()


@pytest.mark.parametrize(
    "actor", [Actor("threadline", "service"), Actor("svc", "server")]
)
def test_validate_refuses_a_claim_on_the_server_identity(session, actor):
    """Only the server actor itself is the server."""
    with pytest.raises(Forbidden, match="server actor"):
        session.publish(actor, "x.ping", {})


def test_validate_refuses_everything_in_a_closed_session(session):
    """After session.closed, even the server's events are refused."""
    session.publish(SERVICE, "session.closed", {})
    with pytest.raises(SessionClosed):
        session.state.validate(session.draft("x.ping", {}), SERVER)


def test_validate_refuses_another_customer(session):
    """A customer publishes only in the session they own."""
    with pytest.raises(Forbidden, match="own session"):
        session.say(OTHER_CUSTOMER, "m1")


def test_validate_resolves_a_missing_visibility(session):
    """The accepted draft carries the visibility it will be stored with."""
    accepted = session.validate(AI, "tool.result", {"tool_call_id": "c", "output": 1})
    assert accepted.draft.visibility == "staff"
    assert accepted.draft.id.startswith("e")


def test_validate_keeps_a_draft_that_names_its_visibility(session):
    """A draft with its visibility is accepted as it is."""
    draft = session.draft("x.ping", {}, "staff")
    assert session.state.validate(draft, AI).draft is draft


def test_accepted_entries_are_in_log_order_with_their_actors(session):
    """Server events before, the draft with its publisher, server events after."""
    session.start(AI, "m1")
    accepted = session.validate(SERVICE, "session.closed", {})
    assert [(a, d.type) for a, d in accepted.entries()] == [
        (SERVER, "message.end"),
        (SERVICE, "session.closed"),
    ]
    session.store(accepted.entries())
    session2 = Session()
    session2.start(AI, "m1")
    session2.publish(CUSTOMER, "control.request", {"request_id": "q", "mode": "warm"})
    accepted = session2.validate(AGENT, "control.accept", {"request_id": "q"})
    assert [(a, d.type) for a, d in accepted.entries()] == [
        (AGENT, "control.accept"),
        (SERVER, "message.end"),
    ]


def test_copy_is_independent(session):
    """Folding into a copy (a batch in progress) leaves the original alone."""
    session.start(AI, "m1")
    original = session.state
    session.state = original.copy()
    session.delta(AI, "m1", 0, "Good")
    assert original.messages["m1"].next_seq == 0
    assert session.state.messages["m1"].next_seq == 1


# Dead producers


def test_expired_ends_a_silent_message_and_run(session):
    """Past the lease, the server ends them error/producer_lost, messages first."""
    session.run(AI, "r1")
    session.start(AI, "m1", run_id="r1")
    drafts = session.state.expired(session.now + LEASE)
    assert [(d.type, d.data["status"], d.data["reason"]) for d in drafts] == [
        ("message.end", "error", "producer_lost"),
        ("run.end", "error", "producer_lost"),
    ]
    assert drafts[0].id == server_event_id("message.end", "m1")
    session.store([(SERVER, d) for d in drafts])
    assert session.state.messages == {} and session.state.runs == {}


def test_expired_spares_what_spoke_within_the_lease(session):
    """A message or run with an event less than the lease ago is alive."""
    session.run(AI, "r1")
    session.start(AI, "m1", run_id="r1")
    assert session.state.expired(session.now + LEASE - 0.001) == []


def test_deltas_renew_the_lease(session):
    """Each delta restarts the lease of its message and run."""
    session.run(AI, "r1")
    session.start(AI, "m1", run_id="r1")
    session.now += 25
    session.delta(AI, "m1", 0)
    assert session.state.expired(session.now + 25) == []


def test_expired_takes_a_custom_lease(session):
    """The lease is an argument."""
    session.start(AI, "m1")
    assert len(session.state.expired(session.now + 5, lease=5)) == 1


def test_expired_keeps_staff_ends_staff(session):
    """The end of a staff message is staff."""
    session.publish(
        AI,
        "message.start",
        {"message_id": "m1", "role": "assistant"},
        visibility="staff",
    )
    (draft,) = session.state.expired(session.now + LEASE)
    assert draft.visibility == "staff"


@pytest.mark.parametrize("lease", [0, -1.0, float("nan")])
def test_expired_refuses_a_lease_that_is_not_positive(session, lease):
    """A lease must be a positive number of seconds."""
    with pytest.raises(ValueError, match="positive"):
        session.state.expired(session.now, lease)


# Membership


def test_join_returns_a_joined_event_for_a_newcomer(session):
    """A newcomer gets participant.joined, visible to all."""
    draft = session.state.join(AGENT)
    assert draft is not None
    assert draft.type == "participant.joined"
    assert draft.data == {
        "participant": {"id": AGENT.id, "role": "agent", "name": "Sam"}
    }
    assert draft.visibility == "all"


def test_join_of_a_member_returns_nothing(session):
    """A member joining again (another tab) adds no event."""
    session.store([(SERVER, session.state.join(CUSTOMER))])
    assert session.state.join(CUSTOMER) is None


def test_supervisor_joins_silently(session):
    """A supervisor's membership is staff-only (silent monitoring)."""
    draft = session.state.join(SUPERVISOR)
    assert draft is not None and draft.visibility == "staff"


def test_leave_mirrors_the_join_visibility(session):
    """A supervisor's participant.left is staff-only, like its join."""
    session.store([(SERVER, session.state.join(SUPERVISOR))])
    draft = session.state.leave(SUPERVISOR)
    assert draft is not None
    assert (draft.type, draft.visibility) == ("participant.left", "staff")
    session.store([(SERVER, draft)])
    assert session.state.leave(SUPERVISOR) is None


def test_leave_of_a_customer_is_visible(session):
    """A customer's leave is visible to all."""
    session.store([(SERVER, session.state.join(CUSTOMER))])
    draft = session.state.leave(CUSTOMER)
    assert draft is not None and draft.visibility == "all"


def test_leave_of_a_non_member_returns_nothing(session):
    """Someone who never joined does not leave."""
    session.say(CUSTOMER, "m1")
    assert session.state.leave(CUSTOMER) is None


def test_rejoin_gets_a_new_event_id(session):
    """Joining again after leaving is another event, with another id."""
    first = session.state.join(AGENT)
    session.store([(SERVER, first)])
    session.store([(SERVER, session.state.leave(AGENT))])
    second = session.state.join(AGENT)
    assert first is not None and second is not None and first.id != second.id


@pytest.mark.parametrize("method", ["join", "leave"])
def test_server_does_not_join_or_leave(session, method):
    """The server is not a participant."""
    with pytest.raises(ValueError, match="not a participant"):
        getattr(session.state, method)(SERVER)


# Persistence and snapshots


def busy(session):
    """A session with a bit of everything in it."""
    session.store([(SERVER, session.state.join(SUPERVISOR))])
    session.say(CUSTOMER, "m0")
    session.run(AI, "r1", in_reply_to="m0")
    session.start(AI, "m1", run_id="r1")
    session.delta(AI, "m1", 0, "Good")
    session.publish(
        AI, "message.start", {"message_id": "m2", "role": "system"}, visibility="staff"
    )
    session.publish(AI, "run.start", {"run_id": "r2"}, visibility="staff")
    session.publish(
        AI, "control.request", {"request_id": "q1", "mode": "warm"}, visibility="staff"
    )
    return session


def test_state_round_trips_through_json(session):
    """A state restored from its JSON is the same state."""
    busy(session)
    stored = json.loads(json.dumps(session.state.to_json()))
    restored = SessionState.from_json(stored)
    assert restored.to_json() == session.state.to_json()


def test_restored_state_validates_like_the_original(session):
    """A restored state expects the same next delta."""
    busy(session)
    session.state = SessionState.from_json(session.state.to_json())
    session.delta(AI, "m1", 1, "bye")
    assert session.state.messages["m1"].fold.parts()[0].to_json()["text"] == "Goodbye"


def test_state_json_can_leave_the_ended_ids_out(session):
    """Without the ended ids the JSON restores a state that knows none of them."""
    busy(session)
    assert session.state.ended_messages
    stored = session.state.to_json(ended=False)
    assert "ended_messages" not in stored and "ended_runs" not in stored
    restored = SessionState.from_json(stored)
    assert restored.ended_messages == {} and restored.ended_runs == {}
    assert restored.to_json(ended=False) == stored


def test_empty_state_round_trips_through_json():
    """A new state has no last offset and round-trips."""
    state = SessionState(None, controller_role=None)
    assert SessionState.from_json(state.to_json()).to_json() == state.to_json()


def test_snapshot_shows_staff_everything(session):
    """Staff see open messages, runs, pending requests and every member."""
    snapshot = busy(session).state.snapshot(staff=True)
    assert [m["message_id"] for m in snapshot["messages"]] == ["m1", "m2"]
    assert snapshot["messages"][0]["parts"] == [{"type": "text", "text": "Good"}]
    assert snapshot["messages"][0]["next_seq"] == 1
    assert [r["run_id"] for r in snapshot["runs"]] == ["r1", "r2"]
    assert [r["request_id"] for r in snapshot["requests"]] == ["q1"]
    assert [p["id"] for p in snapshot["participants"]] == [SUPERVISOR.id]
    assert snapshot["controller"] == {"id": None, "role": "ai"}


def test_snapshot_hides_staff_things_from_a_customer(session):
    """A customer sees no staff message, run, request or silent member."""
    snapshot = busy(session).state.snapshot(staff=False)
    assert [m["message_id"] for m in snapshot["messages"]] == ["m1"]
    assert [r["run_id"] for r in snapshot["runs"]] == ["r1"]
    assert snapshot["requests"] == [] and snapshot["participants"] == []


def test_snapshot_of_an_empty_floor_has_no_controller(session):
    """With nobody on the floor, the controller is null; accepted requests go."""
    session.publish(CUSTOMER, "control.request", {"request_id": "q", "mode": "warm"})
    session.publish(AGENT, "control.accept", {"request_id": "q"})
    session.publish(AGENT, "control.release", {})
    snapshot = session.state.snapshot(staff=True)
    assert snapshot["controller"] is None and snapshot["requests"] == []


def test_server_events_validate_as_the_server(session):
    """Server drafts pass validate() as the server actor."""
    session.start(AI, "m1")
    for draft in session.state.expired(session.now + LEASE):
        assert isinstance(draft, EventDraft)
        session.state.validate(draft, SERVER)


def test_generations_a_restore_went_on_from_are_kept(session):
    """Each generation change is remembered with its last position, survives
    the state's JSON, and names the owner of every position."""
    assert SessionState(CUSTOMER.id).owner_generation(1) is None
    session.say(CUSTOMER, "m1")
    session.say(CUSTOMER, "m2")
    session.generation = GENERATION + 5
    session.say(CUSTOMER, "m3")
    state = session.state
    assert state.earlier_generations == [(GENERATION, 2)]
    assert [state.owner_generation(p) for p in (1, 2, 3)] == [
        GENERATION,
        GENERATION,
        GENERATION + 5,
    ]
    again = SessionState.from_json(json.loads(json.dumps(state.to_json())))
    assert again.earlier_generations == [(GENERATION, 2)]
    plain = SessionState.from_json(
        json.loads(json.dumps(SessionState(CUSTOMER.id).to_json()))
    )
    assert plain.earlier_generations == []
