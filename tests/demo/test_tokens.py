"""The demo's identities: participant ids from names."""

from __future__ import annotations

import pytest

from threadline.auth import Keyset, verify_token
from threadline.demo.tokens import AI_ID, DemoTokens, participant_id


@pytest.mark.parametrize(
    ("role", "name", "expected"),
    [
        ("customer", "Dana", "cust-dana"),
        ("customer", "  DANA  whitfield ", "cust-dana-whitfield"),
        ("customer", "Zoë O'Brien", "cust-zoe-o-brien"),
        ("agent", "Sam", "agent-sam"),
        ("supervisor", "Morgan Lee", "sup-morgan-lee"),
        ("customer", "x" * 100, "cust-" + "x" * 40),
    ],
)
def test_participant_id_is_derived_from_the_name(role, name, expected):
    """The same name gives the same id, whatever its case, spaces or accents."""
    assert participant_id(role, name) == expected


@pytest.mark.parametrize(("role", "name"), [("customer", "!!"), ("service", "x")])
def test_participant_id_refuses_unusable_input(role, name):
    """A name without a letter or digit, or a role the demo does not hand out."""
    with pytest.raises(ValueError):
        participant_id(role, name)


def test_demo_tokens_use_one_secret_per_run():
    """Each run draws a new secret; the AI's token is role ai on every session."""
    one, two = DemoTokens(), DemoTokens()
    assert one.secret != two.secret
    claims = verify_token(one.ai_token(), Keyset(one.secret))
    assert (claims.sub, claims.role, list(claims.sessions)) == (AI_ID, "ai", ["**"])
