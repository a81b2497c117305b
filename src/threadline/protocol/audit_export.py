"""Signed heads and audit exports of a session's hash chain, and their check.

The server signs a view's **head** (:class:`AuditHead`: the view's last
offset and chain hash, see :mod:`threadline.protocol.audit`) with an Ed25519
key, and exports a view as JSON Lines: first an **anchor** (the view, the
offset the export starts after, the ``prev_hash`` there, and the signed
head), then one stored envelope per line with its ``data_sha256``.
:func:`verify_export` checks such an export and names its first broken link.

Signing and checking signatures need a crypto library, so they are passed in
as callables: this module stays standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ..exceptions import InvalidOffset
from .audit import canonical_json, data_digest, event_hash
from .offsets import Offset

__all__ = [
    "AUDIT_VIEWS",
    "AuditHead",
    "AuditReport",
    "BrokenLink",
    "anchor_line",
    "ed25519_jwk",
    "key_id",
    "verify_export",
]

AUDIT_VIEWS: Final = ("staff", "customer")
"""The views a session's audit chain can be exported in (one chain each)."""


# Keys


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_id(public_key: bytes) -> str:
    """The id of an Ed25519 public key: its RFC 7638 JWK thumbprint (base64url).

    Args:
        public_key: The 32 raw bytes of the key.
    """
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(public_key)}
    return _b64url(hashlib.sha256(canonical_json(members)).digest())


def ed25519_jwk(public_key: bytes) -> dict[str, str]:
    """The public key as a JWK (RFC 8037), with its :func:`key_id` as ``kid``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(public_key),
        "kid": key_id(public_key),
        "alg": "EdDSA",
        "use": "sig",
    }


# Signed heads


@dataclass(frozen=True, slots=True)
class AuditHead:
    """A view's last offset and chain hash, signed by the server.

    The signature is Ed25519 over :meth:`signing_input`: the canonical JSON
    of every field but ``signature``. A head of an empty view has the view's
    start offset and :data:`~threadline.protocol.events.GENESIS_HASH`.
    """

    tenant: str
    session: str
    view: str
    """``staff`` (every event: the audit chain) or ``customer``."""
    offset: Offset
    hash: str
    ts: str
    """When the server signed it (RFC 3339 UTC, microseconds)."""
    key_id: str
    """The signing key's :func:`key_id`."""
    signature: str = ""
    """base64url (no padding) of the 64-byte Ed25519 signature."""

    def to_json(self) -> dict[str, str]:
        """The head as JSON (what ``GET /v1/sessions/{id}/audit/head`` answers)."""
        return {
            "tenant": self.tenant,
            "session": self.session,
            "view": self.view,
            "offset": str(self.offset),
            "hash": self.hash,
            "ts": self.ts,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    def signing_input(self) -> bytes:
        """The bytes the signature covers."""
        obj = self.to_json()
        del obj["signature"]
        return canonical_json(obj)

    @property
    def signature_bytes(self) -> bytes:
        """The signature, decoded (empty when it is not base64url)."""
        padded = self.signature + "=" * (-len(self.signature) % 4)
        try:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        except ValueError:  # binascii.Error, UnicodeEncodeError
            return b""

    def with_signature(self, signature: bytes) -> AuditHead:
        """A copy carrying ``signature``."""
        return AuditHead(
            self.tenant,
            self.session,
            self.view,
            self.offset,
            self.hash,
            self.ts,
            self.key_id,
            _b64url(signature),
        )

    @classmethod
    def parse(cls, value: object) -> AuditHead:
        """A head from its JSON.

        Raises:
            ValueError: not a head.
        """
        obj = _object(value, "head")
        names = ("tenant", "session", "view", "offset", "hash", "ts", "key_id")
        texts = [_text(obj, name, "head") for name in (*names, "signature")]
        if texts[2] not in AUDIT_VIEWS:
            raise ValueError(f"head.view must be one of {', '.join(AUDIT_VIEWS)}")
        offset = _offset(texts[3], "head.offset")
        return cls(texts[0], texts[1], texts[2], offset, *texts[4:])


# Exports


def anchor_line(head: AuditHead, after: Offset, prev_hash: str) -> bytes:
    """An export's first line: the view, where the export starts, the signed head.

    Args:
        head: The signed head the export ends at.
        after: The export holds the events after this offset.
        prev_hash: The hash of the event at ``after`` (the first exported
            event's ``prev_hash``); the genesis hash from the start.
    """
    anchor = {
        "v": 1,
        "tenant": head.tenant,
        "session": head.session,
        "view": head.view,
        "after": str(after),
        "prev_hash": prev_hash,
        "head": head.to_json(),
    }
    return json.dumps({"anchor": anchor}, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """Where an export stops verifying, and why."""

    line: int
    """1-based line of the export (the anchor is line 1)."""
    offset: str | None
    """The offset of the event on that line, if it has one."""
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", offset {self.offset}" if self.offset else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify_export` found."""

    broken: BrokenLink | None
    """The first broken link; ``None`` when the export verifies."""
    head: AuditHead | None = None
    events: int = 0
    """Events checked."""
    redacted: int = 0
    """Events checked by digest only: their data was redacted."""
    signature_checked: bool = False
    """The head's signature was checked (and, unless ``broken``, verified)."""

    @property
    def ok(self) -> bool:
        """The export verifies."""
        return self.broken is None


class _Broken(Exception):
    def __init__(self, line: int, offset: str | None, reason: str) -> None:
        self.link = BrokenLink(line, offset, reason)


_EVENT_FIELDS: Final = ("offset", "ts", "type", "id", "actor", "visibility", "data") + (
    "prev_hash",
    "hash",
    "data_sha256",
)


@dataclass(slots=True)
class _Walk:
    """The running state of a verification."""

    head: AuditHead
    generation: int
    position: int
    hash: str
    known: dict[Offset, AuditHead] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    """Redacted events' offsets, and their lines."""
    named: set[str] = field(default_factory=set)
    """Offsets that redaction events name."""
    events: int = 0
    line: int = 1


def verify_export(
    lines: Iterable[bytes | str],
    *,
    check_signature: Callable[[AuditHead], bool] | None = None,
    heads: Iterable[AuditHead] = (),
) -> AuditReport:
    """Check an audit export: its anchor, every link of its chain, its signed head.

    Each event's ``hash`` must be the chain hash of its fields and its
    ``prev_hash`` the hash of the event before (the anchor's ``prev_hash``
    for the first); offsets must follow each other; the data of an event not
    redacted must match its ``data_sha256``; a redacted event must be named
    by a ``redaction`` of the export; the last event must be the signed head.

    Args:
        lines: The export's lines (blank lines are skipped).
        check_signature: Verifies a head's signature (Ed25519 with the
            expected key); without it, signatures are not checked.
        heads: Heads signed earlier (e.g. saved from ``audit/head``): where
            the export covers their offset, it must have their hash there, so
            a chain rewritten since then is caught.

    Returns:
        The report; ``broken`` names the first broken link (lines in order,
        then what only the end can tell).
    """
    walk: _Walk | None = None
    try:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            if walk is None:
                walk = _anchor(raw, number, check_signature, heads)
            else:
                _event(walk, raw, number)
        if walk is None:
            raise _Broken(1, None, "the export is empty: no anchor")
        _end(walk)
    except _Broken as broken:
        head = None if walk is None else walk.head
        events = 0 if walk is None else walk.events
        return AuditReport(broken.link, head, events)
    return AuditReport(
        None, walk.head, walk.events, len(walk.redacted), check_signature is not None
    )


def _anchor(
    raw: bytes | str,
    number: int,
    check_signature: Callable[[AuditHead], bool] | None,
    heads: Iterable[AuditHead],
) -> _Walk:
    try:
        obj = _object(_loads(raw), "line")
        anchor = _object(obj.get("anchor"), "anchor")
        head = AuditHead.parse(anchor.get("head"))
        after = _offset(_text(anchor, "after", "anchor"), "anchor.after")
        prev_hash = _text(anchor, "prev_hash", "anchor")
        names = ("tenant", "session", "view")
        claimed = tuple(_text(anchor, name, "anchor") for name in names)
    except ValueError as exc:
        raise _Broken(number, None, f"not an export anchor: {exc}") from None
    if claimed != (head.tenant, head.session, head.view):
        raise _Broken(number, None, "the anchor and its head name different views")
    if after > head.offset:
        raise _Broken(number, None, "the anchor starts after its head")
    if check_signature is not None:
        for signed in (head, *heads):
            if not check_signature(signed):
                which = "the head's" if signed is head else f"head {signed.offset}'s"
                reason = f"{which} signature does not verify with the key"
                raise _Broken(number, None, reason)
    known = {h.offset: h for h in heads if (h.tenant, h.session, h.view) == claimed}
    earlier = known.get(after)
    if earlier is not None and earlier.hash != prev_hash:
        raise _Broken(number, None, _rewritten(earlier))
    return _Walk(head, after.generation, after.position, prev_hash, known)


def _event(walk: _Walk, raw: bytes | str, number: int) -> None:
    walk.line = number
    try:
        event = _object(_loads(raw), "line")
    except ValueError as exc:
        raise _Broken(number, None, str(exc)) from None
    text = event.get("offset")
    where = text if isinstance(text, str) else None
    missing = [name for name in _EVENT_FIELDS if name not in event]
    if missing:
        raise _Broken(number, where, f"missing {', '.join(missing)}")
    try:
        offset = _offset(text, "offset")
    except ValueError as exc:
        raise _Broken(number, where, str(exc)) from None
    # Positions follow each other; the generation may only grow (a log a
    # restore continued goes on in a newer generation).
    if offset.position != walk.position + 1 or offset.generation < walk.generation:
        expected = Offset(walk.generation, walk.position + 1)
        raise _Broken(number, where, f"expected offset {expected} (a missing event?)")
    if offset > walk.head.offset:
        raise _Broken(number, where, "an event after the signed head")
    if event["prev_hash"] != walk.hash:
        reason = f"prev_hash is not the hash of the event before ({walk.hash})"
        raise _Broken(number, where, reason)
    if not isinstance(event["actor"], dict):
        raise _Broken(number, where, "actor must be an object")
    try:
        linked = event_hash(
            prev_hash=event["prev_hash"],
            offset=event["offset"],
            ts=event["ts"],
            type=event["type"],
            actor=event["actor"],
            visibility=event["visibility"],
            id=event["id"],
            data_sha256=event["data_sha256"],
        )
    except (TypeError, ValueError) as exc:
        raise _Broken(number, where, f"cannot hash its fields: {exc}") from None
    if linked != event["hash"]:
        reason = "hash does not match the event's fields (changed after it was stored)"
        raise _Broken(number, where, reason)
    if event.get("redacted") is True:
        walk.redacted[str(offset)] = number
    else:
        try:
            digest = data_digest(event["data"])
        except (TypeError, ValueError) as exc:
            raise _Broken(number, where, f"cannot hash its data: {exc}") from None
        if digest != event["data_sha256"]:
            raise _Broken(number, where, "data does not match its data_sha256")
    data = event["data"]
    if event["type"] == "redaction" and isinstance(data, dict):
        named = data.get("offset")
        if isinstance(named, str):
            walk.named.add(named)
    earlier = walk.known.get(offset)
    if earlier is not None and earlier.hash != event["hash"]:
        raise _Broken(number, where, _rewritten(earlier))
    walk.generation, walk.position = offset.generation, offset.position
    walk.hash = event["hash"]
    walk.events += 1


def _end(walk: _Walk) -> None:
    head = walk.head
    last = Offset(walk.generation, walk.position)
    after_last = walk.line + 1
    if last != head.offset:
        reason = f"the export ends at {last}, before the signed head {head.offset}"
        raise _Broken(after_last, None, reason)
    if walk.hash != head.hash:
        raise _Broken(walk.line, str(last), "the hash differs from the signed head's")
    for offset, number in walk.redacted.items():
        if offset not in walk.named:
            reason = "marked redacted, but no redaction in the export names it"
            raise _Broken(number, offset, reason)


def _rewritten(earlier: AuditHead) -> str:
    return (
        f"the hash differs from the head signed at {earlier.ts}: "
        "the chain was rewritten since"
    )


def _loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def _text(obj: dict[str, Any], name: str, what: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{what}.{name} must be a string")
    return value


def _offset(value: object, what: str) -> Offset:
    try:
        if not isinstance(value, str):
            raise InvalidOffset("not a string")
        return Offset.parse(value)
    except InvalidOffset:
        raise ValueError(f"{what} must be an offset") from None
