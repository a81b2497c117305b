"""The agent worker against a real server: claims, replies, cancel, floor, policies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.agent.conftest import (
    TIMEOUT,
    MakeClient,
    MakeWorker,
    of_type,
    staff_log,
    state_of,
    until,
)
from tests.utils import MS, wait_for
from threadline.agent import Context, Worker
from threadline.client.websocket import WebSocketTransport
from threadline.exceptions import InvalidState, SessionNotFound, Timeout


def answers(log: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    """The run.start events that answer ``message_id``."""
    return [
        e
        for e in log
        if e["type"] == "run.start" and e["data"].get("in_reply_to") == message_id
    ]


def replies(log: list[dict[str, Any]]) -> dict[str, str]:
    """Each assistant message's text, by message id, from raw deltas."""
    texts: dict[str, str] = {}
    for event in log:
        data = event["data"]
        if event["type"] == "message.start" and data["role"] == "assistant":
            texts[data["message_id"]] = ""
        elif event["type"] == "message.delta" and data["message_id"] in texts:
            texts[data["message_id"]] += data.get("text", "")
    return texts


async def customer_session(make_client: MakeClient, session: str = "s1") -> Any:
    """Create ``session`` for the customer ``cust``; the customer's view of it."""
    service = await make_client()
    await service.create_session(session, customer="cust")
    customer = await make_client("cust", "customer")
    return customer.session(session)


async def test_worker_answers_a_customer_message_with_a_streamed_reply(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """A customer message is claimed (run.start in reply to it), answered with a
    streamed message of what respond yields (text and parts), the run ends
    complete, and the worker's cursor moves to the message."""
    contexts: list[Context] = []

    async def respond(context: Context):
        contexts.append(context)
        yield "You said: "
        yield {"type": "data-card", "data": {"order": "1234"}}
        yield context.text.upper()

    session = await customer_session(make_client)
    worker = await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        sent = await session.send_message("where is my order?")
        start = await until(events, of_type("run.start"))
        end = await until(events, of_type("run.end"))
    (context,) = contexts
    message_id = context.message.message_id
    assert start.data["in_reply_to"] == message_id and start.actor.id == "bot"
    assert end.data == {"run_id": start.data["run_id"], "status": "complete"}
    assert context.text == "where is my order?"
    assert [m.text for m in context.history] == ["where is my order?"]
    assert context.customer_present  # presence off: assumed present
    state = await state_of(http, "s1")
    assert state["messages"] == [] and state["runs"] == []
    log = await staff_log(http, "s1")
    assert list(replies(log).values()) == ["You said: WHERE IS MY ORDER?"]
    delta_types = [e["data"]["part_type"] for e in log if e["type"] == "message.delta"]
    assert delta_types == ["text", "data-card", "text"]
    # The cursor is in the worker's (staff) view, the customer's offsets in theirs.
    staff = next(e["offset"] for e in log if e["data"].get("message_id") == message_id)
    assert staff != str(sent)
    await wait_for(lambda: _cursor(http, "s1", staff), timeout=TIMEOUT)
    assert worker.metrics.runs == worker.metrics.runs_completed == 1
    assert worker.metrics.deltas == 3


async def _cursor(http: httpx.AsyncClient, session: str, offset: str) -> bool:
    state = await state_of(http, session)
    return {"participant": "bot", "offset": offset} in state["cursors"]


@pytest.mark.timeout(180)
async def test_one_worker_serves_100_sessions_over_one_websocket(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """100 sessions, one WebSocket: each customer message is answered once."""
    service = await make_client()
    ids = [f"s{n:03d}" for n in range(100)]
    await asyncio.gather(*(service.create_session(i, customer="cust") for i in ids))

    async def respond(context: Context):
        yield context.text.upper()

    # 100 replies at once in one process (server, worker and customer share
    # it, under coverage in CI): operations get more time than usual.
    slow = 60_000 * MS
    worker = await make_worker(respond, sessions=ids, timeout=slow)
    await asyncio.gather(*(worker.serve(i) for i in ids))
    customer = await make_client("cust", "customer", timeout=slow)
    await asyncio.gather(*(customer.session(i).send_message(f"hi {i}") for i in ids))
    await wait_for(lambda: worker.metrics.runs_completed == 100, timeout=100_000 * MS)
    transport = worker.client.transport
    assert isinstance(transport, WebSocketTransport) and transport.connections == 1
    assert worker.metrics.sessions == 100
    for session_id in ids:
        log = await staff_log(http, session_id)
        (question,) = [e for e in log if e["type"] == "message"]
        assert len(answers(log, question["data"]["message_id"])) == 1
        assert list(replies(log).values()) == [f"HI {session_id.upper()}"]


async def test_two_replicas_answer_each_message_once(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """Two replicas serving the same sessions claim each customer message once:
    one run and one reply per message, across both."""
    service = await make_client()
    ids = [f"r{n:02d}" for n in range(20)]
    await asyncio.gather(*(service.create_session(i, customer="cust") for i in ids))

    async def respond(context: Context):
        yield f"answer to {context.text}"

    first = await make_worker(respond, sessions=ids, device="agent-a")
    second = await make_worker(respond, sessions=ids, device="agent-b")
    await asyncio.gather(*(w.serve(i) for w in (first, second) for i in ids))
    customer = await make_client("cust", "customer")
    await asyncio.gather(*(customer.session(i).send_message(i) for i in ids))

    def done():
        return first.metrics.runs_completed + second.metrics.runs_completed == 20

    await wait_for(done, timeout=10 * TIMEOUT)
    for session_id in ids:
        log = await staff_log(http, session_id)
        (question,) = [e for e in log if e["type"] == "message"]
        assert len(answers(log, question["data"]["message_id"])) == 1, log
        assert list(replies(log).values()) == [f"answer to {session_id}"]
    assert first.metrics.runs + second.metrics.runs == 20


async def test_cancel_closes_respond_within_100_ms_and_ends_the_reply_cancelled(
    make_worker: MakeWorker, make_client: MakeClient
):
    """A run.cancel reaching the worker closes the respond iterator within 100 ms;
    the message ends cancelled and the run cancelled."""
    loop = asyncio.get_running_loop()
    closed: dict[str, Any] = {}

    async def respond(context: Context):
        try:
            yield "Let me check"
            await asyncio.Event().wait()  # generating forever
        finally:
            closed["at"], closed["context"] = loop.time(), context

    session = await customer_session(make_client)
    worker = await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        await session.send_message("Where is my order?")
        start = await until(events, of_type("run.start"))
        await until(events, of_type("message.delta"))
        await session.publish("run.cancel", {"run_id": start.data["run_id"]})
        end = await until(events, of_type("message.end"))
        run_end = await until(events, of_type("run.end"))
    context: Context = closed["context"]
    assert context.stop_reason == "cancelled"
    assert context.stop_requested_at is not None
    assert closed["at"] - context.stop_requested_at <= 100 * MS
    assert end.data["status"] == "cancelled"
    assert run_end.data["status"] == "cancelled" and run_end.actor.id == "bot"
    assert worker.metrics.cancels == 1
    assert worker.metrics.stop_latency_max <= 100 * MS


async def test_loss_of_floor_stops_the_reply_and_the_handback_answers_what_waited(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """When a human accepts the floor, the server ends the AI's reply and the
    worker stops respond and publishes nothing more; handed back, the AI answers
    the message the human left unanswered."""
    stopped = asyncio.Event()
    calls = 0

    async def respond(context: Context):
        nonlocal calls
        calls += 1
        if calls > 1:
            yield f"Back: {context.text}"
            return
        try:
            yield "Let me look"
            await asyncio.Event().wait()
        finally:
            stopped.set()

    session = await customer_session(make_client)
    worker = await make_worker(respond, sessions=["s1"])
    human = (await make_client("alice", "agent")).session("s1")
    async with session.subscribe("-1") as events:
        await session.send_message("I want a refund")
        await until(events, of_type("message.delta"))
        await session.publish("control.request", {"request_id": "q1", "mode": "warm"})
        accept = await human.publish("control.accept", {"request_id": "q1"})
        ended = await until(events, of_type("message.end"))
        await until(events, of_type("run.end"))
        async with asyncio.timeout(TIMEOUT):
            await stopped.wait()
        assert ended.actor.role == "server"
        assert ended.data["reason"] == "floor_lost"
        await session.send_message("hello?")
        await human.publish("control.release", {"to": "bot"})
        await until(events, lambda e: e.type == "run.end" and e.actor.id == "bot")
    log = await staff_log(http, "s1")
    after = [e for e in log if e["offset"] > str(accept)]
    release = next(i for i, e in enumerate(after) if e["type"] == "control.release")
    assert [e for e in after[:release] if e["actor"]["id"] == "bot"] == []
    assert list(replies(log).values())[-1] == "Back: hello?"
    assert worker.metrics.floor_lost == 1 and worker.metrics.errors == 0


async def test_interrupt_cancels_the_reply_and_answers_the_newest_message(
    make_worker: MakeWorker, make_client: MakeClient
):
    """double_texting=interrupt: a second customer message stops the reply in
    flight (cancelled, interrupted) and the newest message is answered, with the
    first one and the interrupted reply in its history."""
    contexts: list[Context] = []

    async def respond(context: Context):
        contexts.append(context)
        yield f"re: {context.text}"
        if context.text == "first":
            await asyncio.Event().wait()

    session = await customer_session(make_client)
    worker = await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        await session.send_message("first")
        await until(events, of_type("message.delta"))
        await session.send_message("second")
        cancelled = await until(events, of_type("run.end"))
        second = await until(events, of_type("run.start"))
        completed = await until(events, of_type("run.end"))
    assert cancelled.data["status"] == "cancelled"
    assert cancelled.data["reason"] == "interrupted"
    assert completed.data["status"] == "complete"
    assert second.data["in_reply_to"] == contexts[1].message.message_id
    history = contexts[1].history
    assert [(m.text, m.status) for m in history] == [
        ("first", "complete"),
        ("re: first", "cancelled"),
        ("second", "complete"),
    ]
    assert worker.metrics.interrupts == 1


async def test_enqueue_answers_each_message_in_turn(
    make_worker: MakeWorker, make_client: MakeClient
):
    """double_texting=enqueue: the reply in flight goes on, then the next message
    is answered."""
    release = asyncio.Event()
    contexts: list[Context] = []

    async def respond(context: Context):
        contexts.append(context)
        yield f"re: {context.text}"
        if context.text == "first":
            await release.wait()

    session = await customer_session(make_client)
    await make_worker(respond, sessions=["s1"], double_texting="enqueue")
    async with session.subscribe("-1") as events:
        await session.send_message("first")
        await until(events, of_type("message.delta"))
        await session.send_message("second")
        release.set()
        first = await until(events, of_type("run.end"))
        second = await until(events, of_type("run.end"))
    assert first.data["status"] == second.data["status"] == "complete"
    assert [c.text for c in contexts] == ["first", "second"]
    assert [(m.text, m.status) for m in contexts[1].history] == [
        ("first", "complete"),
        ("re: first", "complete"),
        ("second", "complete"),
    ]


async def test_escalate_publishes_a_staff_note_and_a_warm_control_request(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """context.escalate() publishes the summary as a staff note and a warm
    control.request; the customer sees the request, never the note."""
    requests: list[str] = []

    async def respond(context: Context):
        requests.append(
            await context.escalate("Refund of 240 EUR: over my limit", reason="refund")
        )
        yield "A colleague will take over."

    session = await customer_session(make_client)
    await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        await session.send_message("Refund my order")
        request = await until(events, of_type("control.request"))
        await until(events, of_type("run.end"))
    assert request.data == {
        "request_id": requests[0],
        "mode": "warm",
        "reason": "refund",
    }
    log = await staff_log(http, "s1")
    (note,) = [e for e in log if e["type"] == "note"]
    assert note["data"] == {"text": "Refund of 240 EUR: over my limit"}
    assert note["visibility"] == "staff" and note["actor"]["id"] == "bot"
    state = await state_of(http, "s1")
    assert state["controller"]["role"] == "ai"  # warm: kept until a human accepts


async def test_a_failing_respond_ends_the_run_error_and_the_worker_goes_on(
    make_worker: MakeWorker, make_client: MakeClient
):
    """respond raising ends the message and the run error (producer_error); the
    next customer message is answered."""

    async def respond(context: Context):
        yield "Checking"
        if context.text == "boom":
            raise RuntimeError("the model is down")

    session = await customer_session(make_client)
    worker = await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        await session.send_message("boom")
        ended = await until(events, of_type("message.end"))
        failed = await until(events, of_type("run.end"))
        await session.send_message("again")
        done = await until(events, of_type("run.end"))
    assert ended.data["status"] == "error"
    assert failed.data == {
        "run_id": failed.data["run_id"],
        "status": "error",
        "reason": "producer_error",
    }
    assert done.data["status"] == "complete"
    assert worker.metrics.errors == 1


async def test_a_reply_the_server_did_not_answer_in_time_is_answered_again(
    make_worker: MakeWorker, make_client: MakeClient
):
    """A Timeout under a reply (the server too busy to answer it in time)
    ends it error / producer_lost, and the message is answered again."""
    tries: list[str] = []

    async def respond(context: Context):
        tries.append(context.run_id)
        yield "Checking"
        if len(tries) == 1:
            raise Timeout("GET /v1/sessions/s1/events: no answer in time")
        yield " done"

    session = await customer_session(make_client)
    await make_worker(respond, sessions=["s1"])
    async with session.subscribe("-1") as events:
        await session.send_message("where is it?")
        lost = await until(events, of_type("run.end"))
        done = await until(events, of_type("run.end"))
    assert (lost.data["status"], lost.data["reason"]) == ("error", "producer_lost")
    assert done.data["status"] == "complete" and len(tries) == 2


async def test_serve_beyond_max_sessions_is_refused(
    make_worker: MakeWorker, make_client: MakeClient
):
    """A worker serves at most max_sessions sessions."""
    service = await make_client()
    for session_id in ("a", "b"):
        await service.create_session(session_id, customer="cust")

    async def respond(context: Context):
        yield "hi"

    worker = await make_worker(respond, max_sessions=1)
    await worker.serve("a")
    with pytest.raises(InvalidState):
        await worker.serve("b")
    assert worker.sessions == ["a"]


def test_worker_refuses_a_customer_token():
    """Only ai, agent and service tokens may run a worker."""
    from tests.client.conftest import token

    async def respond(context: Context):
        yield "hi"

    with pytest.raises(ValueError, match="ai, agent or service"):
        Worker("http://127.0.0.1:1", token("cust", "customer"), respond, device="d1")


async def test_a_message_sent_before_the_worker_started_is_answered(
    make_worker: MakeWorker, make_client: MakeClient
):
    """A worker that starts after the customer wrote catches up and answers."""
    session = await customer_session(make_client)

    async def respond(context: Context):
        yield f"Sorry for the wait: {context.text}"

    async with session.subscribe("-1") as events:
        await session.send_message("anyone there?")
        await make_worker(respond, sessions=["s1"])
        done = await until(events, of_type("run.end"))
    assert done.data["status"] == "complete"


async def test_a_replica_answers_what_a_stopping_worker_left(
    make_worker: MakeWorker, make_client: MakeClient
):
    """A worker closed mid-reply ends its run error (producer_stopped); another
    replica serving the session answers the message again."""

    async def hang(context: Context):
        yield "Thinking"
        await asyncio.Event().wait()

    async def answer(context: Context):
        yield "Here it is"

    session = await customer_session(make_client)
    first = await make_worker(hang, sessions=["s1"], device="agent-a")
    async with session.subscribe("-1") as events:
        await session.send_message("where is my order?")
        await until(events, of_type("message.delta"))
        second = await make_worker(answer, sessions=["s1"], device="agent-b")
        await second.serve("s1")
        await first.aclose()
        stopped = await until(events, of_type("run.end"))
        done = await until(events, of_type("run.end"))
    assert stopped.data["status"] == "error"
    assert stopped.data["reason"] == "producer_stopped"
    assert done.data["status"] == "complete"
    assert second.metrics.runs_completed == 1


async def test_serving_an_unknown_session_raises_session_not_found(
    make_worker: MakeWorker,
):
    """serve() of a session that does not exist raises SessionNotFound."""

    async def respond(context: Context):
        yield "hi"

    worker = await make_worker(respond)
    with pytest.raises(SessionNotFound):
        await worker.serve("nope")
    await wait_for(lambda: worker.sessions == [])
