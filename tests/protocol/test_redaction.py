"""What a redaction leaves of an event's data, and folding redacted deltas."""

from __future__ import annotations

from typing import Any

import pytest

from threadline.exceptions import InvalidEvent
from threadline.protocol.events import Event
from threadline.protocol.payloads import check_data
from threadline.protocol.redaction import EMPTY_FILE_URL, fold_deltas, redact_data

START = "0000000000000003_0000000000000001"

# type -> (stored data, what a redaction leaves)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "message": (
        {
            "message_id": "m1",
            "role": "user",
            "parts": [{"type": "text", "text": "my card is 4111"}],
            "metadata": {"email": "dana@example.com"},
            "start_offset": START,
        },
        {"message_id": "m1", "role": "user", "parts": [], "start_offset": START},
    ),
    "message.start": (
        {"message_id": "m1", "role": "assistant", "run_id": "r1", "metadata": {}},
        {"message_id": "m1", "role": "assistant", "run_id": "r1"},
    ),
    "message.end": (
        {"message_id": "m1", "status": "error", "reason": "card 4111 refused"},
        {"message_id": "m1", "status": "error"},
    ),
    "run.start": (
        {"run_id": "r1", "in_reply_to": "m1"},
        {"run_id": "r1", "in_reply_to": "m1"},
    ),
    "run.end": (
        {"run_id": "r1", "status": "error", "reason": "PII"},
        {"run_id": "r1", "status": "error"},
    ),
    "run.cancel": ({"run_id": "r1", "reason": "PII"}, {"run_id": "r1"}),
    "tool.call": (
        {"tool_call_id": "t1", "tool_name": "lookup", "input": {"ssn": "123"}},
        {"tool_call_id": "t1", "tool_name": "lookup", "input": None},
    ),
    "tool.result": (
        {"tool_call_id": "t1", "output": {"ssn": "123"}, "is_error": True},
        {"tool_call_id": "t1", "is_error": True, "output": None},
    ),
    "control.request": (
        {"request_id": "q1", "mode": "warm", "reason": "call me on 555"},
        {"request_id": "q1", "mode": "warm"},
    ),
    "control.accept": ({"request_id": "q1"}, {"request_id": "q1"}),
    "control.release": ({"to": "bot"}, {"to": "bot"}),
    "participant.joined": (
        {"participant": {"id": "cust", "role": "customer", "name": "Dana Q."}},
        {"participant": {"id": "cust", "role": "customer"}},
    ),
    "note": ({"text": "her address is …"}, {"text": ""}),
    "session.updated": ({"attributes": {"phone": "555"}}, {}),
    "session.closed": ({"reason": "PII"}, {}),
    "redaction": ({"offset": START, "reason": "card"}, {"offset": START}),
    "x.order.lookup": ({"order": "123", "email": "d@example.com"}, {}),
}

DELTAS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"part_type": "text", "text": "4111"}, {"part_type": "text", "text": ""}),
    ({"part_type": "reasoning", "text": "…"}, {"part_type": "reasoning", "text": ""}),
    (
        {
            "part_type": "tool-call",
            "data": {"tool_call_id": "t1", "tool_name": "lookup", "input": {"a": 1}},
        },
        {
            "part_type": "tool-call",
            "data": {"tool_call_id": "t1", "tool_name": "lookup", "input": None},
        },
    ),
    (
        {"part_type": "tool-result", "data": {"tool_call_id": "t1", "output": [1]}},
        {"part_type": "tool-result", "data": {"tool_call_id": "t1", "output": None}},
    ),
    (
        {
            "part_type": "file",
            "data": {
                "url": "https://x/id.png",
                "media_type": "image/png",
                "name": "id",
            },
        },
        {
            "part_type": "file",
            "data": {"media_type": "image/png", "url": EMPTY_FILE_URL},
        },
    ),
    (
        {"part_type": "data-card", "data": {"data": {"pan": "4111"}, "id": "c1"}},
        {"part_type": "data-card", "data": {"id": "c1", "data": None}},
    ),
]


@pytest.mark.parametrize("event_type", sorted(CASES))
def test_redact_data_keeps_the_place_and_drops_the_content(event_type):
    """Each type keeps its ids, statuses and offsets and loses what was written."""
    stored, expected = CASES[event_type]
    assert redact_data(event_type, stored) == expected


def test_redact_data_leaves_its_input_as_it_is():
    """The stored data is not changed in place."""
    stored, _ = CASES["message"]
    before = repr(stored)
    redact_data("message", stored)
    assert repr(stored) == before


@pytest.mark.parametrize(("stored", "expected"), DELTAS)
def test_redacted_delta_keeps_its_part_and_empties_it(stored, expected):
    """A delta keeps message, seq, part index and type; its content is emptied."""
    head = {"message_id": "m1", "seq": 3, "part_index": 0}
    data = {**head, **stored, "start_offset": START}
    blank = redact_data("message.delta", data)
    assert blank == {**head, **expected, "start_offset": START}
    assert list(blank)[-1] == "start_offset"  # compact reads peek at it last
    check_data("message.delta", blank, stored=True)  # still a valid delta


@pytest.mark.parametrize("event_type", [*sorted(CASES), "message.delta"])
def test_redacting_twice_changes_nothing_more(event_type):
    """redact_data of redacted data is that data."""
    stored = CASES[event_type][0] if event_type in CASES else DELTAS[2][0]
    once = redact_data(event_type, stored)
    assert redact_data(event_type, once) == once


@pytest.mark.parametrize(
    "data",
    [{"participant": "cust"}, {}],
)
def test_malformed_membership_blanks_to_nothing(data):
    """A participant event without a participant object keeps nothing."""
    assert redact_data("participant.left", data) == {}


def test_delta_without_a_part_type_blanks_as_text():
    """A delta whose part type is missing is emptied as text (never stored so)."""
    assert redact_data("message.delta", {"message_id": "m1", "data": 1}) == {
        "message_id": "m1",
        "text": "",
    }


def test_non_text_delta_without_a_body_keeps_an_empty_one():
    """A non-text delta whose data is not an object gets the emptied body only."""
    blank = redact_data("message.delta", {"part_type": "tool-call", "data": 7})
    assert blank == {"part_type": "tool-call", "data": {"input": None}}


def test_fold_deltas_builds_the_parts_without_the_redacted_content():
    """Folding after a redaction gives the parts minus what the delta carried."""
    deltas = [
        {"part_index": 0, "part_type": "text", "text": "card "},
        redact_data(
            "message.delta", {"part_index": 0, "part_type": "text", "text": "4111"}
        ),
        {"part_index": 0, "part_type": "text", "text": " ok"},
        redact_data("message.delta", DELTAS[2][0] | {"part_index": 1}),
        {"part_index": 3, "part_type": "text", "text": "skips ahead: never stored"},
    ]
    assert fold_deltas(deltas) == [
        {"type": "text", "text": "card  ok"},
        {
            "type": "tool-call",
            "tool_call_id": "t1",
            "tool_name": "lookup",
            "input": None,
        },
    ]


def test_fold_deltas_refuses_a_corrupt_body():
    """A non-text delta whose body does not parse is an error, not a silent skip."""
    with pytest.raises(InvalidEvent):
        fold_deltas([{"part_index": 0, "part_type": "file", "data": {}}])


def test_redacted_envelope_round_trips_without_a_data_check():
    """A stored event marked redacted parses with data its type would refuse."""
    envelope = {
        "v": 1,
        "offset": START,
        "ts": "2026-11-26T06:10:27.123456Z",
        "type": "note",
        "id": "n1",
        "actor": {"id": "bot", "role": "ai"},
        "visibility": "staff",
        "data": {},
        "redacted": True,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    event = Event.parse(envelope)
    assert event.redacted and event.to_json() == envelope
    with pytest.raises(InvalidEvent):
        Event.parse({**envelope, "redacted": False})
