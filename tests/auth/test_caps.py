"""Caps as data: which roles may carry which caps, and what ``Claims`` exposes."""

from __future__ import annotations

import pytest

from threadline.auth import Claims
from threadline.auth.caps import CAPS, refused_caps


@pytest.mark.parametrize(
    ("role", "caps", "refused"),
    [
        ("customer", ["barge"], ["barge"]),
        ("ai", ["barge"], ["barge"]),
        ("agent", ["barge"], []),
        ("supervisor", ["barge"], []),
        ("service", ["barge"], []),
        ("customer", ["x.unknown"], []),
    ],
)
def test_refused_caps(role: str, caps: list[str], refused: list[str]) -> None:
    """A widening cap is refused on roles it is not sanctioned for, never on service."""
    assert refused_caps(role, caps) == refused


def test_every_cap_documents_its_meaning() -> None:
    """Each known cap says what it means, under its own name."""
    assert all(cap.meaning and cap.name == name for name, cap in CAPS.items())


def test_claims_has_cap() -> None:
    """``Claims.has_cap`` reports the caps the token carries."""
    claims = Claims(sub="s", role="supervisor", caps=frozenset({"barge"}))
    assert claims.has_cap("barge")
    assert not claims.has_cap("other")


def test_claims_refuse_server_role() -> None:
    """``Claims`` cannot be built with the server's reserved role."""
    with pytest.raises(ValueError):
        Claims(sub="x", role="server")


def test_claims_refuse_server_subject() -> None:
    """``Claims`` cannot be built with the server's reserved subject."""
    with pytest.raises(ValueError):
        Claims(sub="threadline", role="service")


def test_staff_roles_are_staff() -> None:
    """Every role but customer is staff."""
    assert not Claims(sub="c", role="customer").is_staff
    assert Claims(sub="a", role="ai").is_staff
