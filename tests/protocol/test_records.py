from __future__ import annotations

import re

from threadline.protocol.actors import Actor
from threadline.protocol.offsets import Offset
from threadline.protocol.parts import DataPart, PartsFold, TextPart
from threadline.protocol.records import (
    ControlRequest,
    OpenMessage,
    OpenRun,
    Participant,
    end_message,
    end_run,
    server_event_id,
)

AI = Actor("ai_1", "ai", "Assistant", "worker-1")
TS = "2026-11-26T06:10:27.123456Z"


def test_server_event_id_is_derived_from_its_subject():
    """The same event type and key always give the same id."""
    assert server_event_id("message.end", "m1") == server_event_id("message.end", "m1")


def test_server_event_id_differs_by_type_and_key():
    """Another type or another key gives another id."""
    ids = {
        server_event_id("message.end", "m1"),
        server_event_id("message.end", "m2"),
        server_event_id("run.end", "m1"),
    }
    assert len(ids) == 3


def test_server_event_id_is_a_valid_short_event_id():
    """The id names its type and fits the event-id alphabet, whatever the key."""
    ident = server_event_id("participant.joined", "x" * 500)
    assert re.fullmatch(r"participant\.joined:[0-9a-f]{32}", ident)


def test_participant_round_trips_through_json():
    """A participant record survives to_json and from_json."""
    participant = Participant("sup_1", "supervisor", "Kim", member=True, staff=True)
    assert Participant.from_json(participant.to_json()) == participant


def test_open_message_round_trips_through_json():
    """An open message keeps its producer, sequence and parts so far."""
    message = OpenMessage(
        "m1",
        "assistant",
        AI,
        "staff",
        "r1",
        Offset(3, 4),
        TS,
        next_seq=5,
        fold=PartsFold([TextPart("Good"), DataPart("card", {"a": 1})]),
    )
    restored = OpenMessage.from_json(message.to_json())
    assert restored.to_json() == message.to_json()
    assert restored.fold.parts() == message.fold.parts()


def test_open_run_round_trips_through_json():
    """An open run keeps its owner, offset and activity."""
    run = OpenRun("r1", AI, "all", Offset(3, 2), TS, "m1")
    assert OpenRun.from_json(run.to_json()) == run


def test_control_request_round_trips_through_json():
    """A control request keeps its mode and whether it was accepted."""
    request = ControlRequest("q1", "cust_42", "warm", "all", accepted=True)
    assert ControlRequest.from_json(request.to_json()) == request


def test_end_message_is_a_server_end_visible_as_its_message():
    """The server's end of a staff message is staff, with a derived id."""
    message = OpenMessage("m1", "assistant", AI, "staff", None, Offset(3, 4), TS)
    draft = end_message(message, "cancelled", "floor_lost")
    assert draft.type == "message.end"
    assert draft.id == server_event_id("message.end", "m1")
    assert draft.visibility == "staff"
    assert draft.data == {
        "message_id": "m1",
        "status": "cancelled",
        "reason": "floor_lost",
    }
    draft.check()


def test_end_run_is_a_server_end_visible_as_its_run():
    """The server's end of a run has the run's visibility and a derived id."""
    run = OpenRun("r1", AI, "all", Offset(3, 2), TS)
    draft = end_run(run, "error", "producer_lost")
    assert (draft.type, draft.visibility) == ("run.end", "all")
    assert draft.id == server_event_id("run.end", "r1")
    assert draft.data == {"run_id": "r1", "status": "error", "reason": "producer_lost"}
    draft.check()
