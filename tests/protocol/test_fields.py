from __future__ import annotations

import pytest

from threadline.exceptions import InvalidEvent, ProtocolError
from threadline.protocol._fields import (
    check_keys,
    expect_bool,
    expect_choice,
    expect_id,
    expect_int,
    expect_name,
    expect_object,
    expect_str,
    fail,
)


def test_fail_raises_invalid_event_naming_the_path():
    """fail() raises a 400 invalid_event whose field is the path."""
    with pytest.raises(InvalidEvent) as caught:
        fail("must be a string", "data.text")
    assert caught.value.field == "data.text"
    assert caught.value.code == "invalid_event"
    assert caught.value.status == 400
    assert str(caught.value) == "data.text: must be a string"


def test_invalid_event_is_a_protocol_error():
    """A malformed event is the peer's fault, so it is a ProtocolError."""
    assert issubclass(InvalidEvent, ProtocolError)


def test_check_keys_refuses_a_missing_required_key():
    """A required key that is absent is named in the error."""
    with pytest.raises(InvalidEvent, match=r"data\.run_id: is required"):
        check_keys({}, "data", ("run_id",))


def test_check_keys_refuses_an_unknown_key():
    """A key neither required nor optional is refused."""
    with pytest.raises(InvalidEvent, match=r"data\.extra: is not a known field"):
        check_keys({"run_id": "r", "extra": 1}, "data", ("run_id",), ("reason",))


def test_check_keys_accepts_required_and_optional_keys():
    """Required and optional keys pass."""
    check_keys({"run_id": "r", "reason": "x"}, "data", ("run_id",), ("reason",))


@pytest.mark.parametrize("value", [None, [], "x", 1])
def test_expect_object_refuses_non_objects(value):
    """Only a dict is a JSON object."""
    with pytest.raises(InvalidEvent, match="must be an object"):
        expect_object(value, "data")


def test_expect_str_accepts_the_empty_string():
    """Any string passes, the empty one included."""
    assert expect_str("", "text") == ""


def test_expect_str_refuses_a_number():
    """A number is not a string."""
    with pytest.raises(InvalidEvent, match="must be a string"):
        expect_str(1, "text")


@pytest.mark.parametrize("value", ["", "x" * 257])
def test_expect_name_refuses_empty_and_overlong_strings(value):
    """A name has 1 to 256 characters."""
    with pytest.raises(InvalidEvent, match="1 to 256"):
        expect_name(value, "name")


@pytest.mark.parametrize("value", ["01J9ZQ", "a.b:c-d_e", "x" * 128])
def test_expect_id_accepts_the_id_alphabet(value):
    """Ids use [A-Za-z0-9._:-], up to 128 characters."""
    assert expect_id(value, "id") == value


@pytest.mark.parametrize("value", ["", "a b", "é", "x" * 129, "a/b"])
def test_expect_id_refuses_other_strings(value):
    """Spaces, slashes, non-ASCII and overlong ids are refused."""
    with pytest.raises(InvalidEvent, match="must match"):
        expect_id(value, "id")


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_expect_int_refuses_non_integers(value):
    """Booleans and floats are not JSON integers here."""
    with pytest.raises(InvalidEvent, match="must be an integer"):
        expect_int(value, "seq")


@pytest.mark.parametrize("value", [-1, 2**53])
def test_expect_int_refuses_values_out_of_range(value):
    """Integers lie in 0..2**53-1, exact in every JSON implementation."""
    with pytest.raises(InvalidEvent, match="must be in"):
        expect_int(value, "seq")


def test_expect_int_accepts_the_range_limits():
    """0 and 2**53-1 are accepted."""
    assert expect_int(0, "seq") == 0
    assert expect_int(2**53 - 1, "seq") == 2**53 - 1


def test_expect_bool_refuses_an_integer():
    """1 is not true."""
    with pytest.raises(InvalidEvent, match="must be a boolean"):
        expect_bool(1, "is_error")


def test_expect_bool_accepts_false():
    """false is a boolean."""
    assert expect_bool(False, "is_error") is False


def test_expect_choice_lists_the_choices():
    """A value outside the choices is refused with the sorted choices."""
    with pytest.raises(InvalidEvent, match="must be one of a, b"):
        expect_choice("c", "mode", ("b", "a"))
