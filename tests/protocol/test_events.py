from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import InvalidEvent
from threadline.protocol.actors import Actor
from threadline.protocol.events import (
    GENESIS_HASH,
    Event,
    EventDraft,
    format_ts,
    parse_ts,
)
from threadline.protocol.offsets import Offset

HASH = "ab" * 32
DELTA = {
    "message_id": "m1",
    "seq": 0,
    "part_index": 0,
    "part_type": "text",
    "text": "Good",
}
DRAFT = {"type": "message.delta", "id": "01J9ZQ", "data": DELTA}
ENVELOPE = {
    "v": 1,
    "offset": "0000000000000003_0000000000000007",
    "ts": "2026-11-26T06:10:27.123456Z",
    "type": "message.delta",
    "id": "01J9ZQ",
    "actor": {"id": "ai_1", "role": "ai", "name": "Assistant", "device": "w1"},
    "visibility": "all",
    "data": DELTA,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "prev_hash": GENESIS_HASH,
    "hash": HASH,
}


# Timestamps


def test_format_ts_is_rfc3339_utc_with_microseconds():
    """ts has six fraction digits and a Z."""
    assert format_ts(1_795_673_427.123456) == "2026-11-26T06:10:27.123456Z"


def test_format_ts_rounds_to_the_microsecond():
    """Float noise below a microsecond does not change the text."""
    assert format_ts(0.0000004) == "1970-01-01T00:00:00.000000Z"
    assert format_ts(0.0000006) == "1970-01-01T00:00:00.000001Z"


# Up to 2100: floats hold epoch seconds to the microsecond until about 2255.
seconds = st.integers(0, 4_102_444_800_000_000).map(lambda us: us / 1_000_000)


@given(seconds)
def test_parse_ts_round_trips(value):
    """Parsing a formatted ts gives the time back to the microsecond."""
    assert format_ts(parse_ts(format_ts(value))) == format_ts(value)


@given(seconds, seconds)
def test_ts_text_order_is_time_order(a, b):
    """Equal-width ts strings compare as the times they denote."""
    if round(a * 1e6) < round(b * 1e6):
        assert format_ts(a) < format_ts(b)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T06:10:27Z",
        "2026-11-26T06:10:27.123456+00:00",
        "2026-11-26 06:10:27.123456Z",
        "2026-11-26T06:10:27.123456z",
    ],
)
def test_parse_ts_refuses_other_formats(text):
    """Only YYYY-MM-DDTHH:MM:SS.ffffffZ is an envelope ts."""
    with pytest.raises(InvalidEvent, match="RFC 3339") as caught:
        parse_ts(text)
    assert caught.value.field == "ts"


def test_parse_ts_refuses_impossible_dates():
    """A well-shaped but impossible date is refused."""
    with pytest.raises(InvalidEvent, match="not a valid date"):
        parse_ts("2026-02-30T00:00:00.000000Z")


# Drafts


def test_draft_parse_reads_a_draft():
    """type, id and data are read; visibility and trace_id default to None."""
    draft = EventDraft.parse(DRAFT)
    assert draft == EventDraft("message.delta", "01J9ZQ", DELTA)


def test_draft_parse_reads_optional_fields():
    """visibility and trace_id are read when present."""
    draft = EventDraft.parse({**DRAFT, "visibility": "staff", "trace_id": "t-1"})
    assert (draft.visibility, draft.trace_id) == ("staff", "t-1")


def test_draft_parse_treats_null_optionals_as_absent():
    """null visibility and trace_id mean absent."""
    draft = EventDraft.parse({**DRAFT, "visibility": None, "trace_id": None})
    assert (draft.visibility, draft.trace_id) == (None, None)


def test_draft_parse_ignores_server_assigned_fields():
    """A draft's actor, offset, ts, v and hashes are ignored, never trusted."""
    forged = {**ENVELOPE, "actor": {"id": "threadline", "role": "server"}, "v": 9}
    del forged["visibility"], forged["trace_id"]
    assert EventDraft.parse(forged) == EventDraft.parse(DRAFT)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": None}, "type"),
        ({"type": "message.update"}, "type"),
        ({"id": 7}, "id"),
        ({"id": "has space"}, "id"),
        ({"data": "x"}, "data"),
        ({"data": {"message_id": "m1"}}, "data.seq"),
        ({"visibility": "public"}, "visibility"),
        ({"visibility": 1}, "visibility"),
        ({"trace_id": "a b"}, "trace_id"),
        ({"trace_id": 5}, "trace_id"),
        ({"extra": 1}, "event.extra"),
    ],
)
def test_draft_parse_refuses_malformed_drafts(change, field):
    """A malformed draft is invalid_event naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        EventDraft.parse({**DRAFT, **change})
    assert caught.value.field == field


@pytest.mark.parametrize("missing", ["type", "id", "data"])
def test_draft_parse_refuses_missing_fields(missing):
    """type, id and data are required."""
    draft = dict(DRAFT)
    del draft[missing]
    with pytest.raises(InvalidEvent, match="is required"):
        EventDraft.parse(draft)


def test_draft_parse_refuses_a_non_object():
    """A draft is a JSON object."""
    with pytest.raises(InvalidEvent, match="must be an object"):
        EventDraft.parse([DRAFT])


def test_draft_parse_refuses_a_note_visible_to_all():
    """A note is always staff."""
    with pytest.raises(InvalidEvent, match="a note is always staff"):
        EventDraft.parse(
            {"type": "note", "id": "n", "data": {"text": "x"}} | {"visibility": "all"}
        )


def test_draft_parse_accepts_app_types():
    """x.<name> drafts carry any object."""
    draft = EventDraft.parse({"type": "x.order.lookup", "id": "1", "data": {"a": 1}})
    assert draft.type == "x.order.lookup"


def test_draft_to_json_omits_absent_optionals():
    """The draft's JSON is what was parsed, without absent optionals."""
    assert EventDraft.parse(DRAFT).to_json() == DRAFT


def test_draft_serialize_is_compact_json_with_optionals():
    """serialize() writes compact UTF-8 JSON, visibility and trace_id included."""
    draft = EventDraft("note", "n1", {"text": "é"}, "staff", "t1")
    assert (
        draft.serialize()
        == (
            '{"type":"note","id":"n1","visibility":"staff",'
            '"data":{"text":"é"},"trace_id":"t1"}'
        ).encode()
    )


def test_draft_to_event_fills_in_the_server_fields():
    """to_event() adds offset, ts, actor and hashes to a resolved draft."""
    draft = EventDraft("message.delta", "01J9ZQ", DELTA, "all", "t1")
    actor = Actor("ai_1", "ai")
    event = draft.to_event(
        offset=Offset(3, 7),
        ts="2026-11-26T06:10:27.123456Z",
        actor=actor,
        prev_hash=GENESIS_HASH,
        hash=HASH,
    )
    assert event.draft() == draft
    assert (event.offset, event.actor, event.hash) == (Offset(3, 7), actor, HASH)


def test_draft_to_event_needs_a_resolved_visibility():
    """A draft whose visibility is still None cannot be stored."""
    with pytest.raises(ValueError, match="visibility"):
        EventDraft.parse(DRAFT).to_event(
            offset=Offset(3, 7),
            ts="2026-11-26T06:10:27.123456Z",
            actor=Actor("ai_1", "ai"),
            prev_hash=GENESIS_HASH,
            hash=HASH,
        )


# Stored events


def test_event_parse_reads_the_envelope():
    """Every envelope field is read."""
    event = Event.parse(ENVELOPE)
    assert event.v == 1
    assert event.offset == Offset(3, 7)
    assert event.actor == Actor("ai_1", "ai", "Assistant", "w1")
    assert event.data == DELTA
    assert event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_event_round_trips_through_serialize():
    """Parsing a serialized event gives it back, fields in envelope order."""
    event = Event.parse(ENVELOPE)
    text = event.serialize()
    assert Event.parse(json.loads(text)) == event
    assert list(json.loads(text)) == list(ENVELOPE)


def test_event_to_json_omits_an_absent_trace_id():
    """trace_id is optional."""
    envelope = dict(ENVELOPE)
    del envelope["trace_id"]
    assert Event.parse(envelope).to_json() == envelope


def test_compacted_event_round_trips_with_its_mark():
    """A compact read's event says so, before its hashes; stored ones do not."""
    envelope = {**ENVELOPE}
    del envelope["prev_hash"], envelope["hash"]
    envelope.update(compacted=True, prev_hash=GENESIS_HASH, hash=HASH)
    event = Event.parse(envelope)
    assert event.compacted and event.to_json() == envelope
    assert list(json.loads(event.serialize())) == list(envelope)
    assert "compacted" not in Event.parse(ENVELOPE).to_json()


def test_compacted_mark_is_a_boolean():
    """compacted is true or false, nothing else."""
    with pytest.raises(InvalidEvent) as caught:
        Event.parse({**ENVELOPE, "compacted": "yes"})
    assert caught.value.field == "compacted"
    assert not Event.parse({**ENVELOPE, "compacted": False}).compacted


def test_event_timestamp_is_epoch_seconds():
    """timestamp reads ts as epoch seconds."""
    assert Event.parse(ENVELOPE).timestamp == pytest.approx(1_795_673_427.123456)


def test_event_with_data_replaces_only_the_data():
    """with_data() gives a copy with other data (for a redaction)."""
    event = Event.parse(ENVELOPE)
    other = event.with_data({**DELTA, "text": ""})
    assert other.data["text"] == "" and other.offset == event.offset


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"v": "1"}, "v"),
        ({"offset": "7"}, "offset"),
        ({"offset": 7}, "offset"),
        ({"offset": "0000000000000000_0000000000000000"}, "offset"),
        ({"ts": "2026-11-26T06:10:27Z"}, "ts"),
        ({"ts": 0}, "ts"),
        ({"type": "nope"}, "type"),
        ({"id": ""}, "id"),
        ({"actor": {"id": "x", "role": "root"}}, "actor.role"),
        ({"visibility": "public"}, "visibility"),
        ({"data": []}, "data"),
        ({"data": {**DELTA, "seq": "0"}}, "data.seq"),
        ({"trace_id": 1}, "trace_id"),
        ({"prev_hash": "AB" * 32}, "prev_hash"),
        ({"hash": "ab"}, "hash"),
        ({"hash": None}, "hash"),
        ({"extra": 1}, "event.extra"),
    ],
)
def test_event_parse_refuses_malformed_envelopes(change, field):
    """A malformed stored event is invalid_event naming the field."""
    with pytest.raises(InvalidEvent) as caught:
        Event.parse({**ENVELOPE, **change})
    assert caught.value.field == field


def test_event_parse_refuses_a_missing_field():
    """Every envelope field but trace_id is required."""
    envelope = dict(ENVELOPE)
    del envelope["prev_hash"]
    with pytest.raises(InvalidEvent, match="is required"):
        Event.parse(envelope)


def test_event_parse_accepts_server_set_message_fields():
    """A stored message event may carry start_offset, which a draft may not."""
    data = {**DELTA, "start_offset": "0000000000000003_0000000000000002"}
    assert Event.parse({**ENVELOPE, "data": data}).data == data
    with pytest.raises(InvalidEvent):
        EventDraft.parse({**DRAFT, "data": data})


def test_event_check_refuses_a_missing_visibility_built_in_code():
    """check() catches a visibility of None that the type checker would miss."""
    event = Event.parse(ENVELOPE)
    broken = Event(
        event.offset,
        event.ts,
        event.type,
        event.id,
        event.actor,
        None,  # type: ignore[arg-type]
        event.data,
        event.prev_hash,
        event.hash,
    )
    with pytest.raises(InvalidEvent) as caught:
        broken.check()
    assert caught.value.field == "visibility"


def test_event_serialize_refuses_nan():
    """NaN is not JSON: serializing it fails loudly instead of writing bad JSON."""
    event = Event.parse({**ENVELOPE, "type": "x.metric", "data": {"v": 1}})
    with pytest.raises(ValueError):
        event.with_data({"v": float("nan")}).serialize()


def test_event_serialize_writes_nulls_and_big_integers():
    """null and integers past 64 bits serialize exactly (the exact encoder)."""
    event = Event.parse({**ENVELOPE, "type": "x.metric", "data": {"v": 1}})
    assert b'"v":null' in event.with_data({"v": None}).serialize()
    big = event.with_data({"v": 2**70}).serialize()
    assert b'"v":1180591620717411303424' in big
