"""A worker following the new-sessions feed answers sessions nobody handed it."""

from __future__ import annotations

import httpx

from tests.agent.conftest import (
    TIMEOUT,
    MakeClient,
    MakeWorker,
    of_type,
    staff_log,
    until,
)
from tests.utils import wait_for
from threadline.agent import Context


async def respond(context: Context):
    yield f"re: {context.text}"


async def test_worker_serves_new_sessions_and_resumes_from_its_cursor(
    make_worker: MakeWorker, make_client: MakeClient, http: httpx.AsyncClient
) -> None:
    """A session created after the worker started is answered; one created
    while the worker was stopped is answered by the next one (its cursor in
    the feed); a session created without the AI at the floor is left alone."""
    service = await make_client()
    customer = await make_client("cust", "customer")
    worker = await make_worker(respond, follow_new_sessions=True)
    await service.create_session("s1", customer="cust")
    async with customer.session("s1").subscribe("-1") as events:
        await customer.session("s1").send_message("hello")
        await until(events, of_type("run.end"))
    await wait_for(lambda: "s1" in worker.sessions, timeout=TIMEOUT)
    await worker.aclose()

    await service.create_session("s2", customer="cust")
    await service.create_session("human", customer="cust", controller_role=None)
    await customer.session("s2").send_message("anyone?")
    restarted = await make_worker(respond, follow_new_sessions=True)
    async with customer.session("s2").subscribe("-1") as events:
        end = await until(events, of_type("run.end"))
    assert end.data["status"] == "complete"
    log = await staff_log(http, "s2")
    texts = [e["data"].get("text") for e in log if e["type"] == "message.delta"]
    assert texts == ["re: anyone?"]
    await wait_for(lambda: "s2" in restarted.sessions, timeout=TIMEOUT)
    assert "human" not in restarted.sessions and "s1" not in restarted.sessions
