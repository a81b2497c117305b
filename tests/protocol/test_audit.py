"""RFC 8785 canonical JSON and the audit chain hash."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, strategies as st

from threadline.protocol.audit import _encode, canonical_json, data_digest, event_hash

# String(x) in ECMAScript (Node 20), for each float below.
ECMASCRIPT_NUMBERS = [
    (1.5, "1.5"),
    (100.0, "100"),
    (1e21, "1e+21"),
    (1e-7, "1e-7"),
    (1.234e-5, "0.00001234"),
    (1.2345678901234568e20, "123456789012345680000"),
    (-0.0, "0"),
    (5e-324, "5e-324"),
    (0.1, "0.1"),
    (1e16, "10000000000000000"),
    (123456.789, "123456.789"),
    (-2.5e-8, "-2.5e-8"),
    (9007199254740993.0, "9007199254740992"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (1e-6, "0.000001"),
    (-1.5e-5, "-0.000015"),
]


@pytest.mark.parametrize(("value", "expected"), ECMASCRIPT_NUMBERS)
def test_canonical_json_writes_numbers_as_ecmascript(value, expected):
    """Floats serialize exactly as ECMAScript's Number#toString writes them."""
    assert canonical_json(value) == expected.encode()


def test_canonical_json_writes_integers_exactly():
    """Python integers serialize as their decimal digits."""
    assert canonical_json([0, -7, 2**60]) == b"[0,-7,1152921504606846976]"
    # Past 64 bits too (the fast encoder cannot take them; the exact one does).
    assert canonical_json({"n": 2**70}) == b'{"n":1180591620717411303424}'


def test_canonical_json_sorts_keys_by_utf16_code_units():
    """Object keys sort by UTF-16 code units, as RFC 8785 section 3.2.3 requires."""
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3, "B": 4}
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB01.
    assert canonical_json(value) == '{"B":4,"a":3,"😀":1,"ﬁ":2}'.encode()


def test_canonical_json_escapes_only_what_json_requires():
    """Quotes, backslashes and control characters are escaped; the rest is UTF-8."""
    text = 'é"\\\b\f\n\r\t\x01\x7f'
    assert canonical_json(text) == '"é\\"\\\\\\b\\f\\n\\r\\t\\u0001\x7f"'.encode()


def test_canonical_json_writes_literals_and_nesting():
    """null, booleans, arrays and tuples serialize without whitespace."""
    assert canonical_json({"a": [None, True, False, (1, "x")]}) == (
        b'{"a":[null,true,false,[1,"x"]]}'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_non_finite_numbers(value):
    """NaN and the infinities are not JSON."""
    with pytest.raises(ValueError, match="NaN or Infinity"):
        canonical_json(value)


def test_canonical_json_refuses_non_json_values():
    """A value JSON cannot hold is a TypeError."""
    with pytest.raises(TypeError, match="set"):
        canonical_json({"a": {1, 2}})


# Floats of 1e16 and more print as integers (ECMAScript pads digits with
# zeros), which a parser reads back as ints: the vectors above cover them.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_through_a_json_parser(value):
    """Canonical JSON parses back to the same value (floats within round-trip)."""
    assert json.loads(canonical_json(value)) == value


@given(json_values)
def test_canonical_json_ignores_key_insertion_order(value):
    """Two dicts with the same items serialize identically whatever their order."""
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert canonical_json(reordered) == canonical_json(value)


def test_data_digest_hashes_canonical_json():
    """data_sha256 is the SHA-256 of the data's canonical JSON, in hex."""
    data = {"b": 1.0, "a": "x"}
    assert data_digest(data) == hashlib.sha256(b'{"a":"x","b":1}').hexdigest()


def test_event_hash_links_every_field():
    """Changing any linked field changes the event hash."""
    fields: dict[str, Any] = {
        "prev_hash": "0" * 64,
        "offset": "0000000000000001_0000000000000001",
        "ts": "2026-11-26T06:10:27.123456Z",
        "type": "message",
        "actor": {"id": "cust_42", "role": "customer"},
        "visibility": "all",
        "id": "01J",
        "data_sha256": data_digest({"text": "hi"}),
    }
    base = event_hash(**fields)
    assert len(base) == 64
    for name in fields:
        changed = dict(fields)
        changed[name] = {"id": "other"} if name == "actor" else "x"
        assert event_hash(**changed) != base, name


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(plain_values)
def test_canonical_json_fast_path_matches_the_exact_encoder(value):
    """The C fast path writes the same bytes as the exact JCS encoder."""
    assert canonical_json(value) == _encode(value).encode()


def test_canonical_json_takes_the_exact_path_for_non_ascii_keys_and_floats():
    """Non-ASCII keys sort by UTF-16 and floats print as ECMAScript does."""
    assert canonical_json({"\ufb01": 1, "\U0001f600": 2.0}) == '{"😀":2,"ﬁ":1}'.encode()
    assert canonical_json([(1, None)]) == b"[[1,null]]"
