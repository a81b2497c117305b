"""Durations on the command line: the units the options document."""

from __future__ import annotations

import pytest

from threadline.server.config import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("20s", 20.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("90d", 90 * 86400.0),
        ("7", 7.0),
        (" 30s ", 30.0),
    ],
)
def test_durations_parse_with_their_units(text: str, seconds: float) -> None:
    """Milliseconds, seconds, minutes, hours, days, or bare seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-1s", "1w", "1 s", "1e3"])
def test_other_durations_are_refused_with_an_example(text: str) -> None:
    """Anything else is a ValueError that says what would be accepted."""
    with pytest.raises(ValueError, match="try 20s"):
        parse_duration(text)
