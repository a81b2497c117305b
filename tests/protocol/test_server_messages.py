from __future__ import annotations

import pytest

from threadline.exceptions import ProtocolError
from threadline.protocol.server_messages import (
    ErrorMessage,
    Events,
    Gone,
    Presence,
    Published,
    Subscribed,
)

OFFSET = "0000000000000001_0000000000000007"
EVENT = {"offset": OFFSET, "type": "note"}
ACTOR = {"id": "agent_7", "role": "agent"}


def refused(parse, obj, code="invalid_message"):
    with pytest.raises(ProtocolError) as info:
        parse(obj)
    assert info.value.code == code
    return str(info.value)


# Subscribed


def test_subscribed_parses_offset_and_state():
    """A subscribed answers a rid with the resolved offset and the state snapshot."""
    obj = {
        "type": "subscribed",
        "rid": "1",
        "session": "s",
        "offset": OFFSET,
        "state": {"a": 1},
    }
    assert Subscribed.parse(obj) == Subscribed("1", "s", OFFSET, {"a": 1})


def test_subscribed_ignores_unknown_fields():
    """A newer server may add fields; this version ignores them."""
    obj = {
        "type": "subscribed",
        "rid": "1",
        "session": "s",
        "offset": OFFSET,
        "state": {},
        "tail": OFFSET,
    }
    assert Subscribed.parse(obj) == Subscribed("1", "s", OFFSET, {})


@pytest.mark.parametrize("offset", ["-1", "now"])
def test_subscribed_refuses_a_sentinel_offset(offset):
    """The server resolves -1 and now before it answers."""
    obj = {
        "type": "subscribed",
        "rid": "1",
        "session": "s",
        "offset": offset,
        "state": {},
    }
    refused(Subscribed.parse, obj, "invalid_offset")


def test_subscribed_refuses_a_state_that_is_not_an_object():
    """The state snapshot is an object."""
    obj = {
        "type": "subscribed",
        "rid": "1",
        "session": "s",
        "offset": OFFSET,
        "state": [],
    }
    assert refused(Subscribed.parse, obj) == "subscribed.state must be an object"


# Events


def test_events_parses_events_in_order():
    """An events message carries one session's events, in order."""
    second = {**EVENT, "offset": "0000000000000001_0000000000000008"}
    obj = {"type": "events", "session": "s", "events": [EVENT, second]}
    assert Events.parse(obj) == Events("s", (EVENT, second))


def test_events_refuses_no_events():
    """An events message carries at least one event."""
    assert refused(Events.parse, {"type": "events", "session": "s", "events": []}) == (
        "events.events must not be empty"
    )


def test_events_refuses_an_event_without_an_offset():
    """Every event has a string offset: resume and dedupe need it."""
    obj = {"type": "events", "session": "s", "events": [{"type": "note"}]}
    assert "an event has no string offset" in refused(Events.parse, obj)


def test_events_refuses_an_event_with_a_malformed_offset():
    """An event's offset is an offset."""
    obj = {"type": "events", "session": "s", "events": [{**EVENT, "offset": "now"}]}
    refused(Events.parse, obj, "invalid_offset")


# Published


def test_published_parses_offsets():
    """A published answers a rid with one offset per event."""
    obj = {"type": "published", "rid": "1", "offsets": [OFFSET]}
    assert Published.parse(obj) == Published("1", (OFFSET,))
    assert Published("1", (OFFSET,)).serialize() == obj


def test_published_refuses_no_offsets():
    """A publish stored at least one event."""
    refused(Published.parse, {"type": "published", "rid": "1", "offsets": []})


@pytest.mark.parametrize("offsets", [[1], OFFSET, [None]])
def test_published_refuses_offsets_that_are_not_strings(offsets):
    """Offsets are an array of strings."""
    obj = {"type": "published", "rid": "1", "offsets": offsets}
    assert (
        refused(Published.parse, obj) == "published.offsets must be an array of strings"
    )


def test_published_refuses_a_malformed_offset():
    """Each offset is an offset."""
    refused(
        Published.parse,
        {"type": "published", "rid": "1", "offsets": ["-1"]},
        "invalid_offset",
    )


# ErrorMessage


def test_error_parses_with_and_without_rid_and_details():
    """An error has a code and a message; rid and details are optional."""
    obj = {"type": "error", "code": "forbidden", "message": "no"}
    assert ErrorMessage.parse(obj) == ErrorMessage("forbidden", "no")
    full = {**obj, "rid": "3", "details": {"tail": OFFSET}}
    assert ErrorMessage.parse(full) == ErrorMessage(
        "forbidden", "no", "3", {"tail": OFFSET}
    )


def test_error_serializes_only_what_is_set():
    """Absent rid and details are not written; rid follows type."""
    assert ErrorMessage("e", "m").serialize() == {
        "type": "error",
        "code": "e",
        "message": "m",
    }
    assert list(ErrorMessage("e", "m", "1", {}).serialize()) == [
        "type",
        "rid",
        "code",
        "message",
        "details",
    ]


@pytest.mark.parametrize("code", ["", "Forbidden", "9lives", "a-b", "x" * 65])
def test_error_refuses_a_malformed_code(code):
    """A code is snake_case ASCII, starting with a letter, at most 64 characters."""
    refused(ErrorMessage.parse, {"type": "error", "code": code, "message": "m"})


def test_error_refuses_a_malformed_rid():
    """An error's rid is well formed."""
    refused(
        ErrorMessage.parse, {"type": "error", "rid": "a b", "code": "e", "message": "m"}
    )


def test_error_refuses_details_that_are_not_an_object():
    """Details are an object."""
    obj = {"type": "error", "code": "e", "message": "m", "details": "tail"}
    assert refused(ErrorMessage.parse, obj) == "error.details must be an object"


# Presence


@pytest.mark.parametrize("status", ["active", "idle", "typing", "offline"])
def test_presence_accepts_each_status(status):
    """The server reports active, idle, typing and offline devices."""
    obj = {"type": "presence", "session": "s", "actor": ACTOR, "status": status}
    assert Presence.parse(obj) == Presence("s", ACTOR, status)


def test_presence_refuses_an_unknown_status():
    """A status outside the four is refused."""
    obj = {"type": "presence", "session": "s", "actor": ACTOR, "status": "away"}
    refused(Presence.parse, obj)


@pytest.mark.parametrize(
    ("actor", "why"),
    [
        ({"role": "ai"}, "presence.actor.id must be a non-empty string"),
        ({"id": "", "role": "ai"}, "presence.actor.id must be a non-empty string"),
        ({"id": "a"}, "presence.actor.role must be a string"),
        ({"id": "a", "role": "bot"}, "presence.actor.role must be one of"),
    ],
)
def test_presence_refuses_an_actor_without_identity(actor, why):
    """The actor names a participant: an id and a known role."""
    obj = {"type": "presence", "session": "s", "actor": actor, "status": "idle"}
    assert refused(Presence.parse, obj).startswith(why)


# Gone


def test_gone_parses_reason_and_offsets():
    """A gone names the session and why; offset_gone adds earliest and tail."""
    assert Gone.parse({"type": "gone", "session": "s", "reason": "deleted"}) == Gone(
        "s", "deleted"
    )
    obj = {
        "type": "gone",
        "session": "s",
        "reason": "offset_gone",
        "earliest": OFFSET,
        "tail": OFFSET,
    }
    assert Gone.parse(obj) == Gone("s", "offset_gone", OFFSET, OFFSET)
    assert Gone("s", "offset_gone", OFFSET, OFFSET).serialize() == obj


def test_gone_refuses_an_unknown_reason():
    """The reason is deleted, forbidden or offset_gone."""
    refused(Gone.parse, {"type": "gone", "session": "s", "reason": "closed"})


@pytest.mark.parametrize("field", ["earliest", "tail"])
def test_gone_refuses_malformed_offsets(field):
    """earliest and tail are offsets."""
    obj = {"type": "gone", "session": "s", "reason": "offset_gone", field: "-1"}
    refused(Gone.parse, obj, "invalid_offset")
