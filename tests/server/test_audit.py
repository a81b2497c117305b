"""The audit routes: the signing key, signed heads, exports that verify."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from tests.server.conftest import SECRET
from tests.server.harness import asgi_client
from threadline.auth import create_token
from threadline.protocol.actors import Actor
from threadline.protocol.audit_export import AuditHead, AuditReport, verify_export
from threadline.protocol.events import EventDraft
from threadline.server import Config, create_app
from threadline.server.audit import (
    KEY_SUFFIX,
    AuditSigner,
    audit_signer,
    export_lines,
    signed_head,
)
from threadline.server.sessions import SessionManager
from threadline.storage.memory import MemoryLogStore
from threadline.storage.sqlite import SQLiteLogStore

SID = "order-1"
SECRET_TEXT = "4111 1111 1111 1111"


def auth(sub: str, role: str) -> dict[str, str]:
    globs = [SID] if role == "customer" else ["**"]
    token = create_token(SECRET, sub=sub, role=role, sessions=globs)
    return {"authorization": f"Bearer {token}"}


CUSTOMER = auth("cust_42", "customer")
AI = auth("bot", "ai")
AGENT = auth("agent_7", "agent")
SUPERVISOR = auth("sup", "supervisor")
SERVICE = auth("svc", "service")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(store="memory://", auth=True, secret=SECRET))
    async with asgi_client(app) as client:
        yield client


async def publish(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> str:
    response = await client.post(
        f"/v1/sessions/{SID}/events", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    offset: str = response.json()["offset"]
    return offset


def message(event_id: str, text: str, role: str = "user") -> dict[str, Any]:
    parts = [{"type": "text", "text": text}]
    data = {"message_id": f"m-{event_id}", "role": role, "parts": parts}
    return {"type": "message", "id": event_id, "data": data}


async def conversation(client: httpx.AsyncClient) -> str:
    """A session with a customer message, a staff note, an answer; the staff
    offset of the customer's message."""
    created = await client.post("/v1/sessions", json={"id": SID}, headers=CUSTOMER)
    assert created.status_code == 201, created.text
    await publish(client, CUSTOMER, message("c1", f"my card is {SECRET_TEXT}"))
    await publish(client, AI, {"type": "note", "id": "n1", "data": {"text": "hm"}})
    await publish(client, AI, message("a1", "Let me check.", "assistant"))
    events = await client.get(f"/v1/sessions/{SID}/events", headers=SERVICE)
    target: str = events.json()[0]["offset"]
    return target


async def checker(client: httpx.AsyncClient) -> Callable[[AuditHead], bool]:
    """Checks heads with the key the server publishes."""
    jwks = (await client.get("/v1/audit/key")).json()
    [jwk] = jwks["keys"]
    public = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    key = Ed25519PublicKey.from_public_bytes(public)

    def check(head: AuditHead) -> bool:
        if head.key_id != jwk["kid"]:
            return False
        try:
            key.verify(head.signature_bytes, head.signing_input())
        except Exception:
            return False
        return True

    return check


async def export(
    client: httpx.AsyncClient, view: str = "staff", headers: dict[str, str] = SERVICE
) -> list[bytes]:
    response = await client.get(
        f"/v1/sessions/{SID}/audit?view={view}", headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    return response.content.splitlines(keepends=True)


async def verify(client: httpx.AsyncClient, lines: list[bytes]) -> AuditReport:
    return verify_export(lines, check_signature=await checker(client))


async def test_key_is_published_as_a_jwks(client: httpx.AsyncClient) -> None:
    """GET /v1/audit/key needs no token and answers the Ed25519 JWK with its kid."""
    response = await client.get("/v1/audit/key")
    assert response.status_code == 200
    [jwk] = response.json()["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")


async def test_head_is_the_views_tail_signed(client: httpx.AsyncClient) -> None:
    """The head names the view's last offset and hash, signed by the key."""
    await conversation(client)
    check = await checker(client)
    for view, headers in (("staff", SERVICE), ("customer", CUSTOMER)):
        events = (
            await client.get(f"/v1/sessions/{SID}/events", headers=headers)
        ).json()
        response = await client.get(
            f"/v1/sessions/{SID}/audit/head?view={view}", headers=SUPERVISOR
        )
        assert response.status_code == 200, response.text
        head = AuditHead.parse(response.json())
        assert (head.session, head.view, head.tenant) == (SID, view, "default")
        assert (str(head.offset), head.hash) == (
            events[-1]["offset"],
            events[-1]["hash"],
        )
        assert check(head)


@pytest.mark.parametrize("view", ["staff", "customer"])
async def test_export_verifies(client: httpx.AsyncClient, view: str) -> None:
    """An export of either view verifies: chain, digests, signed head."""
    await conversation(client)
    lines = await export(client, view, SUPERVISOR)
    report = await verify(client, lines)
    assert report.ok, report.broken
    assert report.events == (3 if view == "staff" else 2)
    assert report.signature_checked


async def test_one_byte_changed_in_an_export_is_detected(
    client: httpx.AsyncClient,
) -> None:
    """Changing one byte of an event's data is named at its line and offset."""
    target = await conversation(client)
    lines = await export(client)
    lines[1] = lines[1].replace(b"my card", b"my cart")
    report = await verify(client, lines)
    assert report.broken is not None
    assert (report.broken.line, report.broken.offset) == (2, target)


async def test_a_redaction_still_verifies(client: httpx.AsyncClient) -> None:
    """After a redaction, both views' exports verify and hold no redacted data."""
    target = await conversation(client)
    redaction = {"type": "redaction", "id": "r1", "data": {"offset": target}}
    await publish(client, SUPERVISOR, redaction)
    for view in ("staff", "customer"):
        lines = await export(client, view)
        assert SECRET_TEXT.encode() not in b"".join(lines)
        report = await verify(client, lines)
        assert report.ok, report.broken
        assert report.redacted == 1


async def test_a_wrong_signature_is_detected(client: httpx.AsyncClient) -> None:
    """An export checked with another key (or a forged head) breaks at line 1."""
    await conversation(client)
    lines = await export(client)
    other = AuditSigner.ephemeral()
    report = verify_export(lines, check_signature=other.verify)
    assert report.broken is not None and report.broken.line == 1
    anchor = orjson.loads(lines[0])
    anchor["anchor"]["head"]["ts"] = "2030-01-01T00:00:00.000000Z"
    forged = [orjson.dumps(anchor) + b"\n", *lines[1:]]
    report = await verify(client, forged)
    assert report.broken is not None and "signature" in report.broken.reason


async def test_partial_export_verifies_from_its_offset(
    client: httpx.AsyncClient,
) -> None:
    """?offset= exports the events after it, anchored to the hash there."""
    target = await conversation(client)
    response = await client.get(
        f"/v1/sessions/{SID}/audit?offset={target}", headers=SERVICE
    )
    lines = response.content.splitlines()
    assert orjson.loads(lines[0])["anchor"]["after"] == target
    report = await verify(client, lines)
    assert report.ok and report.events == 2


@pytest.mark.parametrize("headers", [CUSTOMER, AI, AGENT])
@pytest.mark.parametrize("route", ["audit", "audit/head"])
async def test_audit_is_forbidden_to_customers_ai_and_agents(
    client: httpx.AsyncClient, headers: dict[str, str], route: str
) -> None:
    """Only supervisor and service tokens read heads and exports: 403 forbidden."""
    await conversation(client)
    response = await client.get(f"/v1/sessions/{SID}/{route}", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("route", ["audit", "audit/head"])
async def test_audit_of_an_unknown_session_is_not_found(
    client: httpx.AsyncClient, route: str
) -> None:
    """An unknown session is 404 session_not_found."""
    response = await client.get(f"/v1/sessions/nope/{route}", headers=SERVICE)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("view=raw", 400, "invalid_view"),
        ("offset=now", 400, "invalid_offset"),
        ("offset=0000000000000001_0000000000000001", 410, "offset_gone"),
        ("offset=-1&offset=-1", 400, "invalid_offset"),
    ],
)
async def test_bad_export_requests_are_refused(
    client: httpx.AsyncClient, query: str, status: int, code: str
) -> None:
    """A bad view or offset is a clear 4xx before any line is sent."""
    await conversation(client)
    response = await client.get(f"/v1/sessions/{SID}/audit?{query}", headers=SERVICE)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_export_past_the_head_is_refused(client: httpx.AsyncClient) -> None:
    """An offset beyond the view's tail is 400 invalid_offset."""
    await conversation(client)
    head = (await client.get(f"/v1/sessions/{SID}/audit/head", headers=SERVICE)).json()
    generation = head["offset"].split("_")[0]
    beyond = f"{generation}_0000000000000009"
    response = await client.get(
        f"/v1/sessions/{SID}/audit?offset={beyond}", headers=SERVICE
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_offset"


# The store under the export


async def test_a_row_edited_in_the_database_is_detected(tmp_path: Path) -> None:
    """A record rewritten with sqlite3 behind the server's back is caught by
    verifying a fresh export: the line of that event, its hash."""
    path = str(tmp_path / "s.db")
    store = SQLiteLogStore(path)
    await store.start()
    sessions = SessionManager(store)
    await sessions.create("acme", SID, customer="cust")
    customer = Actor("cust", "customer")
    for index, text in enumerate(["hello", f"my card is {SECRET_TEXT}", "thanks"]):
        draft = EventDraft.parse(message(f"c{index}", text))
        await sessions.publish("acme", SID, customer, [draft])
    await store.stop()
    with sqlite3.connect(path) as db:
        changed = db.execute(
            "UPDATE records SET data = CAST(replace(CAST(data AS TEXT), 'my card', "
            "'my cart') AS BLOB) WHERE CAST(data AS TEXT) LIKE '%my card%'"
        ).rowcount
    assert changed == 2  # the event, in both views
    store = SQLiteLogStore(path)
    await store.start()
    try:
        sessions, signer = SessionManager(store), AuditSigner.ephemeral()
        for view in ("staff", "customer"):
            lines = [
                line
                async for line in await export_lines(
                    sessions, signer, "acme", SID, view
                )
            ]
            report = verify_export(
                b"".join(lines).splitlines(), check_signature=signer.verify
            )
            assert report.broken is not None
            assert report.broken.line == 3
            assert report.broken.reason.startswith("hash does not match")
    finally:
        await store.stop()


async def test_head_is_signed_with_the_time_it_is_signed(tmp_path: Path) -> None:
    """signed_head takes the signing time, and the head verifies with its key."""
    store = MemoryLogStore()
    await store.start()
    try:
        sessions, signer = SessionManager(store), AuditSigner.ephemeral()
        await sessions.create("acme", SID, customer="cust")
        head = await signed_head(sessions, signer, "acme", SID, "customer", now=0.0)
        assert head.ts == "1970-01-01T00:00:00.000000Z"
        assert head.offset.position == 0 and head.hash == "0" * 64
        assert signer.verify(head) and not AuditSigner.ephemeral().verify(head)
    finally:
        await store.stop()


# The key


def test_sqlite_key_is_created_beside_the_database_once(tmp_path: Path) -> None:
    """Without --audit-key, a SQLite store's key file is created 0600, then reused."""
    store = SQLiteLogStore(str(tmp_path / "t.db"))
    first = audit_signer(None, store)
    key_file = tmp_path / f"t.db{KEY_SUFFIX}"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert audit_signer(None, store).key_id == first.key_id


def test_memory_store_key_lives_with_the_process() -> None:
    """A memory store's key is new each time, and nothing is written."""
    store = MemoryLogStore()
    assert audit_signer(None, store).key_id != audit_signer(None, store).key_id


def test_audit_key_file_is_used(tmp_path: Path) -> None:
    """--audit-key names a PEM Ed25519 private key; the server signs with it."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.pem"
    path.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    signer = audit_signer(str(path), MemoryLogStore())
    assert signer.public_key == AuditSigner(key).public_key
    app = create_app(Config(store="memory://", secret=SECRET, audit_key=str(path)))
    assert app.audit_signer.key_id == signer.key_id


@pytest.mark.parametrize("content", [b"not a key", b""])
def test_a_bad_audit_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    """An unreadable or non-Ed25519 key file is a clear ValueError at start."""
    path = tmp_path / "audit.pem"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="audit key"):
        audit_signer(str(path), MemoryLogStore())
    with pytest.raises(ValueError, match="audit key"):
        audit_signer(str(tmp_path / "missing.pem"), MemoryLogStore())
