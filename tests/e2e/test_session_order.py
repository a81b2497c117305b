"""Concurrent writers over HTTP: every reader sees one order, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.harness import ServerThread, serve_in_thread
from tests.utils import MS
from threadline.auth import create_token

SECRET = "e2e-secret-0123456789abcdef0123456789"


def bearer(sub: str, role: str) -> dict[str, str]:
    token = create_token(SECRET, sub=sub, role=role, sessions=["**"])
    return {"authorization": f"Bearer {token}"}


CUSTOMER = bearer("cust_42", "customer")
WRITERS = [bearer(f"svc-{i}", "service") for i in range(6)]


def event(writer: int, n: int, staff: bool) -> dict[str, Any]:
    if staff:
        return {
            "type": "note",
            "id": f"w{writer}-{n}",
            "data": {"text": f"{writer}/{n}"},
        }
    return {
        "type": "x.tick",
        "id": f"w{writer}-{n}",
        "data": {"writer": writer, "n": n},
    }


@pytest.fixture
def server(tmp_path: Any) -> Iterator[ServerThread]:
    store = f"sqlite:///{tmp_path}/order.db"
    with serve_in_thread(store=store, auth=True, secret=SECRET) as (server, _):
        yield server


async def test_concurrent_writers_give_every_reader_one_order(
    server: ServerThread,
) -> None:
    """Six writers publishing at once: the staff and customer views agree on order."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10_000 * MS) as http:
        created = await http.post(
            "/v1/sessions",
            json={"id": "order-9", "customer": "cust_42"},
            headers=WRITERS[0],
        )
        assert created.status_code == 201, created.text

        async def write(writer: int) -> None:
            for n in range(15):
                body = event(writer, n, staff=n % 3 == 0)
                response = await http.post(
                    "/v1/sessions/order-9/events", json=body, headers=WRITERS[writer]
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(write(i) for i in range(len(WRITERS))))
        staff = (
            await http.get("/v1/sessions/order-9/events", headers=WRITERS[0])
        ).json()
        customer = (
            await http.get("/v1/sessions/order-9/events", headers=CUSTOMER)
        ).json()
    assert len(staff) == 6 * 15
    assert len({e["id"] for e in staff}) == len(staff)
    visible_in_staff_order = [e["id"] for e in staff if e["visibility"] == "all"]
    assert [e["id"] for e in customer] == visible_in_staff_order
    assert [int(e["offset"].split("_")[1]) for e in customer] == list(
        range(1, len(customer) + 1)
    )
    for writer in range(len(WRITERS)):
        mine = [e["id"] for e in staff if e["id"].startswith(f"w{writer}-")]
        assert mine == [f"w{writer}-{n}" for n in range(15)]
