from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import (
    ContentTypeMismatch,
    LogClosed,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    ProtocolError,
    SeqConflict,
    TailMismatch,
)
from threadline.protocol.offsets import START, Offset
from threadline.protocol.streams import (
    CURSOR_EPOCH,
    MAX_PRODUCER_INT,
    AppendOutcome,
    LogState,
    ProducerClaim,
    ProducerState,
    check_append,
    compute_cursor,
    format_expires_at,
    is_json,
    make_etag,
    media_type,
    parse_expires_at,
    parse_producer,
    parse_sub_offset,
    parse_ttl,
    sse_encoding,
)

TAIL = Offset(1, 4)


def state(**changes):
    """An open text/plain log at TAIL, with ``changes`` applied."""
    return LogState(
        **{"generation": 1, "content_type": "text/plain", "tail": TAIL, **changes}
    )


def append(state_, producer=None, **request):
    """check_append with a one-record text/plain request unless ``request`` says
    otherwise.
    """
    arguments = {
        "content_type": "text/plain",
        "has_data": True,
        "close": False,
        "claim": None,
        "stream_seq": None,
        **request,
    }
    return check_append(state_, producer, **arguments)


# Content types


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain", "text/plain"),
        ("Text/Plain; charset=utf-8", "text/plain"),
        ("  APPLICATION/JSON ;x=1", "application/json"),
        ("", ""),
    ],
)
def test_media_type_drops_parameters_and_case(content_type, expected):
    """The media type is the part before ';', stripped and lower-cased."""
    assert media_type(content_type) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/jsonl", False),
        ("text/json", False),
    ],
)
def test_is_json_only_for_application_json(content_type, expected):
    """Only the application/json media type puts a log in JSON mode."""
    assert is_json(content_type) is expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain", None),
        ("TEXT/markdown; charset=utf-8", None),
        ("application/json", None),
        ("application/octet-stream", "base64"),
        ("application/x-ndjson", "base64"),
    ],
)
def test_sse_encoding_is_base64_except_text_and_json(content_type, expected):
    """SSE sends text/* and JSON as UTF-8 and everything else as base64."""
    assert sse_encoding(content_type) == expected


# Header values


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0), ("60", 60), (" 3600 ", 3600)]
)
def test_parse_ttl_accepts_plain_decimals(value, expected):
    """Stream-TTL is a plain non-negative decimal number of seconds."""
    assert parse_ttl(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "abc", "-1", "+60", "00060", "60.5", "1e3", "0x10", "\u0663", str(10**12 + 1)],
)
def test_parse_ttl_refuses_anything_else(value):
    """Signs, leading zeros, fractions, exponents, non-ASCII digits and huge values
    raise ProtocolError.
    """
    with pytest.raises(ProtocolError):
        parse_ttl(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T00:00:00Z", 1704067200.0),
        ("2024-01-01t00:00:00z", 1704067200.0),
        ("2024-01-01T01:00:00+01:00", 1704067200.0),
        ("2024-01-01 00:00:00.250Z", 1704067200.25),
    ],
)
def test_parse_expires_at_reads_rfc3339(value, expected):
    """Stream-Expires-At accepts RFC 3339 with Z or an offset, as epoch seconds."""
    assert parse_expires_at(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", "RFC 3339"),
        ("2024-01-01", "RFC 3339"),
        ("2024-13-01T00:00:00Z", "RFC 3339"),
        ("2024-01-01T00:00:00ZZ", "RFC 3339"),
        ("2024-01-01T00:00:00", "time zone"),
        ("9999-12-31T23:59:59-23:59", "out of range"),
        ("0001-01-01T00:00:00+23:59", "out of range"),
        ("9999-12-31T23:59:59.9996Z", "out of range"),
    ],
)
def test_parse_expires_at_refuses_invalid_timestamps(value, message):
    """A timestamp that is not RFC 3339, has no zone or leaves the UTC calendar raises
    ProtocolError.
    """
    with pytest.raises(ProtocolError, match=message):
        parse_expires_at(value)


def test_format_expires_at_writes_utc_milliseconds():
    """An expiry formats as RFC 3339 UTC with milliseconds and Z."""
    assert format_expires_at(1704067200.25) == "2024-01-01T00:00:00.250Z"


@given(st.integers(-62135596800000, 253402300799999))
def test_format_expires_at_round_trips_through_parse(milliseconds):
    """Parsing a formatted expiry gives back the same millisecond."""
    seconds = milliseconds / 1000
    assert round(parse_expires_at(format_expires_at(seconds)) * 1000) == milliseconds


@pytest.mark.parametrize(("value", "expected"), [("0", 0), (" 12 ", 12)])
def test_parse_sub_offset_accepts_decimals(value, expected):
    """Stream-Fork-Sub-Offset is a non-negative decimal count."""
    assert parse_sub_offset(value) == expected


@pytest.mark.parametrize("value", ["-1", "01", "1.5", str(MAX_PRODUCER_INT + 1)])
def test_parse_sub_offset_refuses_anything_else(value):
    """A sub-offset not a plain decimal within 2**53 - 1 raises ProtocolError."""
    with pytest.raises(ProtocolError):
        parse_sub_offset(value)


def test_parse_producer_without_headers_is_none():
    """A request without producer headers has no producer claim."""
    assert parse_producer(None, None, None) is None


def test_parse_producer_reads_all_three_headers():
    """The three headers make one claim; epoch and seq may carry spaces and reach 2**53
    - 1.
    """
    claim = parse_producer("writer-1", " 2 ", str(MAX_PRODUCER_INT))
    assert claim == ProducerClaim("writer-1", 2, MAX_PRODUCER_INT)


@pytest.mark.parametrize(
    "headers",
    [("p", None, None), (None, "0", "0"), ("p", "0", None), ("p", None, "0")],
)
def test_parse_producer_refuses_a_partial_set(headers):
    """Producer headers come all three or none, else ProtocolError code
    producer_headers.
    """
    with pytest.raises(ProtocolError) as caught:
        parse_producer(*headers)
    assert caught.value.code == "producer_headers"


def test_parse_producer_refuses_a_blank_id():
    """A Producer-Id of only spaces raises ProtocolError code producer_headers."""
    with pytest.raises(ProtocolError) as caught:
        parse_producer("  ", "0", "0")
    assert caught.value.code == "producer_headers"


@pytest.mark.parametrize(
    ("epoch", "seq"),
    [("x", "0"), ("0", "-1"), ("01", "0"), ("0", str(MAX_PRODUCER_INT + 1))],
)
def test_parse_producer_refuses_bad_numbers(epoch, seq):
    """An epoch or seq that is not a plain decimal within 2**53 - 1 raises
    ProtocolError.
    """
    with pytest.raises(ProtocolError) as caught:
        parse_producer("p", epoch, seq)
    assert caught.value.code == "producer_headers"


# check_append: plain appends


def test_check_append_accepts_a_plain_append():
    """An append without producer, Stream-Seq or expected tail proceeds with no seq to
    echo.
    """
    assert append(state()) == AppendOutcome(False, None)


def test_check_append_compares_media_types():
    """An append's content type matches the log's by media type, ignoring case and
    parameters.
    """
    assert not append(state(), content_type="TEXT/Plain; charset=utf-8").duplicate


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_check_append_refuses_another_content_type(content_type):
    """Records with another, or no, content type raise ContentTypeMismatch."""
    with pytest.raises(ContentTypeMismatch):
        append(state(), content_type=content_type)


def test_check_append_without_records_ignores_content_type():
    """A request without records (a close) needs no matching content type."""
    assert append(
        state(), content_type=None, has_data=False, close=True
    ) == AppendOutcome(False, None)


# check_append: producers (epoch, seq)


def test_check_append_new_producer_starts_at_seq_zero():
    """A producer's first request at seq 0 proceeds and echoes seq 0."""
    assert append(state(), claim=ProducerClaim("p", 0, 0)) == AppendOutcome(False, 0)


def test_check_append_new_producer_at_later_seq_is_a_gap():
    """A producer's first request above seq 0 raises ProducerSeqGap expecting 0."""
    with pytest.raises(ProducerSeqGap) as caught:
        append(state(), claim=ProducerClaim("p", 3, 2))
    assert (caught.value.expected, caught.value.received) == (0, 2)


def test_check_append_next_seq_proceeds():
    """The seq right after the stored one proceeds and is echoed."""
    outcome = append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 2, 5))
    assert outcome == AppendOutcome(False, 5)


@pytest.mark.parametrize("seq", [0, 3, 4])
def test_check_append_repeated_seq_is_a_duplicate_echoing_the_highest(seq):
    """A seq at or below the stored one is a duplicate that echoes the highest accepted
    seq.
    """
    outcome = append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 2, seq))
    assert outcome == AppendOutcome(True, 4)


def test_check_append_skipped_seq_is_a_gap():
    """A seq beyond the next one raises ProducerSeqGap naming expected and received
    seqs.
    """
    with pytest.raises(ProducerSeqGap) as caught:
        append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 2, 7))
    assert (caught.value.expected, caught.value.received) == (5, 7)


def test_check_append_older_epoch_is_fenced():
    """An epoch below the stored one raises ProducerEpochStale naming the current."""
    with pytest.raises(ProducerEpochStale) as caught:
        append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 1, 5))
    assert caught.value.current_epoch == 2


def test_check_append_new_epoch_at_seq_zero_proceeds():
    """A higher epoch starting at seq 0 proceeds and echoes seq 0."""
    outcome = append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 3, 0))
    assert outcome == AppendOutcome(False, 0)


def test_check_append_new_epoch_not_at_seq_zero_is_refused():
    """A higher epoch that does not start at seq 0 raises ProducerEpochSeq."""
    with pytest.raises(ProducerEpochSeq):
        append(state(), ProducerState(2, 4), claim=ProducerClaim("p", 3, 5))


producer_ints = st.integers(0, 6)


@given(producer_ints, producer_ints, producer_ints, producer_ints)
def test_check_append_follows_the_producer_table(epoch, seq, claim_epoch, claim_seq):
    """For any stored (epoch, seq) and claim, the outcome is the table's entry."""
    claim = ProducerClaim("p", claim_epoch, claim_seq)
    if claim_epoch < epoch:
        expected: object = ProducerEpochStale
    elif claim_epoch > epoch:
        expected = AppendOutcome(False, 0) if claim_seq == 0 else ProducerEpochSeq
    elif claim_seq <= seq:
        expected = AppendOutcome(True, seq)
    elif claim_seq == seq + 1:
        expected = AppendOutcome(False, claim_seq)
    else:
        expected = ProducerSeqGap
    try:
        outcome: object = append(state(), ProducerState(epoch, seq), claim=claim)
    except (ProducerEpochStale, ProducerEpochSeq, ProducerSeqGap) as exc:
        outcome = type(exc)
    assert outcome == expected


def test_check_append_duplicate_skips_later_checks():
    """A producer duplicate is answered before Stream-Seq and expected_tail count."""
    outcome = append(
        state(stream_seq="z"),
        ProducerState(0, 1),
        claim=ProducerClaim("p", 0, 1),
        stream_seq="a",
        expected_tail=Offset(1, 0),
    )
    assert outcome == AppendOutcome(True, 1)


def test_check_append_content_type_is_checked_before_the_producer():
    """A wrong content type raises ContentTypeMismatch even from a fenced producer."""
    with pytest.raises(ContentTypeMismatch):
        append(
            state(),
            ProducerState(5, 0),
            claim=ProducerClaim("p", 0, 0),
            content_type="x/y",
        )


# check_append: closed logs


def test_check_append_to_a_closed_log_is_refused():
    """Records for a closed log raise LogClosed carrying the final tail."""
    with pytest.raises(LogClosed) as caught:
        append(state(closed=True))
    assert caught.value.tail == TAIL


def test_check_append_closing_a_closed_log_again_is_a_duplicate():
    """A close without records or producer on a closed log is a duplicate."""
    outcome = append(state(closed=True), has_data=False, close=True)
    assert outcome == AppendOutcome(True, None)


def test_check_append_close_with_records_on_a_closed_log_is_refused():
    """A close that carries records on a closed log raises LogClosed."""
    with pytest.raises(LogClosed):
        append(state(closed=True), close=True)


def test_check_append_retry_of_the_closing_request_is_a_duplicate():
    """The producer request that closed the log, repeated, is a duplicate echoing its
    seq.
    """
    claim = ProducerClaim("p", 1, 3)
    outcome = append(
        state(closed=True, closed_by=claim),
        ProducerState(1, 3),
        claim=claim,
        close=True,
    )
    assert outcome == AppendOutcome(True, 3)


def test_check_append_fenced_producer_on_a_closed_log_is_stale():
    """On a closed log a producer with an older epoch gets ProducerEpochStale, not
    LogClosed.
    """
    closer = ProducerClaim("p", 2, 0)
    with pytest.raises(ProducerEpochStale):
        append(
            state(closed=True, closed_by=closer),
            ProducerState(2, 0),
            claim=ProducerClaim("p", 1, 1),
        )


@pytest.mark.parametrize(
    ("stored", "claim"),
    [
        (ProducerState(2, 0), ProducerClaim("p", 2, 1)),
        (ProducerState(2, 0), ProducerClaim("p", 3, 0)),
        (None, ProducerClaim("q", 0, 0)),
    ],
)
def test_check_append_other_producer_on_a_closed_log_is_refused(stored, claim):
    """On a closed log any producer request except the closing one raises LogClosed."""
    closer = ProducerClaim("p", 2, 0)
    with pytest.raises(LogClosed):
        append(state(closed=True, closed_by=closer), stored, claim=claim)


# check_append: Stream-Seq and expected_tail


def test_check_append_first_stream_seq_proceeds():
    """Any Stream-Seq is accepted while the log has none."""
    assert not append(state(), stream_seq="anything").duplicate


@pytest.mark.parametrize("seq", ["b", "a", "10"])
def test_check_append_stream_seq_must_increase(seq):
    """A Stream-Seq equal to or sorting before the stored one raises SeqConflict."""
    with pytest.raises(SeqConflict):
        append(state(stream_seq="b"), stream_seq=seq)


def test_check_append_stream_seq_compares_bytes_not_numbers():
    """Stream-Seq "10" sorts before "9", so it does not follow it."""
    with pytest.raises(SeqConflict):
        append(state(stream_seq="9"), stream_seq="10")


def test_check_append_stream_seq_compares_utf8_bytes():
    """Stream-Seq "é" (0xC3 0xA9) sorts after "z" (0x7A), so it follows it."""
    assert not append(state(stream_seq="z"), stream_seq="é").duplicate


def test_check_append_unexpected_tail_is_refused():
    """An expected_tail other than the tail raises TailMismatch carrying the tail."""
    with pytest.raises(TailMismatch) as caught:
        append(state(), expected_tail=Offset(1, 3))
    assert caught.value.tail == TAIL


def test_check_append_expected_tail_match_proceeds():
    """An expected_tail equal to the tail lets the append proceed."""
    assert append(state(), expected_tail=TAIL) == AppendOutcome(False, None)


# Caching


def test_compute_cursor_counts_twenty_second_intervals():
    """Without a client cursor, the cursor is the 20 s interval number since the cursor
    epoch.
    """
    assert compute_cursor(CURSOR_EPOCH + 45, None, 60) == "2"


@pytest.mark.parametrize(("jitter", "expected"), [(60, "5"), (10, "3")])
def test_compute_cursor_moves_past_an_echoed_current_cursor(jitter, expected):
    """A client cursor at or past the current interval gets a larger one, by at least
    one.
    """
    assert compute_cursor(CURSOR_EPOCH + 45, "2", jitter) == expected


def test_compute_cursor_ignores_an_older_client_cursor():
    """A client cursor behind the current interval gets the current interval."""
    assert compute_cursor(CURSOR_EPOCH + 45, "1", 60) == "2"


@pytest.mark.parametrize("cursor", ["", "abc", "-3", "²", "\u0663", "9" * 5000])
def test_compute_cursor_ignores_a_malformed_client_cursor(cursor):
    """A client cursor other than a short ASCII decimal is ignored, not an error."""
    assert compute_cursor(CURSOR_EPOCH + 45, cursor, 60) == "2"


def test_make_etag_covers_the_range():
    """The ETag is strong and names both ends of the range."""
    assert (
        make_etag(START, Offset(1, 2), False)
        == '"-1:0000000000000001_0000000000000002"'
    )


def test_make_etag_changes_when_closed():
    """Closing a log changes the ETag of the same range."""
    assert make_etag(Offset(1, 0), TAIL, True) == f'"{Offset(1, 0)}:{TAIL}:c"'
