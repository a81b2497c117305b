"""A replica killed mid-reply that never comes back: the server's lease ends its
reply (producer_lost) and another replica answers the message."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from tests.agent.conftest import MakeClient, MakeWorker, of_type, state_of, until
from tests.agent.test_restart import worker_process
from tests.client.conftest import SECRET
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.agent import Context
from threadline.server import Config


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """The server with a 300 ms dead-producer lease."""
    if "lease" not in {f.name for f in dataclasses.fields(Config)}:
        pytest.skip("the server has no dead-producer lease yet")
    with serve_in_thread(auth=True, secret=SECRET, lease=300 * MS) as (server, _):
        yield server


async def test_the_lease_ends_a_dead_replicas_reply_and_another_answers(
    make_worker: MakeWorker,
    make_client: MakeClient,
    http: httpx.AsyncClient,
    server: ServerThread,
):
    """SIGKILL one replica mid-reply; the lease ends its message and run with
    producer_lost, and the other replica (another device) answers."""

    async def answer(context: Context):
        yield f"Answer: {context.text}"

    service = await make_client()
    await service.create_session("s1", customer="cust")
    customer = (await make_client("cust", "customer")).session("s1")
    async with customer.subscribe("-1") as events:
        async with worker_process(server.url, "hang", "s1") as process:
            await customer.send_message("where is my order?")
            first = await until(events, of_type("run.start"))
            await until(events, of_type("message.delta"))
            process.kill()
            await process.wait()
        survivor = await make_worker(answer, sessions=["s1"], device="agent-2")
        lost = await until(events, of_type("run.end", run_id=first.data["run_id"]))
        second = await until(events, of_type("run.start"))
        done = await until(events, of_type("run.end", run_id=second.data["run_id"]))
    assert lost.actor.role == "server"
    assert lost.data["status"] == "error" and lost.data["reason"] == "producer_lost"
    assert second.data["in_reply_to"] == first.data["in_reply_to"]
    assert second.actor.device == "agent-2"
    assert done.data["status"] == "complete"
    assert survivor.metrics.runs_completed == 1
    state = await state_of(http, "s1")
    assert state["messages"] == [] and state["runs"] == []
