from __future__ import annotations

import pytest

from threadline.protocol.rights import Permission, granting_cap, publish_permission

NEVER, ALWAYS, OWN, CTRL, GRANTED = (
    Permission.NEVER,
    Permission.ALWAYS,
    Permission.OWN,
    Permission.CONTROLLER,
    Permission.GRANTED,
)
ROLES = ("customer", "ai", "agent", "supervisor", "service")

# PRODUCT.md § Rights, row by row: (event type, message role, permissions)
TABLE = [
    ("message", "user", (OWN, NEVER, NEVER, NEVER, ALWAYS)),
    ("message.start", "assistant", (NEVER, CTRL, CTRL, CTRL, ALWAYS)),
    ("message.delta", "system", (NEVER, ALWAYS, ALWAYS, ALWAYS, ALWAYS)),
    ("run.cancel", "user", (OWN, ALWAYS, ALWAYS, ALWAYS, ALWAYS)),
    ("control.request", "user", (OWN, CTRL, CTRL, NEVER, ALWAYS)),
    ("control.accept", "user", (NEVER, NEVER, ALWAYS, GRANTED, ALWAYS)),
    ("control.release", "user", (NEVER, CTRL, CTRL, CTRL, ALWAYS)),
    ("note", "user", (NEVER, ALWAYS, ALWAYS, ALWAYS, ALWAYS)),
    ("tool.call", "user", (NEVER, ALWAYS, ALWAYS, NEVER, ALWAYS)),
    ("tool.result", "user", (NEVER, ALWAYS, ALWAYS, NEVER, ALWAYS)),
    ("run.start", "user", (NEVER, ALWAYS, ALWAYS, NEVER, ALWAYS)),
    ("run.end", "user", (NEVER, ALWAYS, ALWAYS, NEVER, ALWAYS)),
    ("session.updated", "user", (NEVER, NEVER, NEVER, NEVER, ALWAYS)),
    ("session.closed", "user", (NEVER, NEVER, NEVER, NEVER, ALWAYS)),
    ("redaction", "user", (NEVER, NEVER, NEVER, ALWAYS, ALWAYS)),
    ("participant.joined", "user", (NEVER, NEVER, NEVER, NEVER, NEVER)),
    ("participant.left", "user", (NEVER, NEVER, NEVER, NEVER, NEVER)),
    ("x.order.lookup", "user", (OWN, ALWAYS, ALWAYS, ALWAYS, ALWAYS)),
]


@pytest.mark.parametrize(("event_type", "message_role", "expected"), TABLE)
def test_publish_permission_follows_the_rights_table(
    event_type, message_role, expected
):
    """Each role's permission matches PRODUCT.md's rights table."""
    got = tuple(publish_permission(r, event_type, message_role) for r in ROLES)
    assert got == expected


def test_publish_permission_refuses_the_server_role():
    """The server is not in the table: it may publish anything."""
    with pytest.raises(ValueError, match="not a token role"):
        publish_permission("server", "message")


def test_barge_grants_control_accept():
    """The barge cap turns a supervisor's granted accept on."""
    assert granting_cap("control.accept") == "barge"


@pytest.mark.parametrize("event_type", ["message", "control.request", "x.a", "note"])
def test_no_cap_grants_other_events(event_type):
    """Only control.accept has a granting cap."""
    assert granting_cap(event_type) is None
