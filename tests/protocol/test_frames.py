from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import ProtocolError
from threadline.protocol.frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGES,
    SUBPROTOCOL,
    EncodedEvent,
    Outbox,
    decode_frame,
    encode_json,
    utf8_size,
)

# Strategies: JSON values, and text that may or may not be JSON.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_arrays = st.lists(json_values, min_size=1, max_size=8)


def event(n: int, text: str = "x") -> EncodedEvent:
    return EncodedEvent.encode({"offset": f"0000000000000001_{n:016d}", "text": text})


def test_subprotocol_names_version_one():
    """The WebSocket subprotocol is threadline.v1."""
    assert SUBPROTOCOL == "threadline.v1"


# encode_json and utf8_size


def test_encode_json_is_compact_and_utf8():
    """The canonical form has no spaces and writes non-ASCII characters as is."""
    assert encode_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_encode_json_refuses_nan():
    """NaN is not JSON, so it cannot be sent."""
    with pytest.raises(ValueError):
        encode_json({"a": float("nan")})


@given(st.text())
def test_utf8_size_counts_utf8_bytes(text):
    """utf8_size is the length of the UTF-8 encoding."""
    assert utf8_size(text) == len(text.encode())


# EncodedEvent


def test_encoded_event_keeps_offset_text_and_size():
    """An encoded event carries its offset, its canonical text and its byte size."""
    encoded = EncodedEvent.encode(
        {"offset": "0000000000000001_0000000000000001", "t": "é"}
    )
    assert encoded.offset == "0000000000000001_0000000000000001"
    assert encoded.text == '{"offset":"0000000000000001_0000000000000001","t":"é"}'
    assert encoded.size == len(encoded.text.encode())


def test_encoded_event_needs_a_string_offset():
    """An event without a string offset cannot be ordered, so it is refused."""
    with pytest.raises(ValueError, match="offset"):
        EncodedEvent.encode({"offset": 3})


# decode_frame


def test_decode_frame_returns_the_messages():
    """A frame decodes to its list of message objects."""
    assert decode_frame('[{"type":"a"},{"type":"b"}]') == [{"type": "a"}, {"type": "b"}]


def test_decode_frame_defaults():
    """The default limits are 2 MiB and 256 messages per frame."""
    assert DEFAULT_MAX_FRAME_BYTES == 2 * 1024 * 1024
    assert DEFAULT_MAX_MESSAGES == 256


def test_decode_frame_refuses_a_frame_over_the_byte_limit():
    """A frame longer than max_frame_bytes (in UTF-8 bytes) is frame_too_large."""
    with pytest.raises(ProtocolError) as info:
        decode_frame('["éé"]', max_frame_bytes=7)
    assert info.value.code == "frame_too_large"


def test_decode_frame_accepts_a_frame_at_the_byte_limit():
    """A frame of exactly max_frame_bytes is accepted."""
    assert decode_frame('["éé"]', max_frame_bytes=8) == ["éé"]


def test_decode_frame_refuses_too_many_messages():
    """A frame with more than max_messages items is too_many_messages."""
    with pytest.raises(ProtocolError) as info:
        decode_frame("[1,2,3]", max_messages=2)
    assert info.value.code == "too_many_messages"


@pytest.mark.parametrize("text", ["", "[", "[1,]", "{} []", "\ufeff[1]"])
def test_decode_frame_refuses_text_that_is_not_json(text):
    """Text that is not JSON is invalid_frame, with the position of the fault."""
    with pytest.raises(ProtocolError, match="at character") as info:
        decode_frame(text)
    assert info.value.code == "invalid_frame"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[NaN]", "NaN"),
        ("[-Infinity]", "Infinity"),
        ('[{"a":1,"a":2}]', "duplicate key"),
        ("[" + "1" * 5000 + "]", "digits"),
        ("[" * 100_000 + "]" * 100_000, "recursion"),
    ],
)
def test_decode_frame_refuses_json_that_is_not_strict(text, why):
    """NaN, Infinity, duplicate keys, huge numbers, deep nesting: invalid_frame."""
    with pytest.raises(ProtocolError, match="not strict JSON") as info:
        decode_frame(text, max_frame_bytes=10**6)
    assert info.value.code == "invalid_frame"
    assert why in str(info.value)


@pytest.mark.parametrize("text", ['["\\ud800"]', '[{"\\uDFFF":1}]', '["a\\udbffb"]'])
def test_decode_frame_refuses_lone_surrogates(text):
    """An escaped lone surrogate cannot be carried onward as UTF-8: invalid_frame."""
    with pytest.raises(ProtocolError, match="lone surrogate") as info:
        decode_frame(text)
    assert info.value.code == "invalid_frame"


def test_decode_frame_accepts_escaped_surrogate_pairs():
    """A surrogate pair escape is a valid character."""
    assert decode_frame('["\\ud83d\\ude00"]') == ["😀"]


@pytest.mark.parametrize("text", ["{}", '"a"', "1", "null", "[]"])
def test_decode_frame_refuses_anything_but_a_nonempty_array(text):
    """A frame is a non-empty JSON array."""
    with pytest.raises(ProtocolError, match="non-empty JSON array") as info:
        decode_frame(text)
    assert info.value.code == "invalid_frame"


@given(json_arrays)
def test_decode_frame_reads_what_encode_json_writes(value):
    """Any non-empty array survives encode_json then decode_frame."""
    assert decode_frame(encode_json(value), max_messages=10) == value


@given(st.text(max_size=200))
def test_decode_frame_raises_only_protocol_error(text):
    """Whatever the text, decode_frame returns a non-empty list or raises
    ProtocolError."""
    try:
        result = decode_frame(text, max_frame_bytes=150, max_messages=5)
    except ProtocolError as exc:
        assert exc.code in {"invalid_frame", "frame_too_large", "too_many_messages"}
    else:
        assert isinstance(result, list) and 0 < len(result) <= 5


@given(json_arrays, st.integers(0, 200))
def test_decode_frame_raises_only_protocol_error_on_cut_frames(value, cut):
    """A valid frame cut short is refused with ProtocolError, never another error."""
    text = encode_json(value)[:cut]
    try:
        decode_frame(text)
    except ProtocolError:
        pass


# Outbox


def outbox(max_frame_bytes: int = 1000, max_messages: int = 10) -> Outbox:
    return Outbox(max_frame_bytes=max_frame_bytes, max_messages=max_messages)


def test_outbox_starts_empty():
    """A new outbox has no frames to give and counts nothing."""
    box = outbox()
    assert (box.frames(), box.bytes, box.messages) == ([], 0, 0)


def test_outbox_packs_messages_into_one_frame():
    """Messages queued together travel in one frame, in order."""
    box = outbox()
    box.add('{"a":1}')
    box.add('{"b":2}')
    assert box.frames() == ['[{"a":1},{"b":2}]']


def test_outbox_frames_empties_it():
    """Taking the frames leaves the outbox empty."""
    box = outbox()
    box.add('{"a":1}')
    box.frames()
    assert (box.frames(), box.bytes, box.messages) == ([], 0, 0)


def test_outbox_counts_bytes_and_messages():
    """The outbox counts waiting bytes, and messages with each event as one."""
    box = outbox()
    box.add('{"a":"é"}')
    box.add_events("s", [event(1), event(2)])
    header = len('{"type":"events","session":"s","events":[') + 2
    assert box.messages == 3
    assert box.bytes == 10 + header + event(1).size + 1 + event(2).size + 1


def test_outbox_joins_events_of_a_session():
    """Events of one session queued one after the other make one events message."""
    box = outbox()
    box.add_events("s", [event(1)])
    box.add_events("s", [event(2)])
    [frame] = box.frames()
    assert json.loads(frame) == [
        {
            "type": "events",
            "session": "s",
            "events": [json.loads(event(1).text), json.loads(event(2).text)],
        }
    ]


def test_outbox_joins_events_across_other_sessions():
    """An event joins its session's waiting events message even if another
    session's message came between."""
    box = outbox()
    box.add_events("a", [event(1)])
    box.add_events("b", [event(1)])
    box.add_events("a", [event(2)])
    sessions = [(m["session"], len(m["events"])) for m in json.loads(box.frames()[0])]
    assert sessions == [("a", 2), ("b", 1)]


def test_outbox_keeps_order_after_a_message_about_the_session():
    """An event does not overtake a message about its session queued before it."""
    box = outbox()
    box.add_events("a", [event(1)])
    box.add('{"type":"gone","session":"a"}', session="a")
    box.add_events("a", [event(2)])
    kinds = [m["type"] for m in json.loads(box.frames()[0])]
    assert kinds == ["events", "gone", "events"]


def test_outbox_splits_frames_at_the_message_limit():
    """A frame holds at most max_messages messages."""
    box = outbox(max_messages=2)
    for n in range(5):
        box.add(f'{{"n":{n}}}')
    assert box.frames() == ['[{"n":0},{"n":1}]', '[{"n":2},{"n":3}]', '[{"n":4}]']


def test_outbox_splits_frames_at_the_byte_limit():
    """A frame holds at most max_frame_bytes bytes."""
    box = outbox(max_frame_bytes=12)
    for n in range(3):
        box.add(f'{{"n":{n}}}')
    assert box.frames() == ['[{"n":0}]', '[{"n":1}]', '[{"n":2}]']


def test_outbox_sends_an_oversized_message_alone():
    """A message larger than a frame travels alone rather than not at all."""
    box = outbox(max_frame_bytes=10)
    box.add('{"a":1}')
    box.add('{"long":"xxxxxxxxxx"}')
    box.add('{"b":2}')
    assert box.frames() == ['[{"a":1}]', '[{"long":"xxxxxxxxxx"}]', '[{"b":2}]']


def test_outbox_splits_an_events_message_between_events():
    """Events that do not fit one frame continue in an events message of the next."""
    box = outbox(max_frame_bytes=300)
    box.add_events("s", [event(n, "y" * 40) for n in range(1, 5)])
    frames = box.frames()
    assert len(frames) == 2
    assert all(len(frame.encode()) <= 300 for frame in frames)
    offsets = [
        e["offset"][-1] for f in frames for m in json.loads(f) for e in m["events"]
    ]
    assert offsets == ["1", "2", "3", "4"]


def test_outbox_starts_a_new_frame_for_events_that_do_not_fit():
    """Events that do not fit after other messages start the next frame."""
    box = outbox(max_frame_bytes=120)
    box.add('{"a":"' + "z" * 60 + '"}')
    box.add_events("s", [event(1, "y" * 30)])
    frames = box.frames()
    assert [len(json.loads(frame)) for frame in frames] == [1, 1]


def test_outbox_sends_an_oversized_event_alone():
    """An event larger than a frame travels alone in its events message."""
    box = outbox(max_frame_bytes=50)
    box.add_events("s", [event(1, "y" * 100), event(2)])
    frames = box.frames()
    assert [len(json.loads(f)[0]["events"]) for f in frames] == [1, 1]


def test_outbox_clear_drops_everything():
    """clear() drops what waits, and later events start a new events message."""
    box = outbox()
    box.add_events("s", [event(1)])
    box.clear()
    box.add_events("s", [event(2)])
    [frame] = box.frames()
    assert [e["offset"][-1] for e in json.loads(frame)[0]["events"]] == ["2"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), st.integers(1, 80)), max_size=30
    ),
    st.integers(60, 400),
    st.integers(1, 6),
)
def test_outbox_frames_respect_limits_and_session_order(items, max_bytes, max_messages):
    """Whatever is queued, every frame is valid JSON within the limits (unless one
    message alone is larger), and each session's events arrive in order."""
    box = outbox(max_frame_bytes=max_bytes, max_messages=max_messages)
    sent: dict[str, list[int]] = {"a": [], "b": []}
    for n, (session, length) in enumerate(items):
        if session is None:
            box.add(encode_json({"n": n, "pad": "p" * length}))
        else:
            box.add_events(session, [event(n, "e" * length)])
            sent[session].append(n)
    received: dict[str, list[int]] = {"a": [], "b": []}
    for frame in box.frames():
        messages = json.loads(frame)
        assert 0 < len(messages) <= max_messages
        assert len(frame.encode()) <= max_bytes or len(messages) == 1
        for message in messages:
            if "session" in message:
                events = message["events"]
                assert len(frame.encode()) <= max_bytes or len(events) == 1
                received[message["session"]] += [int(e["offset"][-16:]) for e in events]
    assert received == sent
