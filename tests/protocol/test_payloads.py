from __future__ import annotations

from typing import Any

import pytest

from threadline.exceptions import InvalidEvent
from threadline.protocol.payloads import (
    EVENT_TYPES,
    check_data,
    check_visibility,
    default_visibility,
    is_event_type,
    parse_target_offset,
)

OFFSET = "0000000000000003_0000000000000007"
TEXT = [{"type": "text", "text": "hi"}]

VALID: dict[str, dict[str, Any]] = {
    "message": {"message_id": "m1", "role": "user", "parts": TEXT},
    "message.start": {"message_id": "m1", "role": "assistant", "run_id": "r1"},
    "message.delta": {
        "message_id": "m1",
        "seq": 0,
        "part_index": 0,
        "part_type": "text",
        "text": "Good",
    },
    "message.end": {"message_id": "m1", "status": "complete", "reason": "stop"},
    "run.start": {"run_id": "r1", "in_reply_to": "m1"},
    "run.end": {"run_id": "r1", "status": "error", "reason": "boom"},
    "run.cancel": {"run_id": "r1"},
    "tool.call": {"tool_call_id": "c1", "tool_name": "lookup", "input": {}},
    "tool.result": {"tool_call_id": "c1", "output": None, "is_error": True},
    "control.request": {"request_id": "q1", "mode": "warm", "reason": "refund"},
    "control.accept": {"request_id": "q1"},
    "control.release": {"to": "ai_1"},
    "participant.joined": {"participant": {"id": "a", "role": "agent"}},
    "participant.left": {"participant": {"id": "a", "role": "agent", "name": "A"}},
    "note": {"text": "refund over limit"},
    "session.updated": {"priority": 2, "tags": ["vip"], "attributes": {"k": 1}},
    "session.closed": {},
    "redaction": {"offset": OFFSET, "reason": "PII"},
    "queue.added": {
        "session": "order-1",
        "reason": "requested",
        "cause": OFFSET,
        "request_id": "q1",
        "mode": "warm",
        "customer": "cust_42",
        "metadata": {"priority": 1},
    },
    "queue.removed": {"session": "order-1", "reason": "accepted", "cause": OFFSET},
    "session.created": {
        "session": "order-1",
        "controller_role": "ai",
        "customer": "cust_42",
        "metadata": {"channel": "web"},
    },
}


def test_every_event_type_has_an_example():
    """The examples cover the whole event table."""
    assert sorted(VALID) == list(EVENT_TYPES)


@pytest.mark.parametrize(("event_type", "data"), VALID.items())
def test_check_data_accepts_valid_data(event_type, data):
    """Each type's example passes, as a draft and as a stored event."""
    check_data(event_type, data, stored=False)
    check_data(event_type, data, stored=True)


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("message", {"message_id": "m1", "role": "user"}, "data.parts"),
        ("message", {**VALID["message"], "role": "tool"}, "data.role"),
        ("message", {**VALID["message"], "parts": [{}]}, "data.parts[0].type"),
        ("message", {**VALID["message"], "metadata": []}, "data.metadata"),
        ("message.start", {"message_id": "m 1", "role": "user"}, "data.message_id"),
        ("message.delta", {**VALID["message.delta"], "seq": -1}, "data.seq"),
        ("message.delta", {**VALID["message.delta"], "part_type": "x"}, None),
        ("message.end", {"message_id": "m1", "status": "done"}, "data.status"),
        ("run.start", {"run_id": "r1", "extra": 1}, "data.extra"),
        ("tool.call", {"tool_call_id": "c", "tool_name": "t"}, "data.input"),
        ("tool.result", {"tool_call_id": "c", "output": 1, "is_error": 0}, None),
        ("control.request", {"request_id": "q", "mode": "hot"}, "data.mode"),
        ("control.release", {"to": ""}, "data.to"),
        ("participant.joined", {"participant": {"id": "a"}}, "data.participant.role"),
        (
            "participant.joined",
            {"participant": {"id": "a", "role": "ai", "device": "d"}},
            "data.participant",
        ),
        ("participant.left", {"participant": {}}, "data.participant.id"),
        ("note", {}, "data.text"),
        ("session.updated", {}, "data"),
        ("session.updated", {"tags": "vip"}, "data.tags"),
        ("session.updated", {"tags": ["vip", ""]}, "data.tags[1]"),
        ("session.updated", {"priority": "high"}, "data.priority"),
        ("redaction", {"offset": "7"}, "data.offset"),
        ("redaction", {"offset": 7}, "data.offset"),
    ],
)
def test_check_data_refuses_malformed_data(event_type, data, field):
    """Missing, unknown and mistyped fields are invalid_event naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        check_data(event_type, data, stored=False)
    if field is not None:
        assert caught.value.field == field


def test_check_data_refuses_the_server_as_a_participant():
    """A membership event names a participant, never the server."""
    data = {"participant": {"id": "threadline", "role": "server"}}
    with pytest.raises(InvalidEvent, match="must be a participant"):
        check_data("participant.joined", data, stored=False)


def test_text_delta_needs_text_not_data():
    """A delta of a text part carries text."""
    data = {**VALID["message.delta"], "data": {"text": "x"}}
    del data["text"]
    with pytest.raises(InvalidEvent, match="a text delta carries text"):
        check_data("message.delta", data, stored=False)


def test_text_delta_refuses_both_text_and_data():
    """A text delta carries text only."""
    data = {**VALID["message.delta"], "data": {}}
    with pytest.raises(InvalidEvent, match="carries text, not data"):
        check_data("message.delta", data, stored=False)


def test_non_text_delta_needs_data_not_text():
    """A delta of a tool-call part carries the part's body in data."""
    data = {**VALID["message.delta"], "part_type": "tool-call"}
    with pytest.raises(InvalidEvent, match="a tool-call delta carries data"):
        check_data("message.delta", data, stored=False)


def test_non_text_delta_refuses_both_text_and_data():
    """A non-text delta carries data only."""
    data = {**VALID["message.delta"], "part_type": "data-card", "data": {"data": 1}}
    with pytest.raises(InvalidEvent, match="carries data, not text"):
        check_data("message.delta", data, stored=False)


def test_non_text_delta_body_is_checked_as_its_part():
    """A non-text delta's data must be a valid body of its part type."""
    data = {
        "message_id": "m1",
        "seq": 0,
        "part_index": 0,
        "part_type": "file",
        "data": {"url": "u"},
    }
    with pytest.raises(InvalidEvent) as caught:
        check_data("message.delta", data, stored=False)
    assert caught.value.field == "data.data.media_type"


def test_non_text_delta_with_a_valid_body_passes():
    """A data-<name> delta with {data} passes."""
    data = {
        "message_id": "m1",
        "seq": 3,
        "part_index": 1,
        "part_type": "data-card",
        "data": {"data": {"x": 1}, "id": "card-1"},
    }
    check_data("message.delta", data, stored=False)


@pytest.mark.parametrize("event_type", ["message", "message.delta", "message.end"])
def test_start_offset_is_for_stored_events_only(event_type):
    """The server sets start_offset; a draft may not carry it."""
    data = {**VALID[event_type], "start_offset": OFFSET}
    check_data(event_type, data, stored=True)
    with pytest.raises(InvalidEvent) as caught:
        check_data(event_type, data, stored=False)
    assert caught.value.field == "data.start_offset"


def test_compacted_start_may_carry_parts_when_stored():
    """A stored (compacted) message.start may carry its parts so far."""
    data = {**VALID["message.start"], "start_offset": OFFSET, "parts": TEXT}
    check_data("message.start", data, stored=True)
    with pytest.raises(InvalidEvent):
        check_data("message.start", data, stored=False)


def test_compacted_message_may_carry_status_and_reason_when_stored():
    """A compacted message that did not complete says how it ended."""
    data = {**VALID["message"], "status": "cancelled", "reason": "floor_lost"}
    check_data("message", data, stored=True)
    with pytest.raises(InvalidEvent):
        check_data("message", data, stored=False)
    with pytest.raises(InvalidEvent) as caught:
        check_data("message", {**data, "status": "paused"}, stored=True)
    assert caught.value.field == "data.status"


GAINED = [
    {"part_index": 0, "part_type": "text", "text": "more"},
    {"part_index": 1, "part_type": "data-card", "data": {"data": {"n": 1}}},
]
COALESCED = {"message_id": "m1", "seq": 4, "parts": GAINED, "start_offset": OFFSET}


def test_coalesced_delta_lists_parts_gained_when_stored():
    """A compacted delta carries parts instead of one part's fields; stored only."""
    check_data("message.delta", COALESCED, stored=True)
    without_start = {k: v for k, v in COALESCED.items() if k != "start_offset"}
    check_data("message.delta", without_start, stored=True)
    with pytest.raises(InvalidEvent):
        check_data("message.delta", COALESCED, stored=False)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seq": -1}, "data.seq"),
        ({"message_id": ""}, "data.message_id"),
        ({"start_offset": "7"}, "data.start_offset"),
        ({"part_index": 0}, "data.part_index"),
        ({"parts": []}, "data.parts"),
        ({"parts": {}}, "data.parts"),
        ({"parts": ["text"]}, "data.parts[0]"),
        ({"parts": [{"part_index": 0, "text": "x"}]}, "data.parts[0].part_type"),
        ({"parts": [{**GAINED[0], "seq": 1}]}, "data.parts[0].seq"),
        ({"parts": [{**GAINED[0], "part_index": "0"}]}, "data.parts[0].part_index"),
        ({"parts": [{**GAINED[0], "part_type": "blob"}]}, "data.parts[0].part_type"),
        ({"parts": [{**GAINED[0], "text": 1}]}, "data.parts[0].text"),
        ({"parts": [GAINED[0], {**GAINED[1], "data": {}}]}, "data.parts[1].data.data"),
    ],
)
def test_coalesced_delta_refuses_malformed_parts(change, field):
    """Each part gained is a delta's part fields, checked like a delta's."""
    with pytest.raises(InvalidEvent) as caught:
        check_data("message.delta", {**COALESCED, **change}, stored=True)
    assert caught.value.field == field


def test_coalesced_text_part_carries_text_not_data():
    """A text part gained carries text; a data part gained carries data."""
    text_with_data = {"part_index": 0, "part_type": "text", "data": {"text": "x"}}
    with pytest.raises(InvalidEvent, match="carries text"):
        check_data(
            "message.delta", {**COALESCED, "parts": [text_with_data]}, stored=True
        )


def test_stored_start_offset_must_be_an_offset():
    """start_offset is checked as an offset."""
    data = {**VALID["message.end"], "start_offset": "-1"}
    with pytest.raises(InvalidEvent, match="must be an offset"):
        check_data("message.end", data, stored=True)


def test_app_events_take_any_object():
    """x.<name> data is not checked beyond being an object."""
    check_data("x.order.lookup", {"anything": [1, {"goes": None}]}, stored=False)


def test_parse_target_offset_reads_an_offset():
    """A redaction's target is an offset."""
    assert str(parse_target_offset(OFFSET, "data.offset")) == OFFSET


@pytest.mark.parametrize(
    "name", ["message", "note", "x.order", "x.order.lookup", "x.a-b_c.D9"]
)
def test_is_event_type_accepts_known_and_app_types(name):
    """Known types and x.<name> are event types."""
    assert is_event_type(name)


@pytest.mark.parametrize(
    "name",
    ["x", "x.", "x..a", "x.a b", "message.update", "queue.moved", "x." + "a" * 63],
)
def test_is_event_type_refuses_other_names(name):
    """Unknown types, malformed and overlong app types are not event types."""
    assert not is_event_type(name)


@pytest.mark.parametrize(
    ("event_type", "visibility"),
    [("tool.call", "staff"), ("tool.result", "staff"), ("note", "staff")]
    + [("message", "all"), ("run.start", "all"), ("x.a", "all")],
)
def test_default_visibility_by_type(event_type, visibility):
    """Tool I/O and notes are staff by default; the rest is visible to all."""
    assert default_visibility(event_type) == visibility


def test_check_visibility_accepts_absent_and_known_values():
    """None, all and staff pass."""
    for visibility in (None, "all", "staff"):
        check_visibility("message", visibility, "visibility")


def test_check_visibility_refuses_unknown_values():
    """Only all and staff exist."""
    with pytest.raises(InvalidEvent, match="must be one of all, staff"):
        check_visibility("message", "public", "visibility")


def test_check_visibility_keeps_notes_staff():
    """A note is always staff."""
    with pytest.raises(InvalidEvent, match="a note is always staff"):
        check_visibility("note", "all", "visibility")
