"""The client's token: unverified claims, and one refresh for concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from tests.client.conftest import token
from threadline.client.tokens import Tokens, token_claims
from threadline.exceptions import AuthError


def test_token_claims_reads_a_jwt_without_verifying():
    """The role and expiry of a JWT are read without its key."""
    claims = token("cust_1", "customer", ttl_seconds=60)
    assert token_claims(claims)["role"] == "customer"
    assert isinstance(token_claims(claims)["exp"], int)


def test_token_claims_of_an_opaque_token_are_empty():
    """A token that is not a JWT has no claims the client can read."""
    assert token_claims("opaque-token") == {}
    assert token_claims("a.%%%.c") == {}


async def test_tokens_refresh_calls_the_provider_once_for_concurrent_callers():
    """Callers refused with the same token share one call of the provider."""
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return f"fresh-{calls}"

    tokens = Tokens("stale", provider)
    results = await asyncio.gather(*(tokens.refresh("stale") for _ in range(5)))
    assert results == [True] * 5
    assert (calls, tokens.token) == (1, "fresh-1")


async def test_tokens_refresh_without_provider_keeps_the_token():
    """Without a provider nothing changes, and the caller is told so."""
    tokens = Tokens("only")
    assert await tokens.refresh("only") is False
    assert tokens.token == "only"


async def test_tokens_refresh_reports_a_failing_provider_as_auth_error():
    """A provider that raises is an AuthError chained to its exception."""

    async def provider() -> str:
        raise OSError("identity service down")

    with pytest.raises(AuthError) as caught:
        await Tokens("stale", provider).refresh("stale")
    assert isinstance(caught.value.__cause__, OSError)
