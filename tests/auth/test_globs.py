"""Session and stream globs: what each dialect matches, ``:`` and ``/`` rules."""

from __future__ import annotations

import pytest

from threadline.auth import Claims, glob_match, is_glob, session_glob_match


@pytest.mark.parametrize(
    ("glob", "session"),
    [
        ("order-1234", "order-1234"),
        ("order-*", "order-1234"),
        ("shop:*", "shop:order-1"),
        ("shop:order-?", "shop:order-1"),
        ("*:order-1", "shop:order-1"),
        ("**", "shop:eu:order-1"),
        ("shop:**", "shop:eu:order-1"),
        ("order-[0-9]", "order-7"),
        ("order-[!0-9]", "order-x"),
        ("order-[]]", "order-]"),
        ("order-[", "order-["),
        ("*", "order-1234"),
    ],
)
def test_session_glob_matches(glob: str, session: str) -> None:
    """Each session glob matches the session id listed with it."""
    assert session_glob_match(glob, session)


@pytest.mark.parametrize(
    ("glob", "session"),
    [
        ("order-1234", "order-12345"),
        ("order-1234", "Order-1234"),
        ("*", "shop:order-1"),
        ("shop*", "shop:order-1"),
        ("shop:*", "shop:eu:order-1"),
        ("shop?order", "shop:order"),
        ("shop[:]order", "shop:order"),
        ("shop[!a]order", "shop:order"),
        ("shop[+-=]order", "shop:order"),
        ("order-[9-0]", "order-5"),
        ("order-.*", "order-1"),
    ],
)
def test_session_glob_does_not_match(glob: str, session: str) -> None:
    """No wildcard but ``**`` crosses ``:``; everything else is literal and exact."""
    assert not session_glob_match(glob, session)


def test_session_star_does_not_cross_colon() -> None:
    """``*`` stops at ``:``: a tenant-wide ``*`` grant misses namespaced ids."""
    assert session_glob_match("support:*", "support:42")
    assert not session_glob_match("support:*", "support:42:thread")


@pytest.mark.parametrize(
    ("glob", "name", "expected"),
    [
        ("chat/*", "chat/a", True),
        ("chat/*", "chat/a/b", False),
        ("chat/**", "chat/a/b", True),
        ("chat/?", "chat/a", True),
        ("chat/?", "chat//", False),
        ("chat/[ab]", "chat/a", False),
        ("chat/[ab]", "chat/[ab]", True),
    ],
)
def test_stream_glob(glob: str, name: str, expected: bool) -> None:
    """Stream globs keep their own dialect: ``*`` within a ``/`` segment, no classes."""
    assert glob_match(glob, name) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("order-1", False), ("order-*", True), ("order-?", True), ("order-[12]", True)],
)
def test_is_glob(pattern: str, expected: bool) -> None:
    """A pattern with ``*``, ``?`` or ``[`` is a glob; anything else an exact id."""
    assert is_glob(pattern) is expected


def test_claims_may_access_session_by_any_glob() -> None:
    """``may_access_session`` holds when any ``sessions`` glob matches."""
    claims = Claims(sub="a", role="agent", sessions=("vip:*", "order-1"))
    assert claims.may_access_session("vip:7")
    assert claims.may_access_session("order-1")
    assert not claims.may_access_session("order-2")


def test_claims_without_sessions_reach_none() -> None:
    """A token without a ``sessions`` claim reaches no session."""
    assert not Claims(sub="svc", role="service").may_access_session("order-1")
