from __future__ import annotations

import pytest

from threadline.protocol.codes import Close
from threadline.protocol.connection import ClientProtocol, State
from threadline.protocol.messages import (
    Cursor,
    ErrorMessage,
    Events,
    Gone,
    Hello,
    Presence,
    Publish,
    Published,
    Refresh,
    ServerMessage,
    SetPresence,
    Side,
    Subscribe,
    Subscribed,
    Unsubscribe,
    parse_frame,
    serialize_frame,
)

START = "0000000000000001_0000000000000000"
ACTOR = {"id": "agent_7", "role": "agent"}
DRAFT = {"type": "note", "id": "e1", "data": {"text": "hi"}}


def off(n: int) -> str:
    return f"0000000000000001_{n:016d}"


def event(n: int) -> dict[str, object]:
    return {"offset": off(n), "type": "note", "data": {"text": str(n)}}


def sent(client: ClientProtocol) -> list[object]:
    """What data_to_send() returns, with frames parsed into messages."""
    out: list[object] = []
    for item in client.data_to_send():
        out += [item] if isinstance(item, Close) else parse_frame(item, Side.CLIENT)
    return out


def receive(client: ClientProtocol, *messages) -> list[ServerMessage]:
    client.receive_text(serialize_frame(messages))
    return client.events_received()


def connected(**options) -> ClientProtocol:
    client = ClientProtocol("t", **options)
    client.connect()
    client.data_to_send()
    return client


def subscribed(client: ClientProtocol, session: str = "s", offset: str = START) -> str:
    rid = client.subscribe(session)
    receive(client, Subscribed(rid, session, offset, {}))
    client.data_to_send()
    return rid


# Connecting


def test_client_starts_disconnected():
    """A new client sends nothing until connect()."""
    client = ClientProtocol("t")
    assert (client.state, client.data_to_send()) == (State.CLOSED, [])


@pytest.mark.parametrize(("token", "device"), [("", None), ("t", "a b")])
def test_client_refuses_a_malformed_token_or_device(token, device):
    """The token and device must be sendable."""
    with pytest.raises(ValueError):
        ClientProtocol(token, device=device)


def test_client_connect_sends_the_hello():
    """connect() opens with a hello carrying the token and device."""
    client = ClientProtocol("t", device="tab-1")
    client.connect()
    assert client.state is State.OPEN
    assert sent(client) == [Hello("t", "tab-1")]


def test_client_connect_twice_is_a_mistake():
    """A connection that is open cannot be opened again."""
    with pytest.raises(RuntimeError):
        connected().connect()


def test_client_connect_drops_what_an_old_connection_left_unsent():
    """A new connection starts with its hello, not with stale frames."""
    client = connected()
    client.send_cursor("s", off(1))
    client.close()
    client.connect()
    assert sent(client) == [Hello("t")]


# Subscriptions


def test_client_subscribe_sends_a_subscribe_with_a_fresh_rid():
    """Each request gets the next rid."""
    client = connected()
    assert (client.subscribe("a"), client.subscribe("b", "now", "compact")) == (
        "1",
        "2",
    )
    assert sent(client) == [
        Subscribe("1", "a", "-1"),
        Subscribe("2", "b", "now", "compact"),
    ]


def test_client_subscribe_while_disconnected_goes_after_the_hello():
    """A subscription made while disconnected is sent when the client connects."""
    client = ClientProtocol("t")
    client.subscribe("s")
    assert client.data_to_send() == []
    client.connect()
    assert sent(client) == [Hello("t"), Subscribe("1", "s", "-1")]


def test_client_refuses_a_second_subscription_to_a_session():
    """A session is subscribed once."""
    client = connected()
    client.subscribe("s")
    with pytest.raises(ValueError, match="already subscribed"):
        client.subscribe("s")


def test_client_refuses_a_malformed_subscribe():
    """A malformed argument is a ValueError before anything is sent."""
    with pytest.raises(ValueError, match="subscribe.offset"):
        connected().subscribe("s", "yesterday")


def test_client_subscribed_resolves_a_sentinel_offset():
    """subscribed replaces -1 or now by the offset the server resolved."""
    client = connected()
    rid = client.subscribe("s", "now")
    assert client.subscriptions == {"s": "now"}
    assert receive(client, Subscribed(rid, "s", off(9), {})) == [
        Subscribed(rid, "s", off(9), {})
    ]
    assert client.subscriptions == {"s": off(9)}


def test_client_subscribed_never_moves_the_offset_back():
    """A resume offset only moves forward."""
    client = connected()
    rid = client.subscribe("s", off(5))
    receive(client, Subscribed(rid, "s", off(3), {}))
    assert client.subscriptions == {"s": off(5)}
    receive(client, Subscribed(rid, "s", off(7), {}))
    assert client.subscriptions == {"s": off(7)}


def test_client_drops_a_subscribed_it_did_not_ask_for():
    """A subscribed for an unknown rid, or a session since unsubscribed, is dropped."""
    client = connected()
    rid = client.subscribe("s")
    client.unsubscribe("s")
    assert (
        receive(
            client, Subscribed(rid, "s", START, {}), Subscribed("9", "t", START, {})
        )
        == []
    )


def test_client_unsubscribe_sends_unsubscribe():
    """Unsubscribing ends the subscription and tells the server."""
    client = connected()
    subscribed(client)
    client.unsubscribe("s")
    assert (client.subscriptions, sent(client)) == ({}, [Unsubscribe("s")])


def test_client_unsubscribe_of_an_unknown_session_does_nothing():
    """There is nothing to end."""
    client = connected()
    client.unsubscribe("s")
    assert sent(client) == []


def test_client_unsubscribe_while_disconnected_is_not_resubscribed():
    """A subscription ended while disconnected is gone from the next connection."""
    client = ClientProtocol("t")
    client.subscribe("s")
    client.unsubscribe("s")
    client.connect()
    assert sent(client) == [Hello("t")]


# Events and resume


def test_client_passes_new_events_on_and_tracks_the_offset():
    """New events reach the application and move the resume offset."""
    client = connected()
    subscribed(client)
    assert receive(client, Events("s", (event(1), event(2)))) == [
        Events("s", (event(1), event(2)))
    ]
    assert client.subscriptions == {"s": off(2)}


def test_client_drops_events_it_already_has():
    """Events at or before the resume offset are dropped; the rest pass."""
    client = connected()
    subscribed(client, offset=off(2))
    assert receive(client, Events("s", (event(1), event(2), event(3)))) == [
        Events("s", (event(3),))
    ]
    assert receive(client, Events("s", (event(3),))) == []


def test_client_takes_events_from_the_start_before_subscribed():
    """With -1 as the resume point, every event is new."""
    client = connected()
    client.subscribe("s")
    assert receive(client, Events("s", (event(1),))) == [Events("s", (event(1),))]


def test_client_drops_events_of_a_session_not_subscribed():
    """Events of an unknown session are dropped."""
    assert receive(connected(), Events("s", (event(1),))) == []


def test_client_resubscribes_from_the_last_offset_on_reconnect():
    """After a retryable close, connect() resubscribes each session, with its rid,
    from the last offset received."""
    client = connected()
    rid = subscribed(client)
    receive(client, Events("s", (event(1), event(2))))
    assert client.receive_close(4000, "slow consumer") is True
    client.connect()
    assert sent(client) == [Hello("t"), Subscribe(rid, "s", off(2))]


# Publish


def test_client_publish_sends_and_awaits_its_answer():
    """A publish is sent and pending until published answers its rid."""
    client = connected()
    rid = client.publish("s", [DRAFT], expected_offset=off(4))
    assert sent(client) == [Publish(rid, "s", (DRAFT,), off(4))]
    assert client.pending_publishes == (rid,)
    assert receive(client, Published(rid, (off(5),))) == [Published(rid, (off(5),))]
    assert not client.pending_publishes


def test_client_drops_a_published_it_did_not_ask_for():
    """published for a rid not pending is dropped."""
    assert receive(connected(), Published("7", (off(5),))) == []


def test_client_publish_refuses_what_does_not_fit_a_frame():
    """A publish larger than a frame is refused before it is sent."""
    client = connected(max_frame_bytes=200)
    with pytest.raises(ValueError, match="larger than a frame"):
        client.publish("s", [{**DRAFT, "data": {"text": "x" * 200}}])


@pytest.mark.parametrize("events", [[], [{**DRAFT, "data": {"n": float("nan")}}]])
def test_client_publish_refuses_bad_events(events):
    """No events, or events JSON cannot carry, are a ValueError."""
    with pytest.raises(ValueError):
        connected().publish("s", events)


def test_client_publish_while_disconnected_goes_after_the_hello():
    """A publish made while disconnected is sent when the client connects."""
    client = ClientProtocol("t")
    rid = client.publish("s", [DRAFT])
    client.connect()
    assert sent(client) == [Hello("t"), Publish(rid, "s", (DRAFT,))]


def test_client_resends_a_pending_publish_after_a_retryable_close():
    """An unanswered publish is resent, same rid, on the next connection."""
    client = connected()
    rid = client.publish("s", [DRAFT])
    client.data_to_send()
    client.receive_close(4002)
    client.connect()
    assert sent(client) == [Hello("t"), Publish(rid, "s", (DRAFT,))]


def test_client_drops_pending_publishes_after_a_terminal_close():
    """After a terminal close, pending publishes have failed; subscriptions stay."""
    client = connected()
    client.subscribe("s")
    client.publish("s", [DRAFT])
    assert client.receive_close(4401, "bad token") is False
    assert client.pending_publishes == ()
    client.connect()
    assert sent(client) == [Hello("t"), Subscribe("1", "s", "-1")]


# Errors, presence, gone


def test_client_error_for_a_publish_ends_it():
    """An error answering a publish is passed on and ends the pending publish."""
    client = connected()
    rid = client.publish("s", [DRAFT])
    error = ErrorMessage("id_conflict", "no", rid)
    assert receive(client, error) == [error]
    assert client.pending_publishes == ()


def test_client_error_for_a_subscribe_ends_the_subscription():
    """An error answering a subscribe removes the subscription."""
    client = connected()
    rid = client.subscribe("s")
    error = ErrorMessage("forbidden", "no", rid)
    assert receive(client, error) == [error]
    assert client.subscriptions == {}


@pytest.mark.parametrize("rid", [None, "42"])
def test_client_passes_other_errors_on(rid):
    """An error without a rid, or with one the client does not know, still reaches
    the application."""
    error = ErrorMessage("invalid_message", "no", rid)
    assert receive(connected(), error) == [error]


def test_client_passes_presence_of_subscribed_sessions_on():
    """Presence of a subscribed session reaches the application; other presence
    is dropped."""
    client = connected()
    subscribed(client)
    presence = Presence("s", ACTOR, "typing")
    assert receive(client, presence, Presence("t", ACTOR, "idle")) == [presence]


def test_client_gone_ends_the_subscription():
    """gone ends the subscription; a gone for a session not subscribed is dropped."""
    client = connected()
    subscribed(client)
    assert receive(client, Gone("s", "deleted"), Gone("t", "deleted")) == [
        Gone("s", "deleted")
    ]
    assert client.subscriptions == {}
    assert receive(client, Events("s", (event(1),))) == []


# Cursor, presence and refresh


def test_client_sends_cursor_and_presence_while_connected():
    """Cursors and presence statuses are sent at once."""
    client = connected()
    client.send_cursor("s", off(3))
    client.send_presence("s", "idle")
    assert sent(client) == [Cursor("s", off(3)), SetPresence("s", "idle")]


def test_client_keeps_the_latest_cursor_and_presence_while_disconnected():
    """While disconnected, only the latest cursor and presence per session wait."""
    client = ClientProtocol("t")
    client.send_cursor("s", off(3))
    client.send_presence("s", "typing")
    client.send_cursor("s", off(4))
    client.send_presence("s", "idle")
    client.connect()
    assert sent(client) == [Hello("t"), Cursor("s", off(4)), SetPresence("s", "idle")]
    client.receive_close(4002)
    client.connect()
    assert sent(client) == [Hello("t")]


def test_client_refuses_a_malformed_cursor():
    """A cursor is an offset."""
    with pytest.raises(ValueError):
        connected().send_cursor("s", "-1")


def test_client_refresh_sends_the_token_and_keeps_it():
    """refresh() sends the new token and uses it for later hellos."""
    client = connected()
    client.refresh("t2")
    assert sent(client) == [Refresh("t2")]
    client.receive_close(4001)
    client.connect()
    assert sent(client) == [Hello("t2")]


def test_client_refresh_while_disconnected_only_keeps_the_token():
    """A refresh while disconnected waits for the next hello."""
    client = ClientProtocol("t")
    client.refresh("t2")
    assert client.data_to_send() == []
    assert client.token == "t2"


def test_client_refuses_an_empty_refresh_token():
    """A refresh needs a token."""
    with pytest.raises(ValueError):
        connected().refresh("")


# Bad frames, closing


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("nope", 4409),
        ('[{"type":"events","session":"s","events":[]}]', 4409),
        ('[{"type":"error","code":"x"}]', 4409),
    ],
)
def test_client_closes_4409_on_a_bad_server_frame(text, code):
    """A frame the server should not have sent closes the connection 4409."""
    client = connected()
    client.send_cursor("s", off(1))
    client.receive_text(text)
    [close] = client.data_to_send()
    assert isinstance(close, Close) and close.code == code
    assert client.state is State.CLOSED


def test_client_closes_4413_on_a_frame_too_large():
    """A frame past the client's limits closes 4413."""
    client = connected(max_messages=1)
    client.receive_text(
        serialize_frame([ErrorMessage("a", "b"), ErrorMessage("c", "d")])
    )
    assert client.data_to_send() == [Close(4413, "frame holds more than 1 messages")]


def test_client_handles_nothing_of_a_frame_with_a_bad_message():
    """A frame with one bad message is refused whole."""
    client = connected()
    subscribed(client)
    client.receive_text(
        serialize_frame([Events("s", (event(1),))])[:-1] + ',{"type":"gone"}]'
    )
    assert client.events_received() == []
    assert client.subscriptions == {"s": START}


def test_client_skips_message_types_it_does_not_know():
    """A newer server's message types are skipped, not refused."""
    client = connected()
    client.receive_text(
        '[{"type":"typing","session":"s"},{"type":"error","code":"e","message":"m"}]'
    )
    assert client.events_received() == [ErrorMessage("e", "m")]


def test_client_ignores_frames_when_not_connected():
    """Frames after the connection ended change nothing."""
    client = connected()
    client.receive_close(1006)
    client.receive_text(serialize_frame([ErrorMessage("e", "m")]))
    assert client.events_received() == []


def test_client_close_sends_1000_after_what_is_queued():
    """close() flushes what waits, then closes normally."""
    client = connected()
    client.send_cursor("s", off(1))
    client.close()
    assert sent(client) == [Cursor("s", off(1)), Close(1000)]
    assert client.state is State.CLOSED
    assert client.data_to_send() == []


def test_client_close_when_not_connected_does_nothing():
    """There is nothing to close."""
    client = ClientProtocol("t")
    client.close()
    assert client.data_to_send() == []


def test_client_receive_close_says_whether_to_reconnect():
    """receive_close() returns the close code's retry decision and disconnects."""
    client = connected()
    assert client.receive_close(4000) is True
    assert client.state is State.CLOSED
    client.connect()
    assert client.receive_close(4403) is False


def test_client_receive_close_drops_unsent_frames():
    """What was not sent before the close is not sent later."""
    client = connected()
    client.send_cursor("s", off(1))
    client.receive_close(1006)
    assert client.data_to_send() == []
