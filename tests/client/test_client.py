"""The Client against a real server: sessions, my sessions, tokens, closing."""

from __future__ import annotations

import asyncio

import pytest

import threadline
from tests.client.conftest import MakeClient, token
from tests.utils import MS, wait_for
from threadline.exceptions import AuthError, InvalidState


async def test_create_session_returns_the_document_and_ensures(
    make_client: MakeClient,
):
    """Creating a session twice returns the same document (safe to retry)."""
    client = await make_client()
    first = await client.create_session(
        "s1", metadata={"channel": "web"}, customer="c1"
    )
    second = await client.create_session("s1")
    assert first == second
    assert (first["id"], first["customer"], first["metadata"]) == (
        "s1",
        "c1",
        {"channel": "web"},
    )


async def test_my_sessions_lists_the_callers_sessions_with_unread_counts(
    make_client: MakeClient,
):
    """A customer's sessions come with the tail and the messages they have not read."""
    staff = await make_client()
    await staff.create_session("s1", customer="cust_1")
    await staff.create_session("s2", customer="someone_else")
    await staff.session("s1").send_message("Hello, how can I help?")
    customer = await make_client("cust_1", "customer")
    (listing,) = await customer.my_sessions()
    assert listing["session"]["id"] == "s1"
    assert listing["unread"] == 1
    assert listing["in_flight"] is False


async def test_new_device_finds_and_replays_the_conversation_in_flight(
    make_client: MakeClient,
):
    """A second device with no local state finds the session and reads the message
    being streamed."""
    ai = await make_client("bot", "ai")
    await ai.create_session("s1", customer="cust_1")
    phone = await make_client("cust_1", "customer", device="phone")
    async with ai.session("s1").stream_message(message_id="m1") as message:
        await message.write("Your order ")
        await wait_for(lambda: message.in_flight == 0, 5_000 * MS)
        (listing,) = await phone.my_sessions()
        assert listing["in_flight"] is True
        session = phone.session(listing["session"]["id"])
        async with session.subscribe() as events:
            types = []
            async with asyncio.timeout(5_000 * MS):
                async for event in events:
                    types.append(event.type)
                    if event.type == "message.delta":
                        break
    assert types[-2:] == ["message.start", "message.delta"]


async def test_token_provider_replaces_a_refused_token(make_client: MakeClient):
    """An expired token is replaced through the provider and the call succeeds."""
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return token()

    expired = token(ttl_seconds=-3600)
    client = await make_client(token=expired, token_provider=provider)
    await client.create_session("s1")
    await client.session("s1").publish("x.n", {"n": 1})
    async with client.session("s1").subscribe() as events:
        event = await asyncio.wait_for(anext(events), 5_000 * MS)
    assert event.data == {"n": 1}
    assert calls == 1


async def test_token_provider_is_called_ahead_of_expiry(make_client: MakeClient):
    """A token about to expire is refreshed before anything fails."""
    calls = asyncio.Event()

    async def provider() -> str:
        calls.set()
        return token()

    client = await make_client(token=token(ttl_seconds=20), token_provider=provider)
    await client.create_session("s1")
    await client.session("s1").publish("x.n", {"n": 1})
    await asyncio.wait_for(calls.wait(), 5_000 * MS)
    await client.session("s1").publish("x.n", {"n": 2})  # still connected and allowed


async def test_expired_token_without_provider_raises_auth_error(
    make_client: MakeClient,
):
    """Without a provider, a refused token is an AuthError."""
    client = await make_client(token=token(ttl_seconds=-3600))
    with pytest.raises(AuthError):
        await client.session("s1").publish("x.n", {"n": 1})


async def test_closed_client_refuses_calls(make_client: MakeClient):
    """Every call on a closed client raises InvalidState."""
    client = await make_client()
    await client.aclose()
    with pytest.raises(InvalidState):
        await client.my_sessions()


def test_connect_rejects_a_url_that_is_not_http():
    """connect() refuses a URL it cannot reach the API with."""
    with pytest.raises(ValueError):
        threadline.connect("ftp://example.com", "t")


def test_session_rejects_a_malformed_id():
    """client.session() refuses ids the server would refuse."""
    client = threadline.connect("http://127.0.0.1:1", "t")
    with pytest.raises(ValueError):
        client.session("no spaces")
