"""Event ids: UUIDv7 (RFC 9562), which sort by creation time.

A publisher sets each event's ``id``; a retry with the same id is stored once
(PRODUCT.md guarantee 3). Ids made by one process increase strictly: the 12
bits after the millisecond timestamp count within a millisecond (RFC 9562
§ 6.2, method 1), starting at a random value.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7"]

_lock = threading.Lock()
_last = [0, 0]  # the last (milliseconds, counter) handed out


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character string."""
    tail = int.from_bytes(os.urandom(8)) & (1 << 62) - 1
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last[0]:
            _last[:] = [ms, int.from_bytes(os.urandom(2)) & 0x7FF]
        elif _last[1] < 0xFFF:
            _last[1] += 1
        else:  # 4096 ids in one millisecond: borrow the next millisecond
            _last[:] = [_last[0] + 1, 0]
        ms, counter = _last
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail
    return str(uuid.UUID(int=value))
