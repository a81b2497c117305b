"""The audit chain: RFC 8785 canonical JSON and the hash of each stored event.

At append, the server stores for every event::

    hash = SHA-256(JCS({"prev_hash", "offset", "ts", "type", "actor",
                        "visibility", "id", "data_sha256"}))
    data_sha256 = SHA-256(JCS(data))

``data`` is hashed apart so that a ``redaction``, which blanks an earlier
event's data, keeps the chain verifiable: the store keeps the blanked event's
``data_sha256``, which still links it; only the data itself is gone. Each
chain starts from :data:`~threadline.protocol.events.GENESIS_HASH`. Signed
heads and exports: :mod:`threadline.protocol.audit_export`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import orjson  # a pure codec and a core dependency: no I/O

__all__ = ["canonical_json", "data_digest", "event_hash"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_ESCAPES |= {"\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _number(value: int | float) -> str:
    """ECMAScript ``Number.prototype.toString``, as RFC 8785 requires."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or Infinity")
    if value == 0:
        return "0"
    # repr gives the shortest digits that round-trip, as ECMAScript does; only
    # the notation differs.
    mantissa, _, exponent = repr(value).partition("e")
    if not exponent:
        return mantissa.removesuffix(".0")
    digits = mantissa.replace(".", "").lstrip("-").rstrip("0") or "0"
    sign = "-" if value < 0 else ""
    power = int(exponent)
    if -7 < power < 21:
        # repr used an exponent ECMAScript writes out in full.
        point = power + 1
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        return f"{sign}{digits[:point]}{'0' * (point - len(digits))}"
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{body}e{'+' if power > 0 else '-'}{abs(power)}"


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        # RFC 8785 sorts keys by their UTF-16 code units.
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{_string(k)}:{_encode(v)}" for k, v in items) + "}"
    raise TypeError(f"not JSON: {type(value).__name__}")


def _plain(value: Any) -> bool:
    """No floats and only ASCII keys: ``json.dumps`` then writes exactly JCS."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif (
            kind is not str
            and kind is not int
            and kind is not bool
            and item is not None
        ):
            return False  # floats need ECMAScript's number form
    return True


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) serialization of a JSON value, as UTF-8.

    Values without floats and with ASCII keys (nearly every event) take
    orjson, whose string escapes and, for ASCII keys, key order are JCS's; the
    rest take the exact encoder here.

    Raises:
        ValueError: NaN or an infinity.
        TypeError: a value JSON cannot hold.
    """
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # an integer past 64 bits
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
            ).encode()
    return _encode(value).encode()


def data_digest(data: Any) -> str:
    """``SHA-256(JCS(data))`` in lowercase hex."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def event_hash(
    *,
    prev_hash: str,
    offset: str,
    ts: str,
    type: str,
    actor: dict[str, Any],
    visibility: str,
    id: str,
    data_sha256: str,
) -> str:
    """The chain hash of one event (lowercase hex)."""
    linked = {
        "prev_hash": prev_hash,
        "offset": offset,
        "ts": ts,
        "type": type,
        "actor": actor,
        "visibility": visibility,
        "id": id,
        "data_sha256": data_sha256,
    }
    if all(k.isascii() and (isinstance(v, str) or v is None) for k, v in actor.items()):
        # Strings only, ASCII keys: JCS is orjson's sorted output.
        text = orjson.dumps(linked, option=orjson.OPT_SORT_KEYS)
    else:
        text = canonical_json(linked)
    return hashlib.sha256(text).hexdigest()
