"""Offsets: opaque, fixed-width, lexicographically sortable positions in a log.

An offset is written ``GGGGGGGGGGGGGGGG_PPPPPPPPPPPPPPPP``: a 16-digit
*generation* and a 16-digit *position*, both decimal. The position counts
records from the start of the log; the offset of a record is the position
just after it, so "read from offset X" returns the records after X.

The generation identifies one incarnation of a log. A store gives every log it
creates a generation larger than any it gave before, never reused: a log that
is deleted and created again, or that a store lost, has a new generation, and
an offset from another generation is refused (``410 offset_gone``) instead of
silently meaning something else.

A fork shares its source's history: positions up to the fork point carry the
source's (smaller) generation, the fork's own records carry the fork's. Offsets
therefore still increase strictly and sort lexicographically along the chain.

Generation 0 is reserved: ``0000000000000000_0000000000000000`` is the start of
any log, like ``-1``. The sentinels ``-1`` (start) and ``now`` (tail) are
never minted as real offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from ..exceptions import InvalidOffset, OffsetGone

__all__ = [
    "NOW",
    "START",
    "ZERO",
    "Offset",
    "Segment",
    "earliest",
    "offset_at",
    "parse_offset_param",
    "resolve",
]

WIDTH: Final = 16
_LIMIT: Final = 10**WIDTH
_PATTERN: Final = re.compile(r"\A([0-9]{16})_([0-9]{16})\Z")

START: Final = "-1"
"""Query sentinel: the start of the log."""

NOW: Final = "now"
"""Query sentinel: the current tail of the log."""


@dataclass(frozen=True, slots=True, order=True)
class Offset:
    """A position in one generation of a log."""

    generation: int
    """The log incarnation that minted this offset; 0 means "start of any log"."""

    position: int
    """Records before this offset, counted from the start of the log."""

    _text: str | None = field(default=None, init=False, repr=False, compare=False)
    """The wire form, made once (offsets are written far more than made)."""

    def __post_init__(self) -> None:
        if not (0 <= self.generation < _LIMIT and 0 <= self.position < _LIMIT):
            raise ValueError(f"offset out of range: {self.generation}, {self.position}")

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = f"{self.generation:016d}_{self.position:016d}"
            object.__setattr__(self, "_text", text)
        return text

    @classmethod
    def parse(cls, text: str) -> Offset:
        """Parse the wire form.

        Raises:
            InvalidOffset: ``text`` is not exactly two 16-digit groups.
        """
        match = _PATTERN.match(text)
        if match is None:
            raise InvalidOffset(f"malformed offset: {text[:80]!r}")
        offset = cls(int(match[1]), int(match[2]))
        object.__setattr__(offset, "_text", text)
        return offset

    @property
    def is_zero(self) -> bool:
        """Whether this is the generation-free start offset."""
        return self.generation == 0 and self.position == 0


ZERO: Final = Offset(0, 0)
"""The start of any log."""


def parse_offset_param(text: str | None) -> Offset | str:
    """Parse an ``offset`` query value: an :class:`Offset`, ``START`` or ``NOW``.

    A missing value means ``START``.

    Raises:
        InvalidOffset: the value is empty or malformed.
    """
    if text is None or text == START:
        return START
    if text == NOW:
        return NOW
    return Offset.parse(text)


@dataclass(frozen=True, slots=True)
class Segment:
    """Positions ``(low, high]`` of a log chain owned by one generation.

    A plain log is one segment from 0 to its tail. A fork's chain is its
    source's chain cut at the fork point, plus its own segment. A log restored
    from a backup continues in a new generation after the backup's tail: the
    positions its old generation minted after that point were lost
    (``lost_after``), and their offsets are gone, not invalid.
    """

    generation: int
    low: int
    high: int
    lost_after: bool = False


def resolve(chain: list[Segment], offset: Offset) -> int:
    """The position an offset denotes in a log whose chain is ``chain``.

    Raises:
        InvalidOffset: the offset's generation is in the chain but the
            position lies outside its segment (e.g. beyond the tail).
        OffsetGone: the generation is not in the chain (a deleted and
            re-created log, another log, a lost store), or the offset lies
            past a segment whose later positions were lost (a restore).
    """
    if offset.is_zero:
        return 0
    for segment in chain:
        if segment.generation == offset.generation:
            if segment.low <= offset.position <= segment.high:
                return offset.position
            if segment.lost_after and offset.position > segment.high:
                break
            raise InvalidOffset(f"offset {offset} is outside this log")
    raise OffsetGone(earliest(chain), offset_at(chain, chain[-1].high))


def offset_at(chain: list[Segment], position: int) -> Offset:
    """The canonical offset of ``position``: minted by the segment that owns it."""
    for segment in chain:
        if position <= segment.high:
            return Offset(segment.generation, position)
    raise InvalidOffset(f"position {position} is beyond the tail")


def earliest(chain: list[Segment]) -> Offset:
    """The first offset of a chain (nothing is trimmed yet)."""
    return Offset(chain[0].generation, 0)
