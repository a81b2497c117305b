"""Background delivery: webhooks for members who were not there.

What is published while nobody is connected is in the log, so whoever
reconnects gets it. With ``--notify-url``, the server also tells the app, so
it can reach the member another way (push, e-mail): one notification per
member per burst of completed messages, for members with no device present.

* **Durable outbox.** Each completed message adds to an ``outbox`` index
  entry per other member who may see it (``{session}\\n{participant}``),
  written in the message's commit. Messages within the coalescing window (30
  s from the first) share one notification.
* **At least once.** A worker sends due entries and deletes an entry only
  after a ``2xx``; a failure moves the entry's due time out with exponential
  backoff, in the store, so retries survive a restart. A receiver deduplicates
  by ``webhook-id``.
* **Presence.** A member with a device present when the entry falls due saw
  the messages live: the entry is dropped unsent.
* **Signed** per the Standard Webhooks scheme: ``webhook-id``,
  ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
  "{id}.{timestamp}.{body}">`` keyed with the ``whsec_`` secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from ..storage.index import MAX_SCAN, Txn
from .session_writes import PARTICIPANTS

__all__ = [
    "OUTBOX",
    "NotifySettings",
    "Notifier",
    "add_to_outbox",
    "sign",
    "verify_signature",
]

logger = logging.getLogger("threadline.server")

OUTBOX: Final = "outbox"  # {session}\n{participant} -> pending notification


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where and how to send notifications."""

    url: str
    """The app's webhook endpoint."""

    secret: str
    """The signing secret, ``whsec_`` + base64 (Standard Webhooks)."""

    coalesce: float = 30.0
    """Seconds from a member's first unsent message to its notification."""

    backoff: float = 5.0
    """First retry delay; doubles per failure."""

    max_backoff: float = 3600.0
    """Longest retry delay."""

    max_attempts: int = 12
    """Failures after which a notification is dropped (and logged)."""

    timeout: float = 10.0
    """Seconds a delivery may take."""

    def __post_init__(self) -> None:
        secret_key(self.secret)  # refuse a malformed secret at start-up


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret.

    Raises:
        ValueError: not ``whsec_`` followed by base64 of at least 16 bytes.
    """
    if not secret.startswith("whsec_"):
        raise ValueError("the notify secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except ValueError as exc:
        raise ValueError("the notify secret is not base64 after whsec_") from exc
    if len(key) < 16:
        raise ValueError("the notify secret must hold at least 16 bytes")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks ``v1``)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """Check a delivery the way a receiver should (used by the tests and docs)."""
    timestamp = int(headers["webhook-timestamp"])
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, headers["webhook-id"], timestamp, body)
    offered = headers["webhook-signature"].split()
    return any(hmac.compare_digest(expected, one) for one in offered)


def add_to_outbox(
    txn: Txn,
    session_id: str,
    completed: list[tuple[str, str, str]],
    now: float,
    coalesce: float,
) -> None:
    """Count completed messages into each other member's pending notification.

    Args:
        completed: ``(author id, visibility, offset)`` per completed message,
            the offset in the staff view.
    """
    if not completed:
        return
    page = txn.scan(PARTICIPANTS, f"{session_id}\n", limit=MAX_SCAN)
    for key, raw in page:
        participant = key.split("\n", 1)[1]
        staff = orjson.loads(raw)["staff"]
        mine = [
            offset
            for author, visibility, offset in completed
            if author != participant and (staff or visibility == "all")
        ]
        if not mine:
            continue
        entry_key = f"{session_id}\n{participant}"
        found = txn.get(OUTBOX, entry_key)
        if found is None:
            entry: dict[str, Any] = {
                "session": session_id,
                "participant": participant,
                "messages": 0,
                "first": now,
                "due": now + coalesce,
                "attempts": 0,
                "id": f"{session_id}:{participant}:{mine[0]}",
            }
        else:
            entry = orjson.loads(found)
        entry["messages"] += len(mine)
        entry["last_offset"] = mine[-1]
        txn.put(OUTBOX, entry_key, orjson.dumps(entry))


Present = Callable[[str, str, str], Awaitable[bool]]
"""``present(tenant, session, participant)``: a device of theirs is connected."""


class Notifier:
    """Sends due outbox entries; one task per server process.

    Args:
        store: The log store whose index holds the outbox.
        settings: Where to send, the secret, timings.
        present: Whether a participant has a device present now.
        clock: Epoch seconds (tests pass a fake).
    """

    def __init__(
        self,
        store: Any,
        settings: NotifySettings,
        present: Present,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.present = present
        self.clock = clock
        self.interval = interval
        self.sent = 0
        """Notifications delivered (2xx)."""
        self.skipped = 0
        """Notifications dropped because the member was present."""
        self.failed = 0
        """Failed delivery attempts."""
        self._client = httpx.AsyncClient(
            timeout=settings.timeout, transport=transport, follow_redirects=False
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="threadline-notify")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("! notification delivery failed")
            await asyncio.sleep(self.interval)

    async def deliver_due(self) -> int:
        """Send every due entry once; returns how many were handled."""
        now = self.clock()
        handled = 0
        for tenant in await self.store.index.tenants(OUTBOX):
            after: str | None = None
            while True:
                page = await self.store.index.scan(
                    tenant, OUTBOX, after=after, limit=MAX_SCAN
                )
                for key, raw in page:
                    entry = orjson.loads(raw)
                    if entry["due"] <= now:
                        await self._deliver(tenant, key, entry)
                        handled += 1
                if len(page) < MAX_SCAN:
                    break
                after = page[-1][0]
        return handled

    async def _deliver(self, tenant: str, key: str, entry: dict[str, Any]) -> None:
        if await self.present(tenant, entry["session"], entry["participant"]):
            self.skipped += 1
            await self._settle(tenant, key, entry)
            return
        body = orjson.dumps(
            {
                "type": "session.messages",
                "tenant": tenant,
                "session": entry["session"],
                "participant": entry["participant"],
                "messages": entry["messages"],
                "offset": entry["last_offset"],
                "first": entry["first"],
            }
        )
        timestamp = int(self.clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": entry["id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                self.settings.secret, entry["id"], timestamp, body
            ),
        }
        try:
            response = await self._client.post(
                self.settings.url, content=body, headers=headers
            )
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError as exc:
            logger.warning("notification %s failed: %s", entry["id"], exc)
            ok = False
        if ok:
            self.sent += 1
            await self._settle(tenant, key, entry)
        else:
            self.failed += 1
            await self._retry(tenant, key, entry)

    async def _settle(self, tenant: str, key: str, sent: dict[str, Any]) -> None:
        """Remove what was sent; messages added meanwhile start a new entry."""
        now = self.clock()
        coalesce = self.settings.coalesce

        def run(txn: Txn) -> None:
            raw = txn.get(OUTBOX, key)
            if raw is None:
                return
            current = orjson.loads(raw)
            if current["messages"] <= sent["messages"] or current["id"] != sent["id"]:
                txn.put(OUTBOX, key, None)
                return
            current["messages"] -= sent["messages"]
            current.update(
                first=now,
                due=now + coalesce,
                attempts=0,
                id=f"{sent['session']}:{sent['participant']}:{current['last_offset']}",
            )
            txn.put(OUTBOX, key, orjson.dumps(current))

        await self.store.transact(tenant, run)

    async def _retry(self, tenant: str, key: str, entry: dict[str, Any]) -> None:
        settings = self.settings
        attempts = entry["attempts"] + 1
        if attempts >= settings.max_attempts:
            logger.error(
                "! notification %s dropped after %d attempts", entry["id"], attempts
            )
            await self._settle(tenant, key, entry)
            return
        delay = min(settings.max_backoff, settings.backoff * 2 ** (attempts - 1))
        due = self.clock() + delay

        def run(txn: Txn) -> None:
            raw = txn.get(OUTBOX, key)
            if raw is None:
                return
            current = orjson.loads(raw)
            current.update(attempts=attempts, due=due)
            txn.put(OUTBOX, key, orjson.dumps(current))

        await self.store.transact(tenant, run)
