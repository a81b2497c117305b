"""Durable Streams rules: header values, producer fencing, cursors, ETags.

Pure functions over plain values. The stores call :func:`check_append` inside
the transaction that writes the records, so the producer state and the data
commit together; the HTTP layer uses the parsers here to turn headers into
typed requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ..exceptions import (
    ContentTypeMismatch,
    LogClosed,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    ProtocolError,
    SeqConflict,
    TailMismatch,
)
from .offsets import Offset

__all__ = [
    "MAX_PRODUCER_INT",
    "AppendOutcome",
    "LogState",
    "ProducerClaim",
    "ProducerState",
    "check_append",
    "compute_cursor",
    "format_expires_at",
    "is_json",
    "make_etag",
    "media_type",
    "parse_expires_at",
    "parse_producer",
    "parse_sub_offset",
    "parse_ttl",
    "sse_encoding",
]

MAX_PRODUCER_INT: Final = 2**53 - 1
_DECIMAL: Final = re.compile(r"\A(?:0|[1-9][0-9]{0,15})\Z")
CURSOR_EPOCH: Final = 1728432000  # 2024-10-09T00:00:00Z
CURSOR_INTERVAL: Final = 20
_CURSOR: Final = re.compile(r"\A[0-9]{1,18}\Z")


# Content types


def media_type(content_type: str) -> str:
    """The lower-cased media type without parameters (``text/plain; x=1``)."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether a log of this content type is in JSON mode (message boundaries kept)."""
    return media_type(content_type) == "application/json"


def sse_encoding(content_type: str) -> str | None:
    """``"base64"`` when SSE must encode data events, else ``None`` (UTF-8 text)."""
    mt = media_type(content_type)
    if mt.startswith("text/") or mt == "application/json":
        return None
    return "base64"


# Header values


def _strict_int(value: str, name: str, maximum: int, code: str) -> int:
    if not _DECIMAL.match(value) or int(value) > maximum:
        raise ProtocolError(f"{name} must be a decimal integer in 0..{maximum}", code)
    return int(value)


def parse_ttl(value: str) -> int:
    """Parse ``Stream-TTL``: a strict non-negative decimal number of seconds.

    Raises:
        ProtocolError: signs, leading zeros, fractions or exponents.
    """
    return _strict_int(value.strip(), "Stream-TTL", 10**12, "invalid_expiry")


def parse_expires_at(value: str) -> float:
    """Parse ``Stream-Expires-At`` (RFC 3339 with ``Z`` or an offset) to epoch seconds.

    Raises:
        ProtocolError: not RFC 3339, or no time zone.
    """
    text = value.strip()
    if not re.match(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}", text):
        raise ProtocolError(
            "Stream-Expires-At must be an RFC 3339 timestamp", "invalid_expiry"
        )
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise ProtocolError(
            "Stream-Expires-At must be an RFC 3339 timestamp", "invalid_expiry"
        ) from exc
    if moment.tzinfo is None:
        raise ProtocolError("Stream-Expires-At needs a time zone", "invalid_expiry")
    try:
        seconds = moment.astimezone(UTC).timestamp()
        format_expires_at(seconds)  # what is stored must format back (year 1..9999)
    except (OverflowError, ValueError) as exc:
        raise ProtocolError(
            "Stream-Expires-At is out of range", "invalid_expiry"
        ) from exc
    return seconds


def format_expires_at(epoch_seconds: float) -> str:
    """Format an absolute expiry as RFC 3339 UTC, to the nearest millisecond."""
    # Integer milliseconds: far-future floats lack the precision to truncate.
    milliseconds = round(epoch_seconds * 1000)
    moment = datetime.fromtimestamp(milliseconds // 1000, UTC)
    moment += timedelta(milliseconds=milliseconds % 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_sub_offset(value: str) -> int:
    """Parse ``Stream-Fork-Sub-Offset``: a non-negative decimal count."""
    return _strict_int(
        value.strip(), "Stream-Fork-Sub-Offset", MAX_PRODUCER_INT, "invalid_fork"
    )


@dataclass(frozen=True, slots=True)
class ProducerClaim:
    """The ``Producer-Id`` / ``Producer-Epoch`` / ``Producer-Seq`` of one request."""

    producer_id: str
    epoch: int
    seq: int


def parse_producer(
    producer_id: str | None, epoch: str | None, seq: str | None
) -> ProducerClaim | None:
    """Parse the three producer headers; all three or none.

    Raises:
        ProtocolError: a partial set, an empty id or a non-integer value.
    """
    if producer_id is None and epoch is None and seq is None:
        return None
    if producer_id is None or epoch is None or seq is None:
        raise ProtocolError(
            "Producer-Id, Producer-Epoch and Producer-Seq go together",
            "producer_headers",
        )
    if not producer_id.strip():
        raise ProtocolError("Producer-Id must not be empty", "producer_headers")
    return ProducerClaim(
        producer_id,
        _strict_int(
            epoch.strip(), "Producer-Epoch", MAX_PRODUCER_INT, "producer_headers"
        ),
        _strict_int(seq.strip(), "Producer-Seq", MAX_PRODUCER_INT, "producer_headers"),
    )


# Append rules


@dataclass(slots=True)
class ProducerState:
    """What a store keeps per (log, producer): the epoch and last accepted seq."""

    epoch: int
    seq: int


@dataclass(slots=True)
class LogState:
    """The write-side state of one log that the append rules need."""

    generation: int
    content_type: str
    tail: Offset
    closed: bool = False
    stream_seq: str | None = None
    closed_by: ProducerClaim | None = None


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What :func:`check_append` decided."""

    duplicate: bool
    """True: nothing is written, the request repeats an accepted one."""

    producer_seq: int | None
    """The highest accepted producer seq to echo (``None`` without a producer)."""


def check_append(
    state: LogState,
    producer: ProducerState | None,
    *,
    content_type: str | None,
    has_data: bool,
    close: bool,
    claim: ProducerClaim | None,
    stream_seq: str | None,
    expected_tail: Offset | None = None,
) -> AppendOutcome:
    """Decide whether an append may proceed, in the protocol's order of checks.

    The order is: closed (with producer fencing first, and the retry of the
    closing request answered as a duplicate), content type, producer
    epoch/seq, ``Stream-Seq``, then ``expected_tail``.

    Args:
        state: The log's state before the append.
        producer: The stored state of ``claim.producer_id``, if any.
        content_type: The request's content type (``None`` when absent).
        has_data: Whether the request carries records.
        close: Whether the request closes the log.
        claim: The producer headers, if sent.
        stream_seq: The ``Stream-Seq`` header, if sent.
        expected_tail: Compare-and-set on the tail, if given.

    Raises:
        LogClosed, ContentTypeMismatch, ProducerEpochStale, ProducerEpochSeq,
        ProducerSeqGap, SeqConflict, TailMismatch.
    """
    if state.closed:
        if close and not has_data and claim is None:
            return AppendOutcome(True, None)  # closing again is idempotent
        if claim is not None:
            if state.closed_by == claim:
                return AppendOutcome(True, claim.seq)
            if producer is not None and claim.epoch < producer.epoch:
                raise ProducerEpochStale(producer.epoch)
        raise LogClosed(state.tail)
    if has_data and (
        content_type is None
        or media_type(content_type) != media_type(state.content_type)
    ):
        raise ContentTypeMismatch(
            f"log has content type {state.content_type!r}, request {content_type!r}"
        )
    producer_seq: int | None = None
    if claim is not None:
        if producer is None or claim.epoch > producer.epoch:
            if claim.seq != 0:
                if producer is None:
                    raise ProducerSeqGap(0, claim.seq)
                raise ProducerEpochSeq("a new producer epoch must start at seq 0")
        elif claim.epoch < producer.epoch:
            raise ProducerEpochStale(producer.epoch)
        elif claim.seq <= producer.seq:
            return AppendOutcome(True, producer.seq)
        elif claim.seq > producer.seq + 1:
            raise ProducerSeqGap(producer.seq + 1, claim.seq)
        producer_seq = claim.seq
    if stream_seq is not None and state.stream_seq is not None:
        if stream_seq.encode() <= state.stream_seq.encode():
            raise SeqConflict(
                f"Stream-Seq {stream_seq!r} does not follow {state.stream_seq!r}"
            )
    if expected_tail is not None and expected_tail != state.tail:
        raise TailMismatch(state.tail)
    return AppendOutcome(False, producer_seq)


# Caching


def compute_cursor(now: float, client_cursor: str | None, jitter_seconds: int) -> str:
    """The ``Stream-Cursor`` for a live response (protocol §8, CDN collapsing).

    Time is cut into 20 s intervals from 2024-10-09T00:00:00Z. A client echoing
    a cursor at or past the current interval gets a strictly larger one,
    pushed ahead by ``jitter_seconds`` (1–3600, chosen by the caller).
    """
    interval = int((now - CURSOR_EPOCH) // CURSOR_INTERVAL)
    # Not str.isdigit(): it accepts "²", and int() of 5000 digits raises.
    if client_cursor is not None and _CURSOR.match(client_cursor):
        previous = int(client_cursor)
        if previous >= interval:
            return str(previous + max(1, jitter_seconds // CURSOR_INTERVAL))
    return str(interval)


def make_etag(start: Offset | str, end: Offset, closed: bool) -> str:
    """A strong ETag for the bytes between two offsets; changes once closed."""
    return f'"{start}:{end}{":c" if closed else ""}"'
