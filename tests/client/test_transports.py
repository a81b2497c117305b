"""The seam: the server's error answers become the server's exception classes."""

from __future__ import annotations

import pytest

from threadline.client.transports import error_from, event_from
from threadline.exceptions import (
    AlreadyEnded,
    AuthError,
    DeltaGap,
    DuplicateReference,
    Forbidden,
    IdConflict,
    InvalidEvent,
    NotInControl,
    OffsetGone,
    ProtocolError,
    RateLimited,
    SessionNotFound,
    TailMismatch,
    ThreadlineError,
    UnknownReference,
)
from threadline.protocol.offsets import Offset

OFFSET = "0000000000000001_0000000000000005"


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("token_expired", 401, AuthError),
        ("forbidden", 403, Forbidden),
        ("session_not_found", 404, SessionNotFound),
        ("id_conflict", 409, IdConflict),
        ("not_in_control", 409, NotInControl),
        ("unknown_message", 409, UnknownReference),
        ("duplicate_run", 409, DuplicateReference),
        ("message_ended", 409, AlreadyEnded),
        ("invalid_event", 400, InvalidEvent),
        ("something_new", 400, ProtocolError),
    ],
)
def test_error_from_rebuilds_the_servers_class(code, status, cls):
    """An error answer becomes the class the server raised, with its code and text."""
    error = error_from(code, "what went wrong", status=status)
    assert type(error) is cls
    assert (error.code, str(error)) == (code, "what went wrong")


def test_error_from_keeps_the_expected_delta_seq():
    """A delta_gap carries the seq to send next."""
    error = error_from("delta_gap", "gap", details={"expected": 4})
    assert isinstance(error, DeltaGap) and error.expected == 4


def test_error_from_keeps_the_tail_of_a_tail_mismatch():
    """A tail_mismatch carries the session's tail."""
    error = error_from("tail_mismatch", "tail", details={"offset": OFFSET})
    assert isinstance(error, TailMismatch) and error.tail == Offset.parse(OFFSET)


def test_error_from_keeps_the_bounds_of_an_offset_gone():
    """An offset_gone carries the earliest and tail offsets."""
    error = error_from(
        "offset_gone", "gone", details={"earliest": OFFSET, "tail": OFFSET}
    )
    assert isinstance(error, OffsetGone) and error.earliest == Offset.parse(OFFSET)


def test_error_from_keeps_retry_after_of_a_rate_limit():
    """A rate_limited answer carries the seconds to wait."""
    error = error_from("rate_limited", "slow down", details={"retry_after": 2})
    assert isinstance(error, RateLimited) and error.retry_after == 2.0


def test_error_from_a_server_failure_is_a_threadline_error():
    """An unknown 5xx answer is the root class, with the server's code."""
    error = error_from("boom", "internal", status=500)
    assert type(error) is ThreadlineError and error.code == "boom"


def test_event_from_refuses_a_malformed_envelope():
    """An envelope without its fields is a ProtocolError, not a KeyError."""
    with pytest.raises(ProtocolError):
        event_from({"offset": OFFSET})


def test_event_from_keeps_the_redacted_mark():
    """A redacted envelope arrives marked, its blanked data unchecked."""
    envelope = {
        "v": 1,
        "offset": OFFSET,
        "ts": "2026-11-26T06:10:27.123456Z",
        "type": "note",
        "id": "n1",
        "actor": {"id": "bot", "role": "ai"},
        "visibility": "staff",
        "data": {"text": ""},
        "redacted": True,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    assert event_from(envelope).redacted
    assert not event_from({**envelope, "redacted": False}).redacted
