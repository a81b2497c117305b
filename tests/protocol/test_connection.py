"""Both ends together: a ClientProtocol wired to ServerProtocols, in memory."""

from __future__ import annotations

from typing import Any

from hypothesis import given, strategies as st

from threadline.protocol.codes import Close
from threadline.protocol.connection import ClientProtocol, ServerProtocol, State
from threadline.protocol.messages import Events, Hello, Subscribe

ZERO = "0000000000000001_0000000000000000"
QUEUE = 4


def off(n: int) -> str:
    return f"0000000000000001_{n:016d}"


class Harness:
    """A client, the server end of its current connection, and a session log.

    The server application paces catch-up (it sends history only while fewer
    than half of the queue bound wait) and fans live events out at once to a
    connection that is caught up, as a real server must.
    """

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.received: list[str] = []
        self.client = ClientProtocol("t")
        self.client.subscribe("s")
        self.connect()

    def connect(self) -> None:
        self.server = ServerProtocol(now=0, max_queue_messages=QUEUE)
        self.cursor: str | None = None  # last offset handed to this connection
        self.client.connect()

    def tail(self) -> str:
        return self.log[-1]["offset"] if self.log else ZERO

    def append(self) -> None:
        caught_up = self.cursor == self.tail()
        event: dict[str, Any] = {"offset": off(len(self.log) + 1), "type": "note"}
        self.log.append(event)
        if caught_up and self.server.state is State.OPEN:
            self.server.send_events("s", [event])  # live: may overflow the queue
            self.cursor = event["offset"]

    def drop(self) -> None:
        assert self.client.receive_close(1006) is True
        self.connect()

    def pump(self) -> None:
        while (
            self.server.state is State.OPEN
            and self.cursor is not None
            and self.server.queued_messages < QUEUE // 2
            and self.cursor < self.tail()
        ):
            event = next(e for e in self.log if e["offset"] > self.cursor)
            self.server.send_events("s", [event])
            self.cursor = event["offset"]

    def deliver(self) -> None:
        """Move frames both ways until nothing moves."""
        moved = True
        while moved:
            moved = False
            for item in self.client.data_to_send():
                assert isinstance(item, str)
                self.server.receive_text(item, now=0)
                moved = True
            for request in self.server.events_received():
                if isinstance(request, Hello):
                    self.server.accept(expires_at=None)
                elif isinstance(request, Subscribe):
                    start = ZERO if request.offset == "-1" else request.offset
                    self.server.send_subscribed(request.rid, "s", start, {})
                    self.cursor = start
            self.pump()
            for item in self.server.data_to_send():
                moved = True
                if isinstance(item, Close):
                    assert self.client.receive_close(item.code, item.reason) is True
                    self.connect()
                    break
                self.client.receive_text(item)
            for message in self.client.events_received():
                if isinstance(message, Events):
                    self.received += [event["offset"] for event in message.events]


@given(st.lists(st.sampled_from(["append", "burst", "deliver", "drop"]), max_size=40))
def test_client_receives_every_event_once_in_order_across_drops(actions):
    """Whatever the appends, bursts (which may close 4000) and dropped
    connections, the client ends with every event exactly once, in order."""
    harness = Harness()
    for action in actions:
        if action == "append":
            harness.append()
        elif action == "burst":
            for _ in range(QUEUE + 1):
                harness.append()
        elif action == "deliver":
            harness.deliver()
        else:
            harness.drop()
    harness.deliver()
    assert harness.received == [event["offset"] for event in harness.log]
    assert harness.client.subscriptions == {"s": harness.tail()}


def test_a_burst_past_the_queue_bound_closes_4000_and_resumes():
    """A live burst larger than the queue closes 4000, and the resume catches up."""
    harness = Harness()
    harness.deliver()
    for _ in range(QUEUE + 2):
        harness.append()
    assert harness.server.data_to_send()[-1] == Close(
        4000, "slow consumer: resume from your offsets"
    )
    harness.drop()
    harness.deliver()
    assert harness.received == [off(n) for n in range(1, QUEUE + 3)]
