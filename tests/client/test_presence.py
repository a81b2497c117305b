"""Session.set_presence: a device's status reaches the other subscribers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.conftest import SECRET, MakeClient
from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS, wait_for


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """The client tests' server, with presence on."""
    with serve_in_thread(auth=True, secret=SECRET, presence=True) as (server, _):
        yield server


async def test_typing_reaches_the_other_side(make_client: MakeClient) -> None:
    """A customer typing shows in the agent's subscription; offline removes
    the device at once."""
    service = await make_client()
    await service.create_session("s1", customer="cust")
    agent = await make_client("sam", "agent")
    customer = await make_client("cust", "customer", device="tab-1")
    watching = agent.session("s1").subscribe("-1")
    await watching.start()

    def status() -> str | None:
        for (participant, _), message in (watching.presence or {}).items():
            if participant == "cust":
                return str(message["status"])
        return None

    present = await customer.session("s1").set_presence("typing")
    assert sorted(p["actor"]["id"] for p in present) == ["cust", "sam"]
    await wait_for(lambda: status() == "typing", timeout=5_000 * MS)
    await customer.session("s1").set_presence("offline")
    await wait_for(lambda: status() is None, timeout=5_000 * MS)
    await watching.aclose()
