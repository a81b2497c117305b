"""Tickets: short-lived, read-only credentials for a plain ``EventSource``.

A browser's ``EventSource`` cannot send an ``Authorization`` header. Instead
the page asks ``POST /v1/sessions/{id}/tickets`` (with its bearer token) for
a ticket, and opens ``GET /v1/sessions/{id}/events?live=sse&ticket=…``.

A ticket is ``base64url(JSON claims) "." base64url(HMAC-SHA256)``: it names
one session, carries the reader's identity (tenant, participant, role, name)
and expires after :data:`TICKET_SECONDS`. It reads; it never publishes. It is
signed with a key derived from the server secret (or, without one, a random
key of this process: then tickets do not survive a restart, which only costs
the page a new ticket). Access logs redact ``ticket=`` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

from ..auth import AuthError

__all__ = ["TICKET_SECONDS", "Ticket", "TicketSigner", "redact_tickets"]

TICKET_SECONDS: Final = 60
"""How long a ticket may be used to open a stream."""

_TICKET_PARAM: Final = re.compile(r"(ticket=)[^&\s\"]+")


def redact_tickets(text: str) -> str:
    """Mask every ``ticket=`` value in a log line."""
    return _TICKET_PARAM.sub(r"\1REDACTED", text)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Ticket:
    """A verified ticket: who reads which session."""

    tenant: str
    sub: str
    role: str
    name: str | None
    session: str
    expires: float


class TicketSigner:
    """Mints and verifies tickets with one HMAC key."""

    def __init__(
        self, secret: str | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        material = secret.encode() if secret else os.urandom(32)
        self._key = hashlib.sha256(b"threadline ticket v1\x00" + material).digest()
        self._clock = clock

    def mint(
        self, *, tenant: str, sub: str, role: str, name: str | None, session: str
    ) -> tuple[str, Ticket]:
        """A new ticket for ``session`` and its wire form."""
        ticket = Ticket(
            tenant, sub, role, name, session, self._clock() + TICKET_SECONDS
        )
        payload = orjson.dumps(
            {
                "t": ticket.tenant,
                "s": ticket.sub,
                "r": ticket.role,
                "n": ticket.name,
                "x": ticket.session,
                "e": ticket.expires,
            }
        )
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}", ticket

    def verify(self, text: str, session: str) -> Ticket:
        """Check a ticket's signature, expiry and session.

        Raises:
            AuthError: forged, expired, malformed or for another session (401).
        """
        try:
            payload_text, mac_text = text.split(".", 1)
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except ValueError as exc:
            raise AuthError("malformed ticket", "invalid_ticket") from exc
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise AuthError("forged ticket", "invalid_ticket")
        claims = orjson.loads(payload)
        ticket = Ticket(
            claims["t"], claims["s"], claims["r"], claims["n"], claims["x"], claims["e"]
        )
        if ticket.expires < self._clock():
            raise AuthError("ticket expired", "ticket_expired")
        if ticket.session != session:
            raise AuthError("ticket is for another session", "invalid_ticket")
        return ticket
