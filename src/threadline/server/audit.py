"""The audit surface: the signing key, signed heads, JSON Lines exports.

=========================================  ===================================
route                                      answer
=========================================  ===================================
``GET /v1/audit/key``                      the public key, a JWKS
                                           (``{"keys": [jwk]}``); no token
``GET /v1/sessions/{id}/audit/head``       the view's signed head
                                           (:class:`~threadline.protocol.audit_export.AuditHead`)
``GET /v1/sessions/{id}/audit``            the view's export: the anchor line,
                                           then one event per line
=========================================  ===================================

Both session routes take ``view=staff`` (default: every event, the audit
chain) or ``view=customer``; the export also takes ``offset`` (export the
events after it; default the start). They need a supervisor's or a service's
token that reaches the session (PRODUCT.md § Rights: audit export).

**The key.** ``Config.audit_key`` names a PEM file of an Ed25519 private key.
Without it, a SQLite store's key is the file ``PATH-audit-key.pem`` beside the
database, created (mode 0600) at the first start and reused after; any other
store gets a key that lives as long as the process (its heads verify only
against the key published while it runs). Keep the key with the database:
heads signed by a lost key can still be checked with its saved public key.

**Consistency.** A head is the view's tail and chain tip as committed in the
session's working state; an export reads the log up to exactly that head, so
its last event is the head's. A redacted event's line carries the digest kept
when it was blanked (:mod:`threadline.server.redaction`).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..auth import AuthError, Claims
from ..exceptions import InvalidOffset, ProtocolError, SessionNotFound, StorageError
from ..protocol.audit import data_digest
from ..protocol.audit_export import AUDIT_VIEWS, AuditHead, anchor_line, ed25519_jwk
from ..protocol.events import GENESIS_HASH, format_ts
from ..protocol.offsets import NOW, Offset, parse_offset_param
from ..storage.base import LogStore
from .access import reach_session
from .redaction import REDACTIONS
from .retention import record_export
from .session_writes import STATE, WorkingState
from .sessions import SessionManager

__all__ = [
    "AUDIT_ROLES",
    "AuditSigner",
    "audit_routes",
    "audit_signer",
    "export_lines",
    "signed_head",
]

AUDIT_ROLES: Final = frozenset({"supervisor", "service"})
"""Roles that may read a session's signed head and export it."""

KEY_SUFFIX: Final = "-audit-key.pem"
"""Beside a SQLite database ``PATH``: ``PATH-audit-key.pem``."""

JSONL: Final = "application/jsonl"

_PAGE_BYTES: Final = 1 << 20
_CATCH_UP_TRIES: Final = 5
_CATCH_UP_SECONDS: Final = 1.0

Authenticate = Callable[[Request], Awaitable[Claims]]


class AuditSigner:
    """Signs heads with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        """The raw 32 bytes of the public key."""
        self.jwk = ed25519_jwk(self.public_key)
        """The public key as a JWK, ``kid`` its thumbprint."""
        self.key_id: str = self.jwk["kid"]

    @classmethod
    def ephemeral(cls) -> AuditSigner:
        """A new key, kept in memory only."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path) -> AuditSigner:
        """The key in a PEM file.

        Raises:
            ValueError: the file cannot be read, or holds no Ed25519 private key.
        """
        try:
            key = load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read the audit key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"the audit key {path} is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: str | Path) -> AuditSigner:
        """The key in ``path``, created there (mode 0600) if the file is absent.

        Raises:
            ValueError: the file cannot be read or written.
        """
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(path)
        except OSError as exc:
            raise ValueError(f"cannot create the audit key {path}: {exc}") from exc
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        return cls(key)

    def sign(self, head: AuditHead) -> AuditHead:
        """``head`` (with this key's id) carrying its signature."""
        if head.key_id != self.key_id:
            raise ValueError("the head names another key")
        return head.with_signature(self._key.sign(head.signing_input()))

    def verify(self, head: AuditHead) -> bool:
        """Whether ``head`` carries this key's valid signature."""
        return verify_head(self.public_key, head)


def verify_head(public_key: bytes, head: AuditHead) -> bool:
    """Whether ``head`` is signed by the Ed25519 key ``public_key`` (raw bytes)."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    try:
        key.verify(head.signature_bytes, head.signing_input())
    except InvalidSignature:
        return False
    return True


def audit_signer(path: str | None, store: LogStore) -> AuditSigner:
    """The signer a server uses: ``path``, else beside a SQLite file, else ephemeral.

    Raises:
        ValueError: the key file cannot be read or created.
    """
    if path:
        return AuditSigner.load(path)
    from ..storage.sqlite import SQLiteLogStore

    if isinstance(store, SQLiteLogStore) and store.path != ":memory:":
        return AuditSigner.load_or_create(store.path + KEY_SUFFIX)
    return AuditSigner.ephemeral()


# Heads and exports


async def _working(
    sessions: SessionManager, tenant: str, session_id: str
) -> WorkingState:
    raw = await sessions.store.index.get(tenant, STATE, session_id)
    if raw is None:
        raise SessionNotFound(f"no session {session_id!r}")
    return WorkingState.from_json(raw)


async def signed_head(
    sessions: SessionManager,
    signer: AuditSigner,
    tenant: str,
    session_id: str,
    view: str,
    *,
    now: float | None = None,
) -> AuditHead:
    """The view's committed tail and chain tip, signed now.

    Raises:
        SessionNotFound: no such session.
    """
    working = await _working(sessions, tenant, session_id)
    staff = view == "staff"
    head = AuditHead(
        tenant,
        session_id,
        view,
        working.full_tail if staff else working.all_tail,
        working.tip if staff else working.all_tip,
        format_ts(time.time() if now is None else now),
        signer.key_id,
    )
    return signer.sign(head)


async def export_lines(
    sessions: SessionManager,
    signer: AuditSigner,
    tenant: str,
    session_id: str,
    view: str,
    after: Offset | None = None,
) -> AsyncIterator[bytes]:
    """The export of a view: its anchor line, then each event after ``after``.

    The head is signed and ``after`` checked when this is awaited, so an
    error comes before any line; the lines then stream page by page.

    Raises:
        SessionNotFound, OffsetGone (another generation), InvalidOffset
        (beyond the head); StorageError (the log lags behind its state).
    """
    head, start, prev_hash = await _anchor(
        sessions, signer, tenant, session_id, view, after
    )
    return _lines(sessions, tenant, session_id, head, start, prev_hash)


async def _anchor(
    sessions: SessionManager,
    signer: AuditSigner,
    tenant: str,
    session_id: str,
    view: str,
    after: Offset | None,
) -> tuple[AuditHead, Offset, str]:
    head = await signed_head(sessions, signer, tenant, session_id, view)
    staff = view == "staff"
    if after is not None and after.is_zero:
        after = None
    # A read checks the offset as every read does (OffsetGone, InvalidOffset);
    # the log's info maps offsets and positions (a restored log has several
    # generations).
    probe = await sessions.read(
        tenant, session_id, staff=staff, after=after, max_bytes=1
    )
    info = probe.info
    start = info.earliest if after is None else after
    position = info.position_of(start)
    if position > head.offset.position:
        raise InvalidOffset(f"offset {start} is beyond the head {head.offset}")
    prev_hash = GENESIS_HASH
    if position > 0:
        before = info.offset_at(position - 1)
        page = await sessions.read(
            tenant, session_id, staff=staff, after=before, max_bytes=1
        )
        prev_hash = orjson.loads(page.records[0].data)["hash"]
    return head, start, prev_hash


async def _lines(
    sessions: SessionManager,
    tenant: str,
    session_id: str,
    head: AuditHead,
    start: Offset,
    prev_hash: str,
) -> AsyncIterator[bytes]:
    yield anchor_line(head, start, prev_hash)
    staff = head.view == "staff"
    position, stalled = start, 0
    while position < head.offset:
        result = await sessions.read(
            tenant, session_id, staff=staff, after=position, max_bytes=_PAGE_BYTES
        )
        records = [r for r in result.records if r.offset <= head.offset]
        if not records:
            # The working state can be committed a moment before the log's
            # reader sees it (SQLite's cache): wait for the log to catch up.
            stalled += 1
            if stalled > _CATCH_UP_TRIES:
                raise StorageError(f"session {session_id}: the log lags its state")
            await sessions.wait(
                tenant,
                session_id,
                staff=staff,
                after=position,
                timeout=_CATCH_UP_SECONDS,
            )
            continue
        stalled = 0
        lines = []
        for record in records:
            digest = await _digest(sessions, tenant, session_id, head.view, record.data)
            lines.append(b'%s,"data_sha256":"%s"}\n' % (record.data[:-1], digest))
        yield b"".join(lines)
        position = records[-1].offset
    if staff:
        # The whole chain up to the head went out: retention may trim it.
        await record_export(sessions, tenant, session_id, start, head.offset)


async def _digest(
    sessions: SessionManager, tenant: str, session_id: str, view: str, raw: bytes
) -> bytes:
    """``data_sha256`` of a stored event: of its data, or as kept when redacted."""
    envelope = orjson.loads(raw)
    if not envelope.get("redacted"):
        return data_digest(envelope["data"]).encode()
    key = f"{session_id}\n{view}\n{envelope['offset']}"
    kept = await sessions.store.index.get(tenant, REDACTIONS, key)
    if kept is None:
        raise StorageError(f"redacted event {envelope['offset']} lost its digest")
    digest: str = orjson.loads(kept)["data_sha256"]
    return digest.encode()


# Routes


def _view(request: Request) -> str:
    view = request.query_params.get("view", "staff")
    if view not in AUDIT_VIEWS:
        raise ProtocolError(f"unknown audit view {view[:80]!r}", "invalid_view")
    return view


class _AuditAPI:
    def __init__(
        self,
        sessions: SessionManager,
        authenticate: Authenticate,
        signer: AuditSigner,
    ) -> None:
        self.sessions = sessions
        self.authenticate = authenticate
        self.signer = signer

    async def _auditor(self, request: Request, session_id: str) -> Claims:
        claims = await self.authenticate(request)
        if claims.role not in AUDIT_ROLES:
            raise AuthError(
                "audit export is for supervisor and service tokens", "forbidden", 403
            )
        await reach_session(self.sessions, claims, session_id)
        return claims

    async def key(self, request: Request) -> Response:
        body = orjson.dumps({"keys": [self.signer.jwk]})
        return Response(
            body,
            media_type="application/json",
            headers={"cache-control": "public, max-age=300"},
        )

    async def head(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims = await self._auditor(request, session_id)
        head = await signed_head(
            self.sessions, self.signer, claims.tenant, session_id, _view(request)
        )
        return Response(
            orjson.dumps(head.to_json()),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def export(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        claims = await self._auditor(request, session_id)
        values = request.query_params.getlist("offset")
        if len(values) > 1:
            raise InvalidOffset("offset given more than once")
        offset = parse_offset_param(values[0] if values else None)
        if offset == NOW:
            raise InvalidOffset("an export starts after an offset or at -1, not now")
        lines = await export_lines(
            self.sessions,
            self.signer,
            claims.tenant,
            session_id,
            _view(request),
            offset if isinstance(offset, Offset) else None,
        )
        name = f"{session_id}.audit.jsonl".replace('"', "")
        return StreamingResponse(
            lines,
            media_type=JSONL,
            headers={
                "cache-control": "no-store",
                "content-disposition": f'attachment; filename="{name}"',
            },
        )


def audit_routes(
    sessions: SessionManager, authenticate: Authenticate, signer: AuditSigner
) -> list[BaseRoute]:
    """The audit routes, for the session API's Starlette app."""
    api = _AuditAPI(sessions, authenticate, signer)
    return [
        Route("/v1/audit/key", api.key, methods=["GET"]),
        Route("/v1/sessions/{session_id}/audit/head", api.head, methods=["GET"]),
        Route("/v1/sessions/{session_id}/audit", api.export, methods=["GET"]),
    ]
