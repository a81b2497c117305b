"""UUIDv7 event ids."""

from __future__ import annotations

import uuid

from threadline.client.ids import uuid7


def test_uuid7_is_a_version_7_rfc_uuid():
    """An id parses as a UUID of version 7 and the RFC 9562 variant."""
    value = uuid.UUID(uuid7())
    assert (value.version, value.variant) == (7, uuid.RFC_4122)


def test_uuid7_increases_strictly_within_one_process():
    """Ids made in a row sort in the order they were made, with no repeats."""
    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(set(ids))
