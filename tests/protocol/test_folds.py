"""SessionState.apply(): how stored events fold, including events it must skip."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from threadline.protocol.actors import SERVER
from threadline.protocol.events import GENESIS_HASH, Event, format_ts
from threadline.protocol.offsets import Offset
from threadline.protocol.parts import parse_parts
from threadline.protocol.state import SessionState

from .sessions import AGENT, AI, AI_2, CUSTOMER, SUPERVISOR, T0, delta


class Log:
    """Stores events straight into a state, as a replay of a log would."""

    def __init__(self, state=None):
        self.state = state or SessionState(CUSTOMER.id)
        self.positions = itertools.count(1)

    def apply(self, type_, data, actor=AI, visibility="all", at=None):
        position = next(self.positions)
        event = Event(
            offset=Offset(3, position),
            ts=format_ts(T0 + position if at is None else at),
            type=type_,
            id=f"e{position}",
            actor=actor,
            visibility=visibility,
            data=data,
            prev_hash=GENESIS_HASH,
            hash=GENESIS_HASH,
        )
        event.check()
        self.state.apply(event)
        return event


@pytest.fixture
def log():
    return Log()


def start(log, message_id="m1", actor=AI, **data):
    return log.apply(
        "message.start",
        {"message_id": message_id, "role": "assistant", **data},
        actor,
    )


def test_publisher_becomes_a_known_participant(log):
    """Whoever publishes is known (not a member) with their role."""
    log.apply("x.ping", {}, CUSTOMER)
    participant = log.state.participants[CUSTOMER.id]
    assert (participant.role, participant.name, participant.member) == (
        "customer",
        "Dana",
        False,
    )


def test_server_is_not_a_participant(log):
    """The server's events add no participant."""
    log.apply("x.ping", {}, SERVER)
    assert log.state.participants == {}


def test_apply_records_the_last_offset(log):
    """Every event moves last_offset, even one nothing folds."""
    event = log.apply("x.ping", {})
    assert log.state.last_offset == event.offset


def test_complete_message_is_recorded_as_ended(log):
    """A message event leaves its id taken, with its visibility."""
    log.apply(
        "message", {"message_id": "m1", "role": "system", "parts": []}, AGENT, "staff"
    )
    assert log.state.ended_messages == {"m1": "staff"}


def test_start_opens_a_message(log):
    """message.start opens a message at seq 0, produced by its publisher."""
    event = start(log, run_id="r1")
    message = log.state.messages["m1"]
    assert (message.producer, message.next_seq, message.start_offset) == (
        AI,
        0,
        event.offset,
    )
    assert message.run_id == "r1"


def test_second_start_is_skipped(log):
    """A second start of an open message keeps the first."""
    start(log)
    start(log, actor=AI_2)
    assert log.state.messages["m1"].producer == AI


def test_start_of_an_ended_message_is_skipped(log):
    """An ended message id is not opened again."""
    log.apply("message", {"message_id": "m1", "role": "user", "parts": []}, CUSTOMER)
    start(log)
    assert log.state.messages == {}


def test_deltas_fold_text_and_advance_the_seq(log):
    """Text deltas concatenate and the next seq follows the last."""
    start(log)
    log.apply("message.delta", delta("m1", 0, "Good"))
    log.apply("message.delta", delta("m1", 1, "bye"))
    message = log.state.messages["m1"]
    assert message.next_seq == 2
    assert [p.to_json() for p in message.fold.parts()] == [
        {"type": "text", "text": "Goodbye"}
    ]


def test_non_text_delta_sets_its_part(log):
    """A data delta sets (then replaces) its part."""
    start(log)
    body = {"message_id": "m1", "part_index": 0, "part_type": "data-card"}
    log.apply("message.delta", {**body, "seq": 0, "data": {"data": 1}})
    log.apply("message.delta", {**body, "seq": 1, "data": {"data": 2}})
    (part,) = log.state.messages["m1"].fold.parts()
    assert part.to_json() == {"type": "data-card", "data": 2}


def test_delta_for_an_unknown_message_is_skipped(log):
    """A delta without its start changes nothing but last_offset."""
    log.apply("message.delta", delta("m9", 0))
    assert log.state.messages == {} and log.state.ended_messages == {}


def test_delta_that_does_not_fit_its_parts_is_skipped(log):
    """A delta at a wrong index keeps the parts but still moves the seq."""
    start(log)
    log.apply("message.delta", delta("m1", 0, "a", part_index=3))
    message = log.state.messages["m1"]
    assert message.fold.parts() == [] and message.next_seq == 1


def test_end_closes_the_message(log):
    """message.end moves the message from open to ended."""
    start(log)
    log.apply("message.end", {"message_id": "m1", "status": "complete"})
    assert log.state.messages == {} and log.state.ended_messages == {"m1": "all"}


def test_end_of_an_unknown_message_is_recorded(log):
    """An end without its start still takes the id."""
    log.apply("message.end", {"message_id": "m1", "status": "error"}, SERVER)
    assert log.state.ended_messages == {"m1": "all"}


def test_run_start_and_end(log):
    """run.start opens a run for its publisher; run.end closes it."""
    log.apply("run.start", {"run_id": "r1", "in_reply_to": "m0"}, AI, "staff")
    run = log.state.runs["r1"]
    assert (run.owner, run.visibility, run.in_reply_to) == (AI, "staff", "m0")
    log.apply("run.end", {"run_id": "r1", "status": "complete"}, AI, "staff")
    assert log.state.runs == {} and log.state.ended_runs == {"r1": "staff"}


def test_second_run_start_is_skipped(log):
    """A run id starts one run, even when replayed."""
    log.apply("run.start", {"run_id": "r1"}, AI)
    log.apply("run.start", {"run_id": "r1"}, AI_2)
    log.apply("run.end", {"run_id": "r1", "status": "complete"})
    log.apply("run.start", {"run_id": "r1"}, AI_2)
    assert log.state.runs == {}


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        (
            "tool.call",
            {"tool_call_id": "c", "tool_name": "t", "input": 1, "run_id": "r1"},
        ),
        ("tool.result", {"tool_call_id": "c", "output": 1, "run_id": "r1"}),
        (
            "message",
            {"message_id": "m1", "role": "assistant", "parts": [], "run_id": "r1"},
        ),
        ("message.start", {"message_id": "m1", "role": "assistant", "run_id": "r1"}),
    ],
)
def test_events_of_a_run_keep_it_alive(log, type_, data):
    """Tool events and messages of a run refresh its last activity."""
    log.apply("run.start", {"run_id": "r1"}, at=T0)
    event = log.apply(type_, data, at=T0 + 20)
    assert log.state.runs["r1"].last_activity == event.ts


def test_deltas_and_end_keep_their_run_alive(log):
    """A message's deltas and end refresh its run's activity."""
    log.apply("run.start", {"run_id": "r1"}, at=T0)
    start(log, run_id="r1")
    event = log.apply("message.delta", delta("m1", 0), at=T0 + 20)
    assert log.state.runs["r1"].last_activity == event.ts
    event = log.apply(
        "message.end", {"message_id": "m1", "status": "complete"}, at=T0 + 40
    )
    assert log.state.runs["r1"].last_activity == event.ts


def test_tool_event_without_a_run_changes_nothing(log):
    """A tool event that names no run refreshes nothing."""
    log.apply("tool.result", {"tool_call_id": "c", "output": 1})
    assert log.state.runs == {}


def test_warm_request_keeps_the_floor(log):
    """A warm request is pending; the floor stays."""
    log.apply("control.request", {"request_id": "q1", "mode": "warm"}, CUSTOMER)
    request = log.state.requests["q1"]
    assert (request.by, request.mode, request.accepted) == (CUSTOMER.id, "warm", False)
    assert log.state.controller_role == "ai"


def test_cold_request_empties_the_floor(log):
    """A cold request releases the floor at once."""
    log.apply("control.request", {"request_id": "q1", "mode": "cold"})
    assert (log.state.controller_role, log.state.controller) == (None, None)


def test_accept_gives_the_floor_to_the_acceptor(log):
    """The acceptor holds the floor and every request is answered."""
    log.apply("control.request", {"request_id": "q1", "mode": "warm"}, CUSTOMER)
    log.apply("control.request", {"request_id": "q2", "mode": "warm"})
    log.apply("control.accept", {"request_id": "q1"}, SUPERVISOR)
    assert (log.state.controller_role, log.state.controller) == (
        "supervisor",
        SUPERVISOR.id,
    )
    assert all(r.accepted for r in log.state.requests.values())


def test_release_to_a_known_participant(log):
    """The floor goes to the named participant, with its role."""
    log.apply("x.ping", {}, AI_2)
    log.apply("control.release", {"to": AI_2.id}, AGENT)
    assert (log.state.controller_role, log.state.controller) == ("ai", AI_2.id)


@pytest.mark.parametrize("data", [{}, {"to": "nobody"}])
def test_release_to_nobody_known_empties_the_floor(log, data):
    """Without a known target, the floor is empty."""
    log.apply("control.release", data, AGENT)
    assert (log.state.controller_role, log.state.controller) == (None, None)


def test_join_and_leave_set_membership(log):
    """participant.joined makes a member, staff-only for a supervisor."""
    who = {"id": SUPERVISOR.id, "role": "supervisor", "name": "Kim"}
    log.apply("participant.joined", {"participant": who}, SERVER, "staff")
    participant = log.state.participants[SUPERVISOR.id]
    assert (participant.member, participant.staff, participant.name) == (
        True,
        True,
        "Kim",
    )
    log.apply("participant.left", {"participant": who}, SERVER, "staff")
    assert not log.state.participants[SUPERVISOR.id].member


def test_update_may_change_the_customer(log):
    """session.updated with customer changes who owns the session."""
    log.apply("session.updated", {"priority": 1})
    assert log.state.customer == CUSTOMER.id
    log.apply("session.updated", {"customer": "cust_9"})
    assert log.state.customer == "cust_9"


def test_close_makes_the_session_read_only(log):
    """session.closed sets closed."""
    log.apply("session.closed", {})
    assert log.state.closed


def test_apply_refuses_an_offset_that_does_not_follow(log):
    """Events fold in offset order; a stale one is a caller bug."""
    event = log.apply("x.ping", {})
    with pytest.raises(ValueError, match="does not follow"):
        log.state.apply(event)


# Streamed and complete messages fold to the same parts

part_objects = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=12)),
        st.builds(lambda t: {"type": "reasoning", "text": t}, st.text(max_size=12)),
        st.builds(lambda n: {"type": "data-card", "data": n}, st.integers()),
        st.just(
            {"type": "tool-call", "tool_call_id": "c", "tool_name": "t", "input": None}
        ),
    ),
    max_size=5,
)


@given(st.data(), part_objects)
def test_streamed_message_folds_to_the_complete_message(data, parts):
    """Streaming a message's parts in random chunks folds to those parts."""
    log = Log()
    start(log)
    seq = 0
    for index, part in enumerate(parts):
        body = {k: v for k, v in part.items() if k != "type"}
        base = {"message_id": "m1", "part_index": index, "part_type": part["type"]}
        if "text" in part:
            text = part["text"]
            cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=3)))
            bounds = [0, *cuts, len(text)]
            for a, b in zip(bounds, bounds[1:], strict=False):
                log.apply("message.delta", {**base, "seq": seq, "text": text[a:b]})
                seq += 1
        else:
            log.apply("message.delta", {**base, "seq": seq, "data": body})
            seq += 1
    snapshot = log.state.snapshot(staff=True)
    assert snapshot["messages"][0]["parts"] == [p.to_json() for p in parse_parts(parts)]
