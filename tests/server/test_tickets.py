"""Tickets for EventSource: minted, verified, scoped, expiring, redacted."""

from __future__ import annotations

import pytest

from threadline.auth import AuthError
from threadline.server.tickets import TICKET_SECONDS, TicketSigner, redact_tickets


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def mint(signer: TicketSigner, session: str = "order-1") -> str:
    text, _ = signer.mint(
        tenant="acme", sub="cust_42", role="customer", name="Dana", session=session
    )
    return text


def test_ticket_round_trips_the_readers_identity():
    """A minted ticket verifies for its session and names its reader."""
    signer = TicketSigner("secret")
    ticket = signer.verify(mint(signer), "order-1")
    assert (ticket.tenant, ticket.sub, ticket.role, ticket.name) == (
        "acme",
        "cust_42",
        "customer",
        "Dana",
    )


def test_ticket_for_another_session_is_refused():
    """A ticket opens only the session it was minted for."""
    signer = TicketSigner("secret")
    with pytest.raises(AuthError) as caught:
        signer.verify(mint(signer), "order-2")
    assert caught.value.code == "invalid_ticket"


def test_ticket_expires():
    """After its lifetime a ticket is refused as expired."""
    clock = Clock()
    signer = TicketSigner("secret", clock=clock)
    text = mint(signer)
    clock.now += TICKET_SECONDS + 1
    with pytest.raises(AuthError) as caught:
        signer.verify(text, "order-1")
    assert caught.value.code == "ticket_expired"


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "AA", lambda t: "x" + t, lambda t: "nodot"]
)
def test_forged_or_malformed_ticket_is_refused(mangle):
    """A changed signature, payload or shape is refused."""
    signer = TicketSigner("secret")
    with pytest.raises(AuthError):
        signer.verify(mangle(mint(signer)), "order-1")


def test_ticket_from_another_key_is_refused():
    """A ticket signed with another server's key does not verify."""
    with pytest.raises(AuthError):
        TicketSigner("other").verify(mint(TicketSigner("secret")), "order-1")


def test_ticket_without_a_secret_uses_a_process_key():
    """Without a server secret, tickets verify within the same signer only."""
    signer = TicketSigner(None)
    assert signer.verify(mint(signer), "order-1").sub == "cust_42"
    with pytest.raises(AuthError):
        TicketSigner(None).verify(mint(signer), "order-1")


def test_redact_tickets_masks_every_value():
    """Log lines never show a ticket."""
    line = 'GET /v1/sessions/a/events?live=sse&ticket=abc.def&x=1 "ticket=zz"'
    assert (
        redact_tickets(line)
        == 'GET /v1/sessions/a/events?live=sse&ticket=REDACTED&x=1 "ticket=REDACTED"'
    )
