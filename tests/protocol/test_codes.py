from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from threadline.protocol import codes
from threadline.protocol.codes import Close, CloseCode, ErrorCode, is_retryable

# is_retryable


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4099, 4900, 4949])
def test_is_retryable_in_retryable_ranges(code):
    """Codes 4000–4099 and 4900–4949 tell the client to reconnect."""
    assert is_retryable(code)


@pytest.mark.parametrize("code", [4400, 4401, 4403, 4408, 4409, 4413, 4499, 4950, 4999])
def test_is_retryable_not_in_terminal_ranges(code):
    """Codes 4400–4499 and 4950–4999 tell the client to stop."""
    assert not is_retryable(code)


@pytest.mark.parametrize("code", [1000, 1002, 1003, 1007, 1008, 1009, 1010])
def test_is_retryable_not_for_refusing_standard_codes(code):
    """A normal closure, and the standard codes that refuse our data, are terminal."""
    assert not is_retryable(code)


@pytest.mark.parametrize("code", [1001, 1005, 1006, 1011, 1012, 1013, 4100, 4500])
def test_is_retryable_for_other_codes(code):
    """Going away, abnormal closure, server errors and unknown codes are retried."""
    assert is_retryable(code)


# CloseCode


def test_close_code_retryable_follows_its_range():
    """Each member's retryable flag is the one its range gives."""
    assert {code for code in CloseCode if code.retryable} == {
        CloseCode.SLOW_CONSUMER,
        CloseCode.TOKEN_EXPIRED,
        CloseCode.SERVER_RESTARTING,
    }


def test_close_code_members_sit_in_documented_ranges():
    """Every member is 1000 or in a retryable or terminal range of Threadline."""
    for code in CloseCode:
        assert code == 1000 or code in codes.RETRYABLE or code in codes.TERMINAL


def test_close_code_constants_carry_meaning_and_number():
    """Each member has a bare WS_<number>_<NAME> constant (STYLE N7)."""
    for code in CloseCode:
        assert getattr(codes, f"WS_{code.value}_{code.name}") is code


def test_application_ranges_split_the_4900s():
    """Applications get 4900–4949 to retry and 4950–4999 to stop."""
    assert codes.APPLICATION_RETRYABLE == range(4900, 4950)
    assert codes.APPLICATION_TERMINAL == range(4950, 5000)


# ErrorCode


def test_error_codes_are_snake_case_strings():
    """Error codes compare equal to their wire strings."""
    code: str = ErrorCode.INVALID_MESSAGE
    assert code == "invalid_message"
    assert all(code.value == code.name.lower() for code in ErrorCode)


# Close


def test_close_defaults_to_an_empty_reason():
    """A close needs only a code."""
    assert Close(4000).reason == ""


@pytest.mark.parametrize("code", [999, 1001, 2999, 5000])
def test_close_refuses_codes_an_endpoint_cannot_send(code):
    """Only 1000 and 3000–4999 may be sent."""
    with pytest.raises(ValueError, match="cannot send"):
        Close(code)


def test_close_refuses_a_long_reason():
    """A reason over 123 bytes of UTF-8 does not fit in a close frame."""
    with pytest.raises(ValueError, match="123 bytes"):
        Close(4000, "é" * 62)


def test_close_truncated_cuts_to_123_bytes_without_splitting_a_character():
    """A truncated reason fits the close frame and is still valid UTF-8."""
    close = Close.truncated(4409, "é" * 100)
    assert close.reason == "é" * 61


def test_close_truncated_keeps_a_short_reason():
    """A reason that fits is kept whole."""
    assert Close.truncated(4409, "bad frame") == Close(4409, "bad frame")


def test_close_retryable_follows_its_code():
    """A close says whether the client should reconnect."""
    assert Close(4000).retryable
    assert not Close(4401).retryable


@given(st.text(max_size=200), st.sampled_from(list(CloseCode)))
def test_close_truncated_always_fits(reason, code):
    """Any reason, truncated, is a prefix of it that fits a close frame."""
    close = Close.truncated(code, reason)
    assert len(close.reason.encode()) <= 123
    assert reason.startswith(close.reason)
