from __future__ import annotations

import json

import pytest

from threadline.protocol.codes import Close, CloseCode
from threadline.protocol.connection import (
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_MESSAGES,
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_TOKEN_GRACE,
    ServerProtocol,
    State,
)
from threadline.protocol.frames import EncodedEvent
from threadline.protocol.messages import (
    ClientMessage,
    Cursor,
    ErrorMessage,
    Events,
    Gone,
    Hello,
    Presence,
    Publish,
    Published,
    Refresh,
    SetPresence,
    Side,
    Subscribe,
    Subscribed,
    Unsubscribe,
    parse_frame,
    serialize_frame,
)

T0 = 1000.0
START = "0000000000000001_0000000000000000"
ACTOR = {"id": "agent_7", "role": "agent", "device": "console-1"}
DRAFT = {"type": "note", "id": "e1", "data": {"text": "hi"}}


def off(n: int) -> str:
    return f"0000000000000001_{n:016d}"


def event(n: int, text: str = "x") -> dict[str, object]:
    return {"offset": off(n), "type": "note", "data": {"text": text}}


def frame(*messages) -> str:
    return serialize_frame(messages)


def receive(server: ServerProtocol, *messages, now: float = T0) -> list[ClientMessage]:
    server.receive_text(frame(*messages), now=now)
    return server.events_received()


def sent(server: ServerProtocol) -> list[object]:
    """What data_to_send() returns, with frames parsed into messages."""
    out: list[object] = []
    for item in server.data_to_send():
        out += [item] if isinstance(item, Close) else parse_frame(item, Side.SERVER)
    return out


def opened(**options) -> ServerProtocol:
    server = ServerProtocol(now=T0, **options)
    receive(server, Hello("t"))
    server.accept(expires_at=None)
    return server


def subscribed(server: ServerProtocol, session: str = "s", rid: str = "1") -> None:
    receive(server, Subscribe(rid, session, "-1"))
    server.send_subscribed(rid, session, START, {})
    server.data_to_send()


def test_defaults():
    """The documented defaults: hello 5 s, grace 30 s, 100 subscriptions, 1 MiB
    and 10,000 messages of send queue."""
    assert (DEFAULT_HELLO_TIMEOUT, DEFAULT_TOKEN_GRACE, DEFAULT_MAX_SUBSCRIPTIONS) == (
        5.0,
        30.0,
        100,
    )
    assert (DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_MESSAGES) == (
        1024 * 1024,
        10_000,
    )


# Handshake


def test_server_starts_waiting_for_a_hello():
    """A new connection waits for its hello until the hello deadline."""
    server = ServerProtocol(now=T0)
    assert server.state is State.CONNECTING
    assert server.next_deadline() == server.hello_deadline == T0 + 5


def test_server_passes_the_hello_on_and_opens():
    """A hello opens the connection and reaches the application."""
    server = ServerProtocol(now=T0)
    assert receive(server, Hello("t", "tab-1")) == [Hello("t", "tab-1")]
    assert server.state is State.OPEN


def test_server_handles_messages_after_the_hello_in_its_frame():
    """A client may pipeline requests behind its hello."""
    server = ServerProtocol(now=T0)
    events = receive(server, Hello("t"), Cursor("s", off(1)))
    assert events == [Hello("t"), Cursor("s", off(1))]


@pytest.mark.parametrize("first", ['{"type":"cursor"}', "1", '{"token":"t"}'])
def test_server_closes_4401_when_the_first_message_is_not_a_hello(first):
    """Anything but a hello first closes 4401."""
    server = ServerProtocol(now=T0)
    server.receive_text(f"[{first}]", now=T0)
    assert server.events_received() == []
    assert sent(server) == [Close(4401, "the first message must be a hello")]
    assert server.state is State.CLOSED


@pytest.mark.parametrize("token", ["", 7, None])
def test_server_closes_4401_on_a_hello_without_a_token(token):
    """A hello with a missing, empty or non-string token closes 4401."""
    server = ServerProtocol(now=T0)
    server.receive_text(json.dumps([{"type": "hello", "token": token}]), now=T0)
    assert sent(server) == [Close(4401, "hello: missing token")]


def test_server_closes_4409_on_a_malformed_hello():
    """A hello with a token but a bad field closes 4409."""
    server = ServerProtocol(now=T0)
    server.receive_text('[{"type":"hello","token":"t","device":"a b"}]', now=T0)
    assert sent(server) == [Close(4409, "hello.device is malformed: 'a b'")]


def test_server_waits_for_the_hello_until_the_deadline():
    """Before the hello deadline nothing happens."""
    server = ServerProtocol(now=T0)
    server.check_timeouts(T0 + 4.9)
    assert (server.state, server.data_to_send()) == (State.CONNECTING, [])


def test_server_closes_4408_when_no_hello_comes_in_time():
    """At the hello deadline without a hello, the connection closes 4408."""
    server = ServerProtocol(now=T0, hello_timeout=2)
    server.check_timeouts(T0 + 2)
    assert sent(server) == [Close(4408, "no hello in time")]
    assert server.next_deadline() is None


def test_server_closes_4408_on_a_late_hello():
    """A hello received after the deadline is too late, even if no timer fired."""
    server = ServerProtocol(now=T0)
    assert receive(server, Hello("t"), now=T0 + 5) == []
    assert sent(server) == [Close(4408, "no hello in time")]


def test_server_closes_4409_on_a_second_hello():
    """A second hello closes 4409, and the rest of its frame is ignored."""
    server = opened()
    assert receive(server, Hello("t"), Cursor("s", off(1))) == []
    assert sent(server) == [Close(4409, "hello sent twice")]


def test_server_accept_before_a_hello_is_a_mistake():
    """accept() needs a hello to accept."""
    with pytest.raises(RuntimeError):
        ServerProtocol(now=T0).accept(expires_at=None)


# Token expiry


def test_server_accept_sets_the_token_deadline():
    """accept() sets the deadline at the token's expiry plus the grace."""
    server = ServerProtocol(now=T0, token_grace=10)
    receive(server, Hello("t"))
    server.accept(expires_at=T0 + 60)
    assert server.next_deadline() == server.token_deadline == T0 + 70


def test_server_accept_without_expiry_sets_no_deadline():
    """A token without expiry leaves the connection without a deadline."""
    server = opened()
    assert server.next_deadline() is None
    server.check_timeouts(T0 + 10**9)
    assert server.state is State.OPEN


def test_server_closes_4001_when_the_token_expires():
    """At expiry plus grace without a refresh, the connection closes 4001."""
    server = opened()
    server.accept(expires_at=T0 + 60)
    server.check_timeouts(T0 + 89.9)
    assert server.state is State.OPEN
    server.check_timeouts(T0 + 90)
    assert sent(server) == [Close(4001, "token expired")]


def test_server_passes_a_refresh_on_for_verification():
    """A refresh reaches the application, which verifies it and accepts again."""
    server = opened()
    server.accept(expires_at=T0 + 60)
    assert receive(server, Refresh("t2"), now=T0 + 50) == [Refresh("t2")]
    server.accept(expires_at=T0 + 3600)
    server.check_timeouts(T0 + 100)
    assert server.state is State.OPEN


def test_server_accept_after_close_does_nothing():
    """Accepting a token on a closed connection changes nothing."""
    server = opened()
    server.close(4002)
    server.accept(expires_at=T0)
    assert server.token_deadline is None


# Frames


def test_server_closes_4409_on_a_frame_that_is_not_json():
    """A frame that is not JSON closes 4409 and says where it broke."""
    server = opened()
    server.receive_text('[{"type"', now=T0)
    assert sent(server) == [Close(4409, "frame is not JSON (at character 8)")]


def test_server_closes_4413_on_a_frame_too_large():
    """A frame over max_frame_bytes closes 4413."""
    server = opened(max_frame_bytes=50)
    server.receive_text(frame(Cursor("s", off(1))), now=T0)
    assert sent(server) == [Close(4413, "frame larger than 50 bytes")]


def test_server_closes_4413_on_too_many_messages():
    """A frame with more than max_messages messages closes 4413."""
    server = opened(max_messages=1)
    server.receive_text(frame(Cursor("s", off(1)), Cursor("s", off(2))), now=T0)
    assert sent(server) == [Close(4413, "frame holds more than 1 messages")]


def test_server_closes_4409_on_a_binary_frame():
    """threadline.v1 has no binary frames: one closes 4409."""
    server = opened()
    server.receive_binary(b"\x00", now=T0)
    assert sent(server) == [Close(4409, "binary frames are not part of the protocol")]


def test_server_ignores_input_once_closed():
    """After the close decision, frames of either kind change nothing."""
    server = opened()
    server.close(4002, "bye")
    server.receive_text(frame(Cursor("s", off(1))), now=T0)
    server.receive_binary(b"x", now=T0)
    assert server.events_received() == []
    assert sent(server) == [Close(4002, "bye")]


# Bad messages


def test_server_answers_a_bad_message_with_an_error_and_goes_on():
    """A bad message gets an error with its rid; the rest of the frame counts."""
    server = opened()
    server.receive_text(
        '[{"type":"subscribe","rid":"1","session":"s","offset":"x","view":"raw"},'
        '{"type":"cursor","session":"s","offset":"' + off(1) + '"}]',
        now=T0,
    )
    assert server.events_received() == [Cursor("s", off(1))]
    assert sent(server) == [
        ErrorMessage("invalid_offset", "subscribe.offset is malformed: 'x'", "1")
    ]


@pytest.mark.parametrize(
    "message", ['{"type":"cursor"}', '{"type":"cursor","rid":7}', "[]"]
)
def test_server_answers_a_bad_message_without_a_usable_rid(message):
    """An error for a message without a well-formed rid carries no rid."""
    server = opened()
    server.receive_text(f"[{message}]", now=T0)
    [error] = sent(server)
    assert isinstance(error, ErrorMessage) and error.rid is None


def test_server_answers_a_bad_message_reusing_a_rid_in_flight_without_rid():
    """A bad message with the rid of a request in flight leaves that rid's answer
    to the request."""
    server = opened()
    receive(server, Publish("1", "s", (DRAFT,)))
    server.receive_text('[{"type":"publish","rid":"1"}]', now=T0)
    [error] = sent(server)
    assert error == ErrorMessage("invalid_message", "publish: missing field 'session'")


def test_server_answers_an_unknown_type():
    """A message of an unknown type is answered unknown_type."""
    server = opened()
    server.receive_text('[{"type":"shout"}]', now=T0)
    [error] = sent(server)
    assert isinstance(error, ErrorMessage)
    assert error.code == "unknown_type"


# Subscriptions


def test_server_passes_a_subscribe_on_and_subscribes_when_answered():
    """A subscribe reaches the application; subscribed makes it a subscription."""
    server = opened()
    assert receive(server, Subscribe("1", "s", "-1")) == [Subscribe("1", "s", "-1")]
    assert server.subscriptions == frozenset()
    server.send_subscribed("1", "s", START, {"controller": "ai_1"})
    assert server.subscriptions == {"s"}
    assert sent(server) == [Subscribed("1", "s", START, {"controller": "ai_1"})]


@pytest.mark.parametrize(
    "second", [Subscribe("1", "t", "-1"), Publish("1", "t", (DRAFT,))]
)
def test_server_refuses_a_rid_in_flight(second):
    """A request reusing the rid of one in flight is refused without a rid."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"))
    assert receive(server, second) == []
    assert sent(server) == [ErrorMessage("duplicate_rid", "rid 1 is in flight")]


def test_server_refuses_a_second_subscription_to_a_session():
    """A session already subscribed cannot be subscribed again."""
    server = opened()
    subscribed(server)
    assert receive(server, Subscribe("2", "s", "-1")) == []
    assert sent(server) == [
        ErrorMessage("already_subscribed", "already subscribed to s", "2")
    ]


def test_server_refuses_a_second_subscribe_while_the_first_is_pending():
    """A session with a subscribe in flight cannot be subscribed again."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"))
    assert receive(server, Subscribe("2", "s", "-1")) == []
    [error] = sent(server)
    assert isinstance(error, ErrorMessage)
    assert error.code == "already_subscribed"


def test_server_limits_subscriptions_pending_ones_included():
    """Past max_subscriptions (counting pending ones), subscribe is refused."""
    server = opened(max_subscriptions=2)
    subscribed(server, "a", "1")
    receive(server, Subscribe("2", "b", "-1"))
    assert receive(server, Subscribe("3", "c", "-1")) == []
    assert sent(server) == [
        ErrorMessage("too_many_subscriptions", "subscription limit reached (2)", "3")
    ]


@pytest.mark.parametrize(("rid", "session"), [("9", "s"), ("1", "other"), ("2", "s")])
def test_server_send_subscribed_needs_its_subscribe(rid, session):
    """Answering a subscribe that is not pending (or a publish) is a mistake."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"), Publish("2", "s", (DRAFT,)))
    with pytest.raises(ValueError, match="no subscribe"):
        server.send_subscribed(rid, session, START, {})


def test_server_send_subscribed_needs_a_resolved_offset():
    """subscribed states an offset, never -1 or now."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"))
    with pytest.raises(ValueError, match="subscribed.offset"):
        server.send_subscribed("1", "s", "-1", {})


def test_server_unsubscribe_ends_a_subscription():
    """An unsubscribe reaches the application, and the session's events stop."""
    server = opened()
    subscribed(server)
    assert receive(server, Unsubscribe("s")) == [Unsubscribe("s")]
    server.send_events("s", [event(1)])
    assert (server.subscriptions, sent(server)) == (frozenset(), [])


def test_server_unsubscribe_of_a_pending_subscribe_cancels_it():
    """Unsubscribing while the subscribe is pending: the subscribe is still
    answered, but no subscription results."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"))
    assert receive(server, Unsubscribe("s")) == [Unsubscribe("s")]
    server.send_subscribed("1", "s", START, {})
    assert server.subscriptions == frozenset()
    assert sent(server) == [Subscribed("1", "s", START, {})]


def test_server_ignores_an_unsubscribe_of_a_session_not_subscribed():
    """Unsubscribing a session not subscribed does nothing, and reaches no one."""
    server = opened()
    assert receive(server, Unsubscribe("s", "4")) == []
    assert sent(server) == []


def test_server_error_answer_to_a_subscribe_leaves_it_unsubscribed():
    """A subscribe answered with an error frees the session and the slot."""
    server = opened(max_subscriptions=1)
    receive(server, Subscribe("1", "s", "-1"))
    server.send_error("forbidden", "no", rid="1")
    assert receive(server, Subscribe("2", "s", "-1")) == [Subscribe("2", "s", "-1")]
    assert sent(server) == [ErrorMessage("forbidden", "no", "1")]


def test_server_sends_an_error_without_a_rid():
    """An error may answer no request."""
    server = opened()
    server.send_error("rate_limited", "slow down", details={"retry_after": 2})
    assert sent(server) == [
        ErrorMessage("rate_limited", "slow down", None, {"retry_after": 2})
    ]


def test_server_send_error_refuses_a_malformed_code():
    """Error codes are snake_case."""
    with pytest.raises(ValueError, match="error.code"):
        opened().send_error("Bad Code", "m")


# Events


def test_server_sends_events_of_a_subscription_in_one_frame():
    """Events queued together, as objects or pre-encoded, leave in one frame."""
    server = opened()
    subscribed(server)
    server.send_events("s", [event(1)])
    server.send_events("s", [EncodedEvent.encode(event(2))])
    [text] = server.data_to_send()
    assert isinstance(text, str)
    assert parse_frame(text, Side.SERVER) == [Events("s", (event(1), event(2)))]


def test_server_splices_encoded_events_byte_for_byte():
    """A pre-encoded event appears in the frame exactly as encoded."""
    server = opened()
    subscribed(server)
    encoded = EncodedEvent(off(1), '{"offset":"' + off(1) + '","a":1}', 0)
    server.send_events("s", [encoded])
    assert server.data_to_send() == [
        '[{"type":"events","session":"s","events":[' + encoded.text + "]}]"
    ]


def test_server_drops_events_of_a_session_not_subscribed():
    """Events of a session without a subscription (yet) are not sent."""
    server = opened()
    receive(server, Subscribe("1", "s", "-1"))
    server.send_events("s", [event(1)])
    server.send_events("t", [event(1)])
    assert sent(server) == []


def test_server_sends_each_offset_once():
    """Events at or before the last offset sent (or subscribed from) are dropped,
    so an overlapping catch-up and live feed send each event once."""
    server = opened()
    receive(server, Subscribe("1", "s", off(2)))
    server.send_subscribed("1", "s", off(2), {})
    server.send_events("s", [event(1), event(2), event(3)])
    server.send_events("s", [event(3), event(4)])
    server.send_events("s", [event(4)])
    assert sent(server)[1:] == [Events("s", (event(3), event(4)))]


def test_server_send_events_needs_offsets():
    """An event object without an offset cannot be ordered: ValueError."""
    server = opened()
    subscribed(server)
    with pytest.raises(ValueError, match="offset"):
        server.send_events("s", [{"type": "note"}])


# Publish


def test_server_passes_a_publish_on_and_sends_its_answer():
    """A publish reaches the application; published answers its rid."""
    server = opened()
    assert receive(server, Publish("1", "s", (DRAFT,))) == [Publish("1", "s", (DRAFT,))]
    server.send_published("1", [off(5)])
    assert sent(server) == [Published("1", (off(5),))]


@pytest.mark.parametrize("rid", ["9", "2"])
def test_server_send_published_needs_its_publish(rid):
    """Answering a publish that is not pending (or a subscribe) is a mistake."""
    server = opened()
    receive(server, Subscribe("2", "s", "-1"))
    with pytest.raises(ValueError, match="no publish"):
        server.send_published(rid, [off(1)])


def test_server_send_published_refuses_malformed_offsets():
    """published states offsets."""
    server = opened()
    receive(server, Publish("1", "s", (DRAFT,)))
    with pytest.raises(ValueError, match="published.offsets"):
        server.send_published("1", ["now"])


def test_server_answers_each_publish_once():
    """After its answer a rid is free again, and a second answer is a mistake."""
    server = opened()
    receive(server, Publish("1", "s", (DRAFT,)))
    server.send_published("1", [off(5)])
    with pytest.raises(ValueError):
        server.send_published("1", [off(5)])
    assert receive(server, Publish("1", "s", (DRAFT,))) == [Publish("1", "s", (DRAFT,))]


# Cursor, presence, gone


def test_server_passes_cursor_and_presence_on():
    """Cursors and presence statuses reach the application, unanswered."""
    server = opened()
    messages = [Cursor("s", off(3)), SetPresence("s", "typing")]
    assert receive(server, *messages) == messages
    assert sent(server) == []


def test_server_sends_presence_of_a_subscribed_session():
    """Presence changes go to subscribers of the session only."""
    server = opened()
    subscribed(server)
    server.send_presence("s", ACTOR, "offline")
    server.send_presence("other", ACTOR, "active")
    assert sent(server) == [Presence("s", ACTOR, "offline")]


def test_server_send_presence_refuses_a_bad_status():
    """The presence status is active, idle, typing or offline."""
    server = opened()
    subscribed(server)
    with pytest.raises(ValueError, match="presence.status"):
        server.send_presence("s", ACTOR, "away")


def test_server_gone_ends_a_subscription():
    """gone is sent, the subscription ends, and later events are dropped."""
    server = opened()
    subscribed(server)
    server.send_gone("s", "offset_gone", earliest=off(10), tail=off(20))
    server.send_events("s", [event(30)])
    assert sent(server) == [Gone("s", "offset_gone", off(10), off(20))]
    assert server.subscriptions == frozenset()


def test_server_gone_of_a_session_not_subscribed_is_dropped():
    """There is nothing to end for a session not subscribed."""
    server = opened()
    server.send_gone("s", "deleted")
    assert sent(server) == []


def test_server_send_gone_refuses_a_bad_reason():
    """A gone reason is deleted, forbidden or offset_gone."""
    server = opened()
    subscribed(server)
    with pytest.raises(ValueError, match="gone.reason"):
        server.send_gone("s", "closed")  # type: ignore[arg-type]


def test_server_gone_keeps_the_sessions_order():
    """Events queued before a gone go before it, those after are dropped."""
    server = opened()
    subscribed(server)
    server.send_events("s", [event(1)])
    server.send_gone("s", "deleted")
    assert sent(server) == [Events("s", (event(1),)), Gone("s", "deleted")]


# Send queue


def test_server_counts_what_waits():
    """queued_bytes and queued_messages count what waits, until data_to_send()."""
    server = opened()
    subscribed(server)
    server.send_events("s", [event(1), event(2)])
    server.send_error("e", "m")
    assert server.queued_messages == 3
    assert server.queued_bytes > 0
    assert server.has_output
    server.data_to_send()
    assert (server.queued_bytes, server.queued_messages) == (0, 0)
    assert not server.has_output


def test_server_has_output_while_a_close_waits():
    """A close with nothing before it is output too, until it is taken."""
    server = opened()
    assert not server.has_output
    server.close(4000, "slow")
    assert server.has_output
    server.data_to_send()
    assert not server.has_output


def test_server_closes_4000_when_the_queue_bytes_overflow():
    """Past max_queue_bytes waiting, the queue is dropped and the connection
    closes 4000."""
    server = opened(max_queue_bytes=300)
    subscribed(server)
    for n in range(1, 10):
        server.send_events("s", [event(n, "y" * 50)])
    assert server.data_to_send() == [
        Close(4000, "slow consumer: resume from your offsets")
    ]
    assert server.queued_bytes == 0


def test_server_closes_4000_when_the_queue_messages_overflow():
    """Past max_queue_messages waiting, the connection closes 4000."""
    server = opened(max_queue_messages=3)
    subscribed(server)
    server.send_events("s", [event(1), event(2), event(3)])
    assert server.state is State.OPEN
    server.send_presence("s", ACTOR, "idle")
    assert server.data_to_send() == [
        Close(4000, "slow consumer: resume from your offsets")
    ]


def test_server_takes_one_large_message_into_an_empty_queue():
    """A message larger than the bound still goes when nothing else waits."""
    server = opened(max_queue_bytes=10, max_queue_messages=1)
    subscribed(server)
    server.send_events("s", [event(1, "y" * 100), event(2)])
    assert sent(server) == [Events("s", (event(1, "y" * 100), event(2)))]


def test_server_does_not_send_after_a_slow_consumer_close():
    """Once closed, send methods do nothing."""
    server = opened(max_queue_messages=1)
    subscribed(server)
    receive(server, Publish("2", "s", (DRAFT,)))
    server.send_events("s", [event(1)])
    server.send_events("s", [event(2)])
    server.data_to_send()
    server.send_subscribed("9", "x", START, {})
    server.send_events("s", [event(3)])
    server.send_published("2", [off(1)])
    server.send_error("e", "m")
    server.send_presence("s", ACTOR, "idle")
    server.send_gone("s", "deleted")
    server.close(4002)
    assert server.data_to_send() == []


# Closing


def test_server_close_sends_queued_frames_first():
    """A close goes after the frames already queued."""
    server = opened()
    server.send_error("e", "m")
    server.close(CloseCode.SERVER_RESTARTING, "restarting")
    assert sent(server) == [ErrorMessage("e", "m"), Close(4002, "restarting")]
    assert server.closing == Close(4002, "restarting")


def test_server_close_is_sent_once():
    """The close is returned by one data_to_send() call only."""
    server = opened()
    server.close(4002)
    server.data_to_send()
    assert server.data_to_send() == []


def test_server_close_cuts_a_long_reason():
    """A reason longer than a close frame allows is cut to fit."""
    server = opened()
    server.close(4950, "r" * 200)
    [close] = server.data_to_send()
    assert close == Close(4950, "r" * 123)


def test_server_close_refuses_a_code_that_cannot_be_sent():
    """A close code outside 1000 and 3000–4999 is a mistake."""
    with pytest.raises(ValueError):
        opened().close(1006)
