from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
from hypothesis import assume, given, strategies as st

from threadline.exceptions import ProtocolError
from threadline.protocol.frames import Side, encode_json
from threadline.protocol.messages import (
    Cursor,
    ErrorMessage,
    Hello,
    Presence,
    SetPresence,
    Subscribe,
    Subscribed,
    parse_frame,
    parse_message,
    serialize_frame,
)

from .strategies import client_messages, json_values, server_messages

SCHEMA = json.loads(
    resources.files("threadline.protocol")
    .joinpath("schema/threadline.v1.json")
    .read_text()
)
CLIENT_SCHEMA = jsonschema.Draft202012Validator(
    {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/ClientMessage"}
)
SERVER_SCHEMA = jsonschema.Draft202012Validator(
    {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/ServerMessage"}
)
# Fields whose inside the Python parser leaves to the event model.
DEEP = {"events", "actor"}


def python_accepts(obj, sender):
    try:
        parse_message(obj, sender)
    except ProtocolError:
        return False
    return True


# Round trips


@given(client_messages)
def test_client_message_round_trips_through_a_frame(message):
    """Any client message serializes to a frame that parses back to it."""
    assert parse_frame(serialize_frame([message]), Side.CLIENT) == [message]


@given(server_messages)
def test_server_message_round_trips_through_a_frame(message):
    """Any server message serializes to a frame that parses back to it."""
    assert parse_frame(serialize_frame([message]), Side.SERVER) == [message]


@given(st.lists(client_messages, min_size=1, max_size=5))
def test_frame_of_several_messages_round_trips(messages):
    """A frame keeps its messages and their order."""
    assert parse_frame(serialize_frame(messages), Side.CLIENT) == messages


@given(client_messages)
def test_serialize_frame_is_canonical(message):
    """Serializing the parsed messages of a frame gives back the same bytes."""
    frame = serialize_frame([message])
    assert serialize_frame(parse_frame(frame, Side.CLIENT)) == frame


@given(client_messages)
def test_client_messages_validate_against_the_schema(message):
    """Every client message the dataclasses make is valid by the schema."""
    CLIENT_SCHEMA.validate(message.serialize())


@given(server_messages)
def test_server_messages_validate_against_the_schema(message):
    """Every server message the dataclasses make is valid by the schema."""
    SERVER_SCHEMA.validate(message.serialize())


# The parser and the schema agree


def mutations(message):
    """A message's JSON object with one field dropped, added or replaced."""
    obj = message.serialize()
    keys = sorted(obj)
    return st.one_of(
        st.sampled_from(keys).map(
            lambda key: {k: v for k, v in obj.items() if k != key}
        ),
        json_values.map(lambda value: {**obj, "extra": value}),
        st.tuples(st.sampled_from([k for k in keys if k not in DEEP]), json_values).map(
            lambda kv: {**obj, kv[0]: kv[1]}
        ),
    )


@given(st.data(), client_messages)
def test_parser_and_schema_agree_on_client_messages(data, message):
    """A changed client message is refused by the parser exactly when the schema
    refuses it."""
    obj = data.draw(mutations(message))
    assume("\\n" not in encode_json(obj))
    assert python_accepts(obj, Side.CLIENT) == CLIENT_SCHEMA.is_valid(obj)


@given(st.data(), server_messages)
def test_parser_and_schema_agree_on_server_messages(data, message):
    """A changed server message is refused by the parser exactly when the schema
    refuses it."""
    obj = data.draw(mutations(message))
    assume("\\n" not in encode_json(obj))
    assert python_accepts(obj, Side.SERVER) == SERVER_SCHEMA.is_valid(obj)


# parse_message


@pytest.mark.parametrize("obj", [[], "hello", None, 1])
def test_parse_message_refuses_what_is_not_an_object(obj):
    """A message is a JSON object: anything else is invalid_message."""
    with pytest.raises(ProtocolError, match="JSON object") as info:
        parse_message(obj, Side.CLIENT)
    assert info.value.code == "invalid_message"


@pytest.mark.parametrize("obj", [{}, {"type": 7}, {"type": "shout"}])
def test_parse_message_refuses_an_unknown_type(obj):
    """A message without a known string type is unknown_type."""
    with pytest.raises(ProtocolError, match="unknown message type") as info:
        parse_message(obj, Side.CLIENT)
    assert info.value.code == "unknown_type"


def test_parse_message_refuses_the_other_sides_types():
    """A client may not send a server message, nor a server a client message."""
    with pytest.raises(ProtocolError, match="from the client: 'subscribed'"):
        parse_message({"type": "subscribed"}, Side.CLIENT)
    with pytest.raises(ProtocolError, match="from the server: 'hello'"):
        parse_message({"type": "hello", "token": "t"}, Side.SERVER)


def test_parse_message_cuts_a_long_unknown_type():
    """An error quotes at most 64 characters of an unknown type."""
    with pytest.raises(ProtocolError) as info:
        parse_message({"type": "x" * 1000}, Side.CLIENT)
    assert "x" * 65 not in str(info.value)


def test_parse_message_tells_presence_by_sender():
    """The client's presence is SetPresence, the server's is Presence."""
    actor = {"id": "a", "role": "ai"}
    client = {"type": "presence", "session": "s", "status": "idle"}
    server = {**client, "actor": actor}
    assert parse_message(client, Side.CLIENT) == SetPresence("s", "idle")
    assert parse_message(server, Side.SERVER) == Presence("s", actor, "idle")


# parse_frame and serialize_frame


def test_parse_frame_parses_each_message():
    """A frame parses to its messages, each by its type."""
    frame = (
        '[{"type":"hello","token":"t"},'
        '{"type":"cursor","session":"s","offset":"0000000000000001_0000000000000002"}]'
    )
    assert parse_frame(frame, Side.CLIENT) == [
        Hello("t"),
        Cursor("s", "0000000000000001_0000000000000002"),
    ]


def test_parse_frame_fails_on_one_bad_message():
    """One bad message fails the whole frame."""
    with pytest.raises(ProtocolError, match="subscribe: missing field 'view'"):
        parse_frame(
            '[{"type":"hello","token":"t"},{"type":"subscribe","rid":"1","session":"s","offset":"-1"}]',
            Side.CLIENT,
        )


def test_parse_frame_applies_its_limits():
    """parse_frame passes its limits to the frame decoder."""
    with pytest.raises(ProtocolError) as info:
        parse_frame(
            '[{"type":"refresh","token":"t"}]' * 1, Side.CLIENT, max_frame_bytes=10
        )
    assert info.value.code == "frame_too_large"
    with pytest.raises(ProtocolError) as info:
        parse_frame("[1,2]", Side.SERVER, max_messages=1)
    assert info.value.code == "too_many_messages"


def test_serialize_frame_puts_type_then_rid_first():
    """Fields go type first, then rid, then the rest in the dataclass's order."""
    frame = serialize_frame([Subscribe("1", "s", "-1"), ErrorMessage("e", "m", "2")])
    assert frame == (
        '[{"type":"subscribe","rid":"1","session":"s","offset":"-1","view":"raw"},'
        '{"type":"error","rid":"2","code":"e","message":"m"}]'
    )


def test_serialize_frame_refuses_nan():
    """A message that holds NaN cannot be written."""
    with pytest.raises(ValueError):
        serialize_frame(
            [
                Subscribed(
                    "1", "s", "0000000000000001_0000000000000000", {"x": float("nan")}
                )
            ]
        )
