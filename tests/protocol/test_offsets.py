from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import InvalidOffset, OffsetGone
from threadline.protocol.offsets import (
    NOW,
    START,
    ZERO,
    Offset,
    Segment,
    earliest,
    offset_at,
    parse_offset_param,
    resolve,
)

LIMIT = 10**16
offsets = st.builds(Offset, st.integers(0, LIMIT - 1), st.integers(0, LIMIT - 1))

# A fork (generation 7) of a log (generation 3) at position 5, with tail 9.
FORK_CHAIN = [Segment(3, 0, 5), Segment(7, 5, 9)]


# Offset


def test_offset_str_is_two_fixed_width_groups():
    """An offset prints as two 16-digit zero-padded decimals joined by an underscore."""
    assert str(Offset(12, 345)) == "0000000000000012_0000000000000345"


@given(offsets)
def test_offset_parse_round_trips(offset):
    """Parsing the printed form of any offset gives the same offset back."""
    assert Offset.parse(str(offset)) == offset


@given(offsets, offsets)
def test_offset_text_order_is_numeric_order(a, b):
    """Offsets compare as text exactly as they compare by (generation, position)."""
    assert (
        (str(a) < str(b))
        == (a < b)
        == ((a.generation, a.position) < (b.generation, b.position))
    )


@pytest.mark.parametrize(
    ("generation", "position"), [(-1, 0), (0, -1), (LIMIT, 0), (0, LIMIT)]
)
def test_offset_out_of_range_is_refused(generation, position):
    """An offset whose parts do not fit 16 decimal digits cannot be built."""
    with pytest.raises(ValueError, match="out of range"):
        Offset(generation, position)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "now",
        "1_2",
        "0000000000000001_000000000000000x",
        "00000000000000001_0000000000000000",
        "0000000000000001-0000000000000000",
        " 0000000000000001_0000000000000000",
        "0000000000000001_0000000000000000\n",
        "\u0661" * 16 + "_" + "0" * 16,
    ],
)
def test_offset_parse_refuses_malformed_text(text):
    """Anything but exactly two groups of 16 ASCII digits raises InvalidOffset."""
    with pytest.raises(InvalidOffset):
        Offset.parse(text)


def test_offset_parse_error_does_not_echo_long_input():
    """The error for a huge malformed offset quotes only its beginning."""
    with pytest.raises(InvalidOffset) as caught:
        Offset.parse("x" * 10_000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("offset", "expected"), [(ZERO, True), (Offset(1, 0), False), (Offset(0, 1), False)]
)
def test_offset_is_zero_only_for_generation_and_position_zero(offset, expected):
    """Only 0000…_0000… is the generation-free start offset."""
    assert offset.is_zero is expected


# parse_offset_param


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, START),
        ("-1", START),
        ("now", NOW),
        ("0000000000000002_0000000000000003", Offset(2, 3)),
    ],
)
def test_parse_offset_param_maps_sentinels_and_offsets(text, expected):
    """A missing value or -1 means the start, now the tail, anything else an offset."""
    assert parse_offset_param(text) == expected


def test_parse_offset_param_refuses_empty_value():
    """An empty offset parameter raises InvalidOffset."""
    with pytest.raises(InvalidOffset):
        parse_offset_param("")


# resolve


def test_resolve_zero_is_the_start_of_any_log():
    """ZERO resolves to position 0 whatever generations the chain holds."""
    assert resolve(FORK_CHAIN, ZERO) == 0


@pytest.mark.parametrize(
    "offset",
    [Offset(3, 0), Offset(3, 2), Offset(3, 5), Offset(7, 5), Offset(7, 9)],
)
def test_resolve_accepts_offsets_of_every_segment(offset):
    """An offset of a chain generation within its segment resolves to its position."""
    assert resolve(FORK_CHAIN, offset) == offset.position


@pytest.mark.parametrize("offset", [Offset(3, 6), Offset(7, 4), Offset(7, 10)])
def test_resolve_outside_the_segment_is_invalid(offset):
    """A known generation with a position outside its segment raises InvalidOffset."""
    with pytest.raises(InvalidOffset):
        resolve(FORK_CHAIN, offset)


def test_resolve_unknown_generation_is_gone():
    """An offset of a generation not in the chain raises OffsetGone with the chain's
    bounds.
    """
    with pytest.raises(OffsetGone) as caught:
        resolve(FORK_CHAIN, Offset(5, 1))
    assert (caught.value.earliest, caught.value.tail) == (Offset(3, 0), Offset(7, 9))
    assert caught.value.code == "offset_gone"


def test_resolve_past_a_lost_segment_is_gone():
    """After a restore, positions the old generation minted past the backup's
    tail are gone (410 with the chain's bounds), not invalid; positions
    within it still resolve, and before its low it is still invalid."""
    chain = [Segment(3, 0, 5, lost_after=True), Segment(9, 5, 7)]
    assert resolve(chain, Offset(3, 5)) == 5
    with pytest.raises(OffsetGone) as caught:
        resolve(chain, Offset(3, 6))
    assert (caught.value.earliest, caught.value.tail) == (Offset(3, 0), Offset(9, 7))
    with pytest.raises(InvalidOffset):
        resolve([Segment(3, 2, 5, lost_after=True)], Offset(3, 1))


# offset_at and earliest


@pytest.mark.parametrize(
    ("position", "expected"),
    [(0, Offset(3, 0)), (5, Offset(3, 5)), (6, Offset(7, 6)), (9, Offset(7, 9))],
)
def test_offset_at_names_the_owning_generation(position, expected):
    """Positions up to the fork point carry the source's generation, later ones the
    fork's.
    """
    assert offset_at(FORK_CHAIN, position) == expected


def test_offset_at_beyond_tail_is_invalid():
    """A position past the chain's tail raises InvalidOffset."""
    with pytest.raises(InvalidOffset):
        offset_at(FORK_CHAIN, 10)


def test_earliest_is_position_zero_of_the_first_generation():
    """A chain starts at position 0 of its oldest generation."""
    assert earliest(FORK_CHAIN) == Offset(3, 0)
