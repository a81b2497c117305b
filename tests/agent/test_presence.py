"""when_customer_absent: continue (counted), pause, cancel — with server presence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.agent.conftest import (
    MakeClient,
    MakeWorker,
    of_type,
    presence_served,
    staff_log,
    until,
)
from tests.client.conftest import SECRET
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS, wait_for
from threadline.agent import Context


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """The server with presence on: a device is offline 50 ms after it drops."""
    if not presence_served():
        pytest.skip(
            "the server has no presence yet (WebSocket presence is not_supported)"
        )
    with serve_in_thread(
        auth=True, secret=SECRET, presence=True, presence_grace=50 * MS
    ) as (server, _):
        yield server


async def present_customer(make_client: MakeClient, session: str = "s1") -> Any:
    """A customer client holding a device present in ``session``; its subscription."""
    customer = await make_client("cust", "customer")
    subscription = customer.session(session).subscribe("-1")
    await subscription.start()
    if subscription.presence is None:
        pytest.skip("the server does not report presence yet")
    return customer, subscription


def feeder() -> tuple[asyncio.Queue[str | None], Any]:
    """A respond that yields what the test puts in a queue, until None."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    contexts: list[Context] = []

    async def respond(context: Context):
        contexts.append(context)
        while (item := await queue.get()) is not None:
            yield item

    respond.contexts = contexts  # type: ignore[attr-defined]
    return queue, respond


def deltas(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["type"], e["data"].get("text")) for e in log if e["type"] == "message.delta"
    ]


async def test_continue_streams_on_and_counts_deltas_while_the_customer_is_away(
    make_worker: MakeWorker, make_client: MakeClient
):
    """continue (the default) keeps streaming; deltas sent while no device of the
    customer is connected are counted."""
    service = await make_client()
    await service.create_session("s1", customer="cust")
    queue, respond = feeder()
    worker = await make_worker(respond, sessions=["s1"])
    customer, _ = await present_customer(make_client)
    async with service.session("s1").subscribe("-1") as events:
        await customer.session("s1").send_message("hello")
        queue.put_nowait("while here ")
        await until(events, of_type("message.delta"))
        (context,) = respond.contexts
        assert context.customer_present
        await customer.aclose()
        await wait_for(lambda: not context.customer_present, timeout=5_000 * MS)
        queue.put_nowait("while away")
        queue.put_nowait(None)
        end = await until(events, of_type("run.end"))
    assert end.data["status"] == "complete"
    assert worker.metrics.deltas == 2
    assert worker.metrics.deltas_customer_absent == 1


async def test_cancel_ends_the_reply_once_the_customer_is_away(
    make_worker: MakeWorker, make_client: MakeClient
):
    """cancel: once the customer has been away for the grace, the reply ends
    cancelled (customer_absent)."""
    service = await make_client()
    await service.create_session("s1", customer="cust")
    queue, respond = feeder()
    worker = await make_worker(
        respond, sessions=["s1"], when_customer_absent="cancel", absent_grace=50 * MS
    )
    customer, _ = await present_customer(make_client)
    async with service.session("s1").subscribe("-1") as events:
        await customer.session("s1").send_message("hello")
        queue.put_nowait("Let me see")
        await until(events, of_type("message.delta"))
        await customer.aclose()
        ended = await until(events, of_type("message.end"))
        run_end = await until(events, of_type("run.end"))
    assert ended.data["status"] == "cancelled"
    assert run_end.data == {
        "run_id": run_end.data["run_id"],
        "status": "cancelled",
        "reason": "customer_absent",
    }
    assert worker.metrics.absent_stops == 1


async def test_pause_holds_the_reply_until_the_customer_is_back(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
):
    """pause: once the customer has been away for the grace, nothing more is
    streamed; when a device of the customer is back, the reply goes on."""
    service = await make_client()
    await service.create_session("s1", customer="cust")
    queue, respond = feeder()
    worker = await make_worker(
        respond, sessions=["s1"], when_customer_absent="pause", absent_grace=50 * MS
    )
    customer, _ = await present_customer(make_client)
    async with service.session("s1").subscribe("-1") as events:
        await customer.session("s1").send_message("hello")
        queue.put_nowait("one ")
        await until(events, of_type("message.delta"))
        await customer.aclose()
        await wait_for(lambda: worker.metrics.pauses == 1, timeout=5_000 * MS)
        queue.put_nowait("two")  # made while away: pulled, then held
        await wait_for(queue.empty, timeout=5_000 * MS)
        assert worker.metrics.deltas == 1
        assert ("message.delta", "two") not in deltas(await staff_log(http, "s1"))
        queue.put_nowait(None)
        await present_customer(make_client)
        end = await until(events, of_type("run.end"))
    assert end.data["status"] == "complete"
    assert ("message.delta", "two") in deltas(await staff_log(http, "s1"))
    assert worker.metrics.deltas == 2
    assert worker.metrics.deltas_customer_absent == 0
