from __future__ import annotations

import pytest

from threadline.exceptions import ProtocolError
from threadline.protocol.client_messages import (
    Cursor,
    Hello,
    Publish,
    Refresh,
    SetPresence,
    Subscribe,
    Unsubscribe,
)

OFFSET = "0000000000000001_0000000000000007"
SUBSCRIBE = {
    "type": "subscribe",
    "rid": "1",
    "session": "s",
    "offset": "-1",
    "view": "raw",
}
DRAFT = {"type": "note", "id": "e1", "data": {"text": "hi"}}


def refused(parse, obj, code="invalid_message"):
    with pytest.raises(ProtocolError) as info:
        parse(obj)
    assert info.value.code == code
    return str(info.value)


# Hello


def test_hello_parses_token_and_device():
    """A hello carries a token and, optionally, a device."""
    assert Hello.parse({"type": "hello", "token": "t", "device": "tab-1"}) == Hello(
        "t", "tab-1"
    )
    assert Hello.parse({"type": "hello", "token": "t"}) == Hello("t")


def test_hello_serializes_without_an_absent_device():
    """A hello without device writes no device field."""
    assert Hello("t").serialize() == {"type": "hello", "token": "t"}
    assert Hello("t", "d").serialize() == {"type": "hello", "token": "t", "device": "d"}


@pytest.mark.parametrize("token", ["", "t" * 16385])
def test_hello_refuses_an_empty_or_huge_token(token):
    """A token is 1 to 16384 characters."""
    assert "hello.token" in refused(Hello.parse, {"type": "hello", "token": token})


def test_hello_refuses_a_malformed_device():
    """A device id is [A-Za-z0-9_-]{1,64}."""
    message = refused(Hello.parse, {"type": "hello", "token": "t", "device": "tab 1"})
    assert message == "hello.device is malformed: 'tab 1'"


def test_hello_refuses_a_null_device():
    """An optional field that is present must have its type; null is not absent."""
    assert "hello.device must be a string" in refused(
        Hello.parse, {"type": "hello", "token": "t", "device": None}
    )


# Subscribe


def test_subscribe_parses_all_fields():
    """A subscribe names rid, session, offset and view."""
    assert Subscribe.parse({**SUBSCRIBE, "view": "compact"}) == Subscribe(
        "1", "s", "-1", "compact"
    )


def test_subscribe_view_defaults_to_raw():
    """Built in code, a subscribe reads the raw view unless told otherwise."""
    assert Subscribe("1", "s", "-1").view == "raw"


@pytest.mark.parametrize("offset", ["-1", "now", OFFSET])
def test_subscribe_accepts_an_offset_or_a_sentinel(offset):
    """A subscribe starts after an offset, at the start (-1) or at the tail (now)."""
    assert Subscribe.parse({**SUBSCRIBE, "offset": offset}).offset == offset


@pytest.mark.parametrize("offset", ["", "0", "1_2", OFFSET + " ", "-2", "NOW"])
def test_subscribe_refuses_a_malformed_offset(offset):
    """A malformed offset is invalid_offset, as in the HTTP API."""
    refused(Subscribe.parse, {**SUBSCRIBE, "offset": offset}, "invalid_offset")


def test_subscribe_refuses_an_unknown_view():
    """The view is raw or compact."""
    message = refused(Subscribe.parse, {**SUBSCRIBE, "view": "full"})
    assert message == "subscribe.view must be one of raw, compact"


def test_subscribe_refuses_a_missing_field():
    """Each required field must be there."""
    obj = {k: v for k, v in SUBSCRIBE.items() if k != "session"}
    assert refused(Subscribe.parse, obj) == "subscribe: missing field 'session'"


def test_subscribe_refuses_an_unknown_field():
    """A client may not send fields the protocol does not define."""
    assert refused(Subscribe.parse, {**SUBSCRIBE, "priority": 1}) == (
        "subscribe: unknown field 'priority'"
    )


def test_subscribe_refuses_a_field_of_the_wrong_type():
    """A string field holding a number is refused, naming the field."""
    assert (
        refused(Subscribe.parse, {**SUBSCRIBE, "rid": 1})
        == "subscribe.rid must be a string"
    )


@pytest.mark.parametrize("session", ["", "a b", "x" * 129, "é"])
def test_subscribe_refuses_a_malformed_session(session):
    """A session id is [A-Za-z0-9._:-]{1,128}."""
    assert "subscribe.session is malformed" in refused(
        Subscribe.parse, {**SUBSCRIBE, "session": session}
    )


@pytest.mark.parametrize("rid", ["", "r" * 65, "a/b"])
def test_subscribe_refuses_a_malformed_rid(rid):
    """A rid is [A-Za-z0-9._:-]{1,64}."""
    assert "subscribe.rid is malformed" in refused(
        Subscribe.parse, {**SUBSCRIBE, "rid": rid}
    )


def test_check_refuses_values_built_in_code():
    """check() applies the same rules to a message built in code."""
    with pytest.raises(ProtocolError, match="subscribe.view"):
        Subscribe("1", "s", "-1", "full").check()  # type: ignore[arg-type]


# Unsubscribe


def test_unsubscribe_rid_is_optional():
    """An unsubscribe may carry a rid, to correlate an error."""
    assert Unsubscribe.parse({"type": "unsubscribe", "session": "s"}) == Unsubscribe(
        "s"
    )
    assert Unsubscribe.parse({"type": "unsubscribe", "rid": "9", "session": "s"}) == (
        Unsubscribe("s", "9")
    )


def test_unsubscribe_serializes_rid_before_session():
    """The rid, when present, follows the type."""
    assert list(Unsubscribe("s", "9").serialize()) == ["type", "rid", "session"]
    assert Unsubscribe("s").serialize() == {"type": "unsubscribe", "session": "s"}


def test_unsubscribe_refuses_a_malformed_rid():
    """An optional rid must still be well formed."""
    refused(Unsubscribe.parse, {"type": "unsubscribe", "rid": "", "session": "s"})


# Publish


def test_publish_parses_events_and_expected_offset():
    """A publish carries event drafts and, optionally, the expected tail."""
    obj = {"type": "publish", "rid": "1", "session": "s", "events": [DRAFT]}
    assert Publish.parse(obj) == Publish("1", "s", (DRAFT,))
    assert Publish.parse({**obj, "expected_offset": OFFSET}).expected_offset == OFFSET


def test_publish_serializes_expected_offset_only_when_set():
    """An absent expected_offset is not written."""
    assert "expected_offset" not in Publish("1", "s", (DRAFT,)).serialize()
    assert Publish("1", "s", (DRAFT,), OFFSET).serialize()["expected_offset"] == OFFSET


def test_publish_refuses_no_events():
    """A publish appends at least one event."""
    obj = {"type": "publish", "rid": "1", "session": "s", "events": []}
    assert refused(Publish.parse, obj) == "publish.events must not be empty"


@pytest.mark.parametrize("events", [{}, [1], ["e"], [DRAFT, None]])
def test_publish_refuses_events_that_are_not_objects(events):
    """Events are an array of objects."""
    obj = {"type": "publish", "rid": "1", "session": "s", "events": events}
    assert refused(Publish.parse, obj) == "publish.events must be an array of objects"


@pytest.mark.parametrize("offset", ["-1", "now"])
def test_publish_refuses_a_sentinel_expected_offset(offset):
    """The expected tail is an offset, not -1 or now."""
    obj = {"type": "publish", "rid": "1", "session": "s", "events": [DRAFT]}
    refused(Publish.parse, {**obj, "expected_offset": offset}, "invalid_offset")


# Cursor


def test_cursor_parses_session_and_offset():
    """A cursor names a session and the last offset read."""
    assert Cursor.parse({"type": "cursor", "session": "s", "offset": OFFSET}) == Cursor(
        "s", OFFSET
    )


@pytest.mark.parametrize("offset", ["-1", "now", "7"])
def test_cursor_refuses_anything_but_an_offset(offset):
    """A cursor is an offset: no sentinel."""
    refused(
        Cursor.parse,
        {"type": "cursor", "session": "s", "offset": offset},
        "invalid_offset",
    )


# SetPresence


@pytest.mark.parametrize("status", ["active", "idle", "typing"])
def test_set_presence_accepts_each_status(status):
    """A device is active, idle or typing."""
    assert (
        SetPresence.parse({"type": "presence", "session": "s", "status": status}).status
        == status
    )


def test_set_presence_refuses_offline():
    """Offline is the server's to say: a client disconnects instead."""
    obj = {"type": "presence", "session": "s", "status": "offline"}
    assert (
        refused(SetPresence.parse, obj)
        == "presence.status must be one of active, idle, typing"
    )


def test_set_presence_serializes_as_presence():
    """The client's presence message has wire type presence."""
    assert SetPresence("s", "idle").serialize() == {
        "type": "presence",
        "session": "s",
        "status": "idle",
    }


# Refresh


def test_refresh_parses_a_token():
    """A refresh carries the new token."""
    assert Refresh.parse({"type": "refresh", "token": "t2"}) == Refresh("t2")
    assert Refresh("t2").serialize() == {"type": "refresh", "token": "t2"}


def test_refresh_refuses_an_empty_token():
    """A refresh's token is not empty."""
    refused(Refresh.parse, {"type": "refresh", "token": ""})
