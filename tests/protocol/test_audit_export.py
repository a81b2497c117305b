"""Signed heads, key ids, export anchors, and verify_export's broken links."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from threadline.protocol.audit import data_digest, event_hash
from threadline.protocol.audit_export import (
    AuditHead,
    anchor_line,
    ed25519_jwk,
    key_id,
    verify_export,
)
from threadline.protocol.events import GENESIS_HASH
from threadline.protocol.offsets import Offset

GENERATION = 7
GOOD = "c2lnbmVk"  # the signature the fake checker accepts


def offset(position: int) -> Offset:
    return Offset(GENERATION, position)


def events(
    count: int, start: int = 0, prev: str = GENESIS_HASH, generation: int = GENERATION
) -> list[dict[str, Any]]:
    """A valid chain of ``count`` note events after ``start``."""
    chain = []
    for position in range(start + 1, start + count + 1):
        event: dict[str, Any] = {
            "v": 1,
            "offset": str(Offset(generation, position)),
            "ts": f"2026-11-26T06:10:{position:02d}.000000Z",
            "type": "note",
            "id": f"n{position}",
            "actor": {"id": "bot", "role": "ai"},
            "visibility": "staff",
            "data": {"text": f"note {position}"},
            "prev_hash": prev,
        }
        event["data_sha256"] = data_digest(event["data"])
        fields = {k: event[k] for k in ("offset", "ts", "type", "id", "actor")}
        event["hash"] = event_hash(
            prev_hash=prev,
            visibility="staff",
            data_sha256=event["data_sha256"],
            **fields,
        )
        prev = event["hash"]
        chain.append(event)
    return chain


def rehash(event: dict[str, Any]) -> None:
    """Recompute an edited event's digest and hash (a valid, different event)."""
    event["data_sha256"] = data_digest(event["data"])
    fields = {k: event[k] for k in ("prev_hash", "offset", "ts", "type", "id")}
    event["hash"] = event_hash(
        actor=event["actor"],
        visibility=event["visibility"],
        data_sha256=event["data_sha256"],
        **fields,
    )


def head_of(chain: list[dict[str, Any]], start: int = 0, **changes: Any) -> AuditHead:
    last = chain[-1] if chain else None
    fields: dict[str, Any] = {
        "tenant": "acme",
        "session": "s1",
        "view": "staff",
        "offset": Offset.parse(last["offset"]) if last else offset(start),
        "hash": last["hash"] if last else GENESIS_HASH,
        "ts": "2026-11-26T07:00:00.000000Z",
        "key_id": "k1",
        "signature": GOOD,
    }
    return AuditHead(**(fields | changes))


def export(
    chain: list[dict[str, Any]],
    *,
    start: int = 0,
    prev: str = GENESIS_HASH,
    head: AuditHead | None = None,
) -> list[bytes]:
    head = head or head_of(chain, start)
    lines = [anchor_line(head, offset(start), prev)]
    return lines + [json.dumps(event).encode() + b"\n" for event in chain]


def check(head: AuditHead) -> bool:
    return head.signature == GOOD


def broken(lines: list[bytes], **options: Any) -> tuple[int, str | None, str]:
    report = verify_export(lines, check_signature=check, **options)
    assert report.broken is not None, "the export verified"
    assert not report.ok
    return report.broken.line, report.broken.offset, report.broken.reason


def edit(lines: list[bytes], line: int, change: Callable[[dict[str, Any]], None]):
    obj = json.loads(lines[line - 1])
    change(obj)
    lines[line - 1] = json.dumps(obj).encode()


# Keys and heads


def test_key_id_is_the_rfc_7638_thumbprint():
    """The key id of RFC 8037's example Ed25519 key is its published thumbprint."""
    public = bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key_id(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    jwk = ed25519_jwk(public)
    assert jwk["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert (jwk["kty"], jwk["crv"], jwk["kid"]) == ("OKP", "Ed25519", key_id(public))


def test_head_signing_input_covers_every_field_but_the_signature():
    """The signature covers the canonical JSON of the head without it."""
    head = head_of(events(1))
    signed = json.loads(head.signing_input())
    assert signed == {k: v for k, v in head.to_json().items() if k != "signature"}
    assert head.with_signature(b"\x01\x02").signing_input() == head.signing_input()


def test_head_parses_back_from_its_json():
    """to_json and parse round-trip; the signature decodes from base64url."""
    head = head_of(events(2)).with_signature(b"\xfa" * 64)
    assert AuditHead.parse(head.to_json()) == head
    assert head.signature_bytes == b"\xfa" * 64


def test_a_signature_that_is_not_base64url_decodes_to_nothing():
    """A malformed signature is empty bytes, which no key verifies."""
    assert head_of([], signature="é").signature_bytes == b""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"view": "all"}, "head.view"),
        ({"offset": "7"}, "head.offset must be an offset"),
        ({"offset": 7}, "head.offset must be a string"),
        ({"signature": None}, "head.signature must be a string"),
    ],
)
def test_head_parse_refuses_a_malformed_head(change, message):
    """Each field is checked."""
    with pytest.raises(ValueError, match=message):
        AuditHead.parse(head_of(events(1)).to_json() | change)


def test_head_parse_refuses_what_is_not_an_object():
    """A head is a JSON object."""
    with pytest.raises(ValueError, match="head must be an object"):
        AuditHead.parse([])


# Exports that verify


def test_a_whole_export_verifies():
    """Anchor at the start, every event linked, ending at the signed head."""
    chain = events(3)
    report = verify_export(export(chain), check_signature=check)
    assert report.ok and report.broken is None
    assert (report.events, report.redacted, report.signature_checked) == (3, 0, True)
    assert report.head == head_of(chain)


def test_an_export_across_a_restore_verifies():
    """A log a restore continued goes on in a newer generation: positions
    follow each other and the chain links across the change."""
    chain = events(3)
    chain += events(2, start=3, prev=chain[-1]["hash"], generation=GENERATION + 2)
    report = verify_export(export(chain), check_signature=check)
    assert report.ok and report.events == 5


def test_an_event_of_an_older_generation_is_named():
    """Generations never go back within an export."""
    chain = events(2, generation=GENERATION + 2)
    chain += events(1, start=2, prev=chain[-1]["hash"])
    head = head_of(chain, offset=Offset(GENERATION + 2, 3))
    lines = export(chain, head=head)
    edit(lines, 1, lambda a: a["anchor"].update(after=str(Offset(GENERATION + 2, 0))))
    line, where, reason = broken(lines)
    assert (line, where) == (4, str(offset(3)))
    assert reason.startswith("expected offset")


def test_an_export_of_an_empty_view_verifies():
    """No events: the head is the start and the genesis hash."""
    report = verify_export(export([]), check_signature=check)
    assert report.ok and report.events == 0


def test_a_partial_export_verifies_from_its_anchor():
    """An export after an offset starts from the hash of the event there."""
    chain = events(5)
    lines = export(chain[2:], start=2, prev=chain[1]["hash"], head=head_of(chain))
    assert verify_export(lines, check_signature=check).ok


def test_without_a_checker_signatures_are_not_checked():
    """verify_export says when it did not check the head's signature."""
    report = verify_export(export(events(1), head=head_of(events(1), signature="x")))
    assert report.ok and not report.signature_checked


def test_blank_lines_are_skipped_and_text_lines_accepted():
    """Lines may be str, and empty lines (a trailing newline) are ignored."""
    lines = [line.decode() for line in export(events(2))]
    assert verify_export(["", *lines, "\n"], check_signature=check).ok


def test_a_redacted_event_verifies_by_its_digest():
    """Redacted data is not checked against data_sha256; its redaction names it."""
    chain = events(2)
    chain[0]["data"], chain[0]["redacted"] = {"text": ""}, True
    redaction = events(1, start=2, prev=chain[1]["hash"])[0]
    redaction["type"], redaction["data"] = "redaction", {"offset": chain[0]["offset"]}
    rehash(redaction)
    chain.append(redaction)
    report = verify_export(export(chain), check_signature=check)
    assert report.ok, report.broken
    assert (report.events, report.redacted) == (3, 1)


# Broken links


def test_a_broken_link_names_its_line_and_offset():
    """str() of a broken link is what the CLI prints."""
    report = verify_export(export(events(1))[:1], check_signature=check)
    assert report.broken is not None
    assert str(report.broken).startswith("line 2: the export ends at")
    link = type(report.broken)(3, "x", "why")
    assert str(link) == "line 3, offset x: why"


def test_a_redaction_naming_no_offset_names_nothing():
    """A redaction whose data.offset is not a string leaves redacted events unnamed."""
    chain = events(2)
    chain[0]["data"], chain[0]["redacted"] = {}, True
    chain[1]["type"], chain[1]["data"] = "redaction", {"offset": 1}
    rehash(chain[1])
    lines = export(chain)
    assert broken(lines)[:2] == (2, str(offset(1)))


def test_one_changed_byte_is_named_with_its_line():
    """Changing a note's text breaks the data digest of exactly that line."""
    lines = export(events(3))
    lines[2] = lines[2].replace(b"note 2", b"note X")
    assert broken(lines) == (3, str(offset(2)), "data does not match its data_sha256")


def test_a_changed_field_breaks_the_hash():
    """A field the hash covers (the actor) cannot change unnoticed."""
    lines = export(events(3))
    edit(lines, 3, lambda e: e["actor"].update(id="someone else"))
    line, where, reason = broken(lines)
    assert (line, where) == (3, str(offset(2)))
    assert reason.startswith("hash does not match")


def test_a_changed_digest_breaks_the_hash():
    """data_sha256 changed along with the data still breaks the hash."""
    lines = export(events(3))
    edit(lines, 2, lambda e: e.update(data={}, data_sha256=data_digest({})))
    assert broken(lines)[0] == 2


def test_a_missing_event_is_named():
    """Deleting a line leaves a gap in the offsets at the next one."""
    lines = export(events(3))
    del lines[2]
    line, where, reason = broken(lines)
    assert (line, where) == (3, str(offset(3)))
    assert f"expected offset {offset(2)}" in reason


def test_a_missing_first_event_is_named():
    """The first event after the anchor must be the anchor's next offset."""
    lines = export(events(3))
    del lines[1]
    assert broken(lines)[:2] == (2, str(offset(2)))


def test_a_relinked_event_is_named():
    """prev_hash must be the hash of the event before."""
    lines = export(events(3))
    edit(lines, 3, lambda e: e.update(prev_hash="f" * 64))
    assert "prev_hash" in broken(lines)[2]


def test_a_truncated_export_is_named_after_its_last_line():
    """An export that stops before the signed head says where it ends."""
    chain = events(3)
    lines = export(chain)[:-1]
    line, where, reason = broken(lines)
    assert (line, where) == (4, None)
    assert f"ends at {offset(2)}" in reason


def test_an_event_after_the_head_is_named():
    """Events past the signed head are not covered by it."""
    chain = events(3)
    lines = export(chain, head=head_of(chain[:2]))
    assert broken(lines) == (4, str(offset(3)), "an event after the signed head")


def test_a_head_with_another_hash_is_named():
    """The last event's hash must be the head's."""
    chain = events(2)
    lines = export(chain, head=head_of(chain, hash="e" * 64))
    assert broken(lines) == (
        3,
        str(offset(2)),
        "the hash differs from the signed head's",
    )


def test_a_wrong_signature_is_named_on_the_anchor():
    """A head whose signature does not verify breaks line 1."""
    lines = export(events(2), head=head_of(events(2), signature="forged"))
    assert broken(lines) == (
        1,
        None,
        "the head's signature does not verify with the key",
    )


def test_a_redacted_event_without_a_redaction_is_named():
    """Marking an event redacted hides its data only if a redaction names it."""
    lines = export(events(3))
    edit(lines, 3, lambda e: e.update(redacted=True, data={}))
    assert broken(lines) == (
        3,
        str(offset(2)),
        "marked redacted, but no redaction in the export names it",
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "line must be an object"),
        (b'{"offset": 7}', "missing ts"),
    ],
)
def test_a_malformed_event_line_is_named(line, reason):
    """Lines that are not events break where they are."""
    lines = export(events(2))
    lines[2] = line
    assert broken(lines)[0] == 3
    assert reason in broken(lines)[2]


def test_event_fields_of_the_wrong_type_are_named():
    """An actor, offset or data that cannot be hashed is named, not a crash."""
    for change in (
        lambda e: e.update(actor="bot"),
        lambda e: e.update(actor={"id": float("nan")}),
        lambda e: e.update(offset=7),
        lambda e: e.update(offset="seven"),
        lambda e: e.update(ts=float("nan")),
        lambda e: e.update(data=float("inf")),
    ):
        lines = export(events(2))
        edit(lines, 2, change)
        assert broken(lines)[0] == 2


@pytest.mark.parametrize(
    "anchor",
    [
        b"",
        b"{",
        b'{"anchor": 1}',
        b'{"anchor": {"head": {}}}',
    ],
)
def test_a_malformed_anchor_is_named(anchor):
    """The first line must be an anchor with a head."""
    lines = [anchor, *export(events(1))[1:]]
    line, where, reason = broken([x for x in lines if x])
    assert line == 1 and where is None


def test_an_anchor_naming_another_view_than_its_head_is_named():
    """The anchor's view and its head's must agree."""
    lines = export(events(1))
    edit(lines, 1, lambda a: a["anchor"].update(view="customer"))
    assert broken(lines)[2] == "the anchor and its head name different views"


def test_an_anchor_after_its_head_is_named():
    """An anchor past the head (or of another generation) is refused."""
    lines = export(events(1))
    edit(lines, 1, lambda a: a["anchor"].update(after=str(Offset(GENERATION, 9))))
    assert broken(lines)[2] == "the anchor starts after its head"


def test_an_empty_export_is_named():
    """No anchor at all."""
    report = verify_export([])
    assert report.broken is not None and report.broken.line == 1
    assert report.head is None


# Heads signed earlier


def test_an_export_agreeing_with_earlier_heads_verifies():
    """Heads saved earlier that the export covers match its hashes."""
    chain = events(4)
    earlier = [head_of(chain[:2]), head_of([], 0)]
    assert verify_export(export(chain), check_signature=check, heads=earlier).ok


def test_a_chain_rewritten_since_an_earlier_head_is_named():
    """A chain rebuilt from scratch after a head was saved fails at that offset."""
    chain = events(4)
    earlier = head_of(chain[:2], hash="d" * 64, ts="2026-11-25T00:00:00.000000Z")
    line, where, reason = broken(export(chain), heads=[earlier])
    assert (line, where) == (3, str(offset(2)))
    assert "rewritten" in reason and "2026-11-25" in reason


def test_an_earlier_head_at_the_anchor_is_checked():
    """A partial export's anchor must agree with a head signed at its start."""
    chain = events(4)
    lines = export(chain[2:], start=2, prev=chain[1]["hash"], head=head_of(chain))
    earlier = head_of(chain[:2], hash="d" * 64)
    assert broken(lines, heads=[earlier])[:2] == (1, None)


def test_an_earlier_head_must_be_signed_too():
    """Earlier heads are checked with the same key."""
    chain = events(2)
    earlier = head_of(chain[:1], signature="forged")
    assert "signature" in broken(export(chain), heads=[earlier])[2]


def test_earlier_heads_of_other_views_are_ignored():
    """A head of another view or generation says nothing about this export."""
    chain = events(2)
    other = [
        head_of(chain[:1], view="customer", hash="d" * 64),
        head_of([], 0, offset=Offset(GENERATION + 1, 1), hash="d" * 64),
    ]
    assert verify_export(export(chain), check_signature=check, heads=other).ok
