from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given, strategies as st

from threadline.protocol.sse import (
    SSEDecoder,
    SSEEvent,
    encode_comment,
    encode_control,
    encode_data,
    encode_event,
)

TERMINATORS = re.compile(r"\r\n|\r|\n")


def decode(*chunks: bytes) -> list[SSEEvent]:
    """Feed ``chunks`` to one decoder; return every event they complete."""
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.receive_data(chunk)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given positions (empty chunks included)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# Strategies: payload text full of line terminators, and field values without them.
payloads = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(["\r", "\n", "\r\n"])
).map("".join)
names = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1)
cuts = st.lists(st.integers(0, 10**6), max_size=12)


# encode_event


def test_encode_event_writes_fields_then_a_blank_line():
    """An event is its event, id and data fields, each on a line, then a blank line."""
    assert (
        encode_event(b"hi", event="data", id="7") == b"event: data\nid: 7\ndata:hi\n\n"
    )


def test_encode_event_writes_only_data_by_default():
    """Without event or id, only the data field is written."""
    assert encode_event(b"") == b"data:\n\n"


def test_encode_event_splits_data_at_every_line_terminator():
    """CRLF, CR and LF in data each start a new data line, so none can end the event."""
    assert encode_event(b"a\r\nb\rc\nd") == b"data:a\ndata:b\ndata:c\ndata:d\n\n"


def test_encode_event_keeps_a_leading_space_of_a_line():
    """A data line that starts with a space keeps it through a decoder."""
    encoded = encode_event(b" a\n  b\nc ")
    assert encoded == b"data:  a\ndata:   b\ndata:c \n\n"
    assert decode(encoded) == [SSEEvent("message", " a\n  b\nc ")]


@pytest.mark.parametrize("value", ["a\nevent: evil", "a\r", "\r\nb"])
def test_encode_event_refuses_a_line_terminator_in_the_event_name(value):
    """An event name with a line terminator raises ValueError instead of injecting
    fields.
    """
    with pytest.raises(ValueError, match="event"):
        encode_event(b"x", event=value)


def test_encode_event_refuses_a_line_terminator_in_the_id():
    """An id with a line terminator raises ValueError instead of injecting fields."""
    with pytest.raises(ValueError, match="id"):
        encode_event(b"x", id="1\ndata: evil")


# encode_data, encode_control, encode_comment


def test_encode_data_sends_text_as_is():
    """Without an encoding, a data event carries the payload's lines as UTF-8."""
    assert encode_data(b"a\nb", None) == b"event: data\ndata:a\ndata:b\n\n"


def test_encode_data_base64_encodes_binary():
    """With base64, a data event carries the payload in base64."""
    assert encode_data(b"\x00\xff\r\n", "base64") == b"event: data\ndata:AP8NCg==\n\n"


def test_encode_data_base64_of_nothing_is_one_empty_line():
    """An empty base64 payload still makes one (empty) data line, so the event
    dispatches.
    """
    assert decode(encode_data(b"", "base64")) == [SSEEvent("data", "")]


def test_encode_data_base64_splits_long_payloads_into_lines():
    """Long base64 text is cut into several data lines that decode to the payload."""
    payload = bytes(range(256)) * 400
    encoded = encode_data(payload, "base64")
    assert encoded.count(b"\ndata:") > 1
    (event,) = decode(encoded)
    assert base64.b64decode(event.data) == payload


def test_encode_control_writes_one_control_event():
    """Compact JSON becomes one control event with one data line."""
    assert encode_control(b'{"a":1}') == b'event: control\ndata:{"a":1}\n\n'


def test_encode_control_cannot_be_split_by_pretty_json():
    """Line breaks in JSON stay inside the control event."""
    payload = json.dumps({"a": [1, 2]}, indent=2).encode()
    control, data = decode(encode_control(payload) + encode_data(b"x", None))
    assert (control.event, json.loads(control.data)) == ("control", {"a": [1, 2]})
    assert (data.event, data.data) == ("data", "x")


def test_encode_comment_is_ignored_by_the_decoder():
    """A heartbeat comment produces no event."""
    assert encode_comment() == b": \n\n"
    assert decode(encode_comment("ping")) == []


def test_encode_comment_cannot_inject_fields():
    """Every line of a comment's text stays a comment."""
    encoded = encode_comment("a\ndata: evil\r\revent: x")
    assert decode(encoded + encode_event(b"ok")) == [SSEEvent("message", "ok")]


# SSEDecoder


def test_decoder_dispatches_at_a_blank_line():
    """An event is returned only once the blank line that ends it arrives."""
    decoder = SSEDecoder()
    assert decoder.receive_data(b"event: e\ndata: x\n") == []
    assert decoder.receive_data(b"\n") == [SSEEvent("e", "x")]


def test_decoder_defaults_the_event_type_to_message():
    """An event without an event field is of type message."""
    assert decode(b"data: x\n\n") == [SSEEvent("message", "x")]


def test_decoder_joins_data_lines_with_lf():
    """Several data lines join with LF into one data string."""
    assert decode(b"data: a\ndata:\ndata: b\n\n") == [SSEEvent("message", "a\n\nb")]


def test_decoder_strips_one_space_after_the_colon():
    """Only the first space after the colon is dropped from a value."""
    assert decode(b"data:  x \n\n") == [SSEEvent("message", " x ")]


def test_decoder_reads_a_field_without_colon_as_empty():
    """A line without a colon is a field name with an empty value."""
    assert decode(b"data\n\n") == [SSEEvent("message", "")]


def test_decoder_skips_comments_and_unknown_fields():
    """Comment lines and fields other than event, data and id change nothing."""
    assert decode(b": hi\nretry: 10\nfoo: bar\ndata: x\n\n") == [
        SSEEvent("message", "x")
    ]


def test_decoder_keeps_the_last_event_id_across_events():
    """The last id seen applies to later events until another id replaces it."""
    events = decode(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [event.id for event in events] == ["1", "1", "2"]


def test_decoder_ignores_an_id_containing_nul():
    """An id value containing NUL is ignored, keeping the previous id."""
    assert decode(b"id: 1\nid: 2\x003\ndata: x\n\n") == [SSEEvent("message", "x", "1")]


def test_decoder_does_not_dispatch_an_event_without_data():
    """A block with an event field but no data field dispatches nothing and resets the
    type.
    """
    assert decode(b"event: e\n\ndata: x\n\n") == [SSEEvent("message", "x")]


def test_decoder_ignores_extra_blank_lines():
    """Blank lines between events dispatch nothing."""
    assert decode(b"\n\n\r\ndata: x\n\n\n") == [SSEEvent("message", "x")]


@pytest.mark.parametrize("terminator", [b"\r\n", b"\r", b"\n"])
def test_decoder_accepts_every_line_terminator(terminator):
    """CRLF, CR and LF each end a line."""
    stream = b"data: a" + terminator + b"data: b" + terminator + terminator
    assert decode(stream) == [SSEEvent("message", "a\nb")]


def test_decoder_joins_crlf_split_across_chunks():
    """A CR ending one chunk and an LF starting the next are one line break."""
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [
        SSEEvent("message", "a\nb")
    ]


def test_decoder_keeps_a_pending_cr_across_an_empty_chunk():
    """An empty chunk between the CR and LF of one CRLF does not turn it into two
    breaks.
    """
    assert decode(b"data: a\r", b"", b"\ndata: b\n\n") == [SSEEvent("message", "a\nb")]


def test_decoder_reads_a_lone_cr_then_text_as_a_line_break():
    """A CR at the end of a chunk followed by text in the next is a line break."""
    assert decode(b"data: a\r", b"data: b\r\r") == [SSEEvent("message", "a\nb")]


def test_decoder_joins_a_character_split_across_chunks():
    """A multi-byte UTF-8 character cut between chunks decodes whole."""
    data = "data: é€😀\n\n".encode()
    assert decode(data[:7], data[7:9], data[9:]) == [SSEEvent("message", "é€😀")]


def test_decoder_replaces_invalid_utf8():
    """Bytes that are not UTF-8 decode as U+FFFD instead of failing."""
    assert decode(b"data: \xff\n\n") == [SSEEvent("message", "\ufffd")]


# Properties


@given(st.lists(st.tuples(names, payloads), max_size=5), cuts)
def test_sse_text_round_trip_at_any_chunking(events, chunk_cuts):
    """Encoded events decode back, line breaks normalized to LF, however the bytes are
    cut.
    """
    stream = b"".join(encode_event(p.encode(), event=name) for name, p in events)
    decoded = decode(*split(stream, chunk_cuts))
    assert decoded == [SSEEvent(name, TERMINATORS.sub("\n", p)) for name, p in events]


@given(st.lists(st.binary(), max_size=5), cuts)
def test_sse_base64_round_trip_at_any_chunking(payloads_, chunk_cuts):
    """Base64 data events decode back to the exact bytes, however the stream is cut."""
    stream = b"".join(encode_data(payload, "base64") for payload in payloads_)
    decoded = decode(*split(stream, chunk_cuts))
    assert [base64.b64decode(event.data) for event in decoded] == payloads_


@given(st.lists(st.binary(), max_size=5), names, cuts)
def test_sse_encoder_cannot_be_injected(payloads_, last_id, chunk_cuts):
    """Whatever bytes a payload holds, each encoded event decodes as exactly one event
    of its type.
    """
    stream = b"".join(encode_data(payload, None) for payload in payloads_)
    last_id = last_id.replace("\0", "")
    stream += encode_event(b"end", event="control", id=last_id)
    decoded = decode(*split(stream, chunk_cuts))
    assert [event.event for event in decoded] == ["data"] * len(payloads_) + ["control"]
    assert [event.id for event in decoded] == [None] * len(payloads_) + [last_id]


sse_bytes = st.lists(
    st.sampled_from([b"\r", b"\n", b"data", b"event", b"id", b":", b" ", b"x", b"\xc3"])
).map(b"".join)


@given(sse_bytes, cuts)
def test_sse_decoder_does_not_depend_on_chunking(stream, chunk_cuts):
    """Any byte stream decodes the same whole, cut anywhere, or fed byte by byte with
    empty chunks between.
    """
    whole = decode(stream)
    assert decode(*split(stream, chunk_cuts)) == whole
    assert (
        decode(*(piece for byte in stream for piece in (bytes([byte]), b""))) == whole
    )
