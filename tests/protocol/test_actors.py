from __future__ import annotations

import pytest

from threadline.exceptions import InvalidEvent
from threadline.protocol.actors import ROLES, SERVER, STAFF_ROLES, Actor


def test_actor_parse_reads_all_fields():
    """id, role, name and device are read."""
    obj = {"id": "cust_42", "role": "customer", "name": "Dana", "device": "tab-7f3a"}
    assert Actor.parse(obj) == Actor("cust_42", "customer", "Dana", "tab-7f3a")


def test_actor_to_json_omits_absent_fields():
    """name and device are left out when absent."""
    assert Actor("ai_1", "ai").to_json() == {"id": "ai_1", "role": "ai"}


def test_actor_round_trips_through_json():
    """Parsing an actor's JSON gives the actor back."""
    actor = Actor("dana@example.com", "customer", "Dana", "tab_1")
    assert Actor.parse(actor.to_json()) == actor


def test_server_actor_is_reserved_identity():
    """The server actor is {id: threadline, role: server}."""
    assert SERVER.to_json() == {"id": "threadline", "role": "server"}
    assert SERVER.is_server and SERVER.is_staff


@pytest.mark.parametrize("role", ROLES)
def test_actor_is_staff_for_every_role_but_customer(role):
    """Staff are ai, agent, supervisor and service."""
    assert Actor("x", role).is_staff == (role in STAFF_ROLES)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "actor"),
        ({"role": "ai"}, "actor.id"),
        ({"id": "a", "role": "ai", "tenant": "t"}, "actor.tenant"),
        ({"id": "", "role": "ai"}, "actor.id"),
        ({"id": "a", "role": "admin"}, "actor.role"),
        ({"id": "a", "role": "ai", "name": ""}, "actor.name"),
        ({"id": "a", "role": "ai", "device": "tab 1"}, "actor.device"),
        ({"id": "a", "role": "ai", "device": "x" * 65}, "actor.device"),
        ({"id": "threadline", "role": "service"}, "actor"),
        ({"id": "svc", "role": "server"}, "actor"),
    ],
)
def test_actor_parse_refuses_malformed_actors(obj, field):
    """Bad fields and claims on the server's identity are invalid_event."""
    with pytest.raises(InvalidEvent) as caught:
        Actor.parse(obj)
    assert caught.value.field == field


def test_actor_check_refuses_an_unknown_role_built_in_code():
    """check() catches what the type checker would let through at run time."""
    with pytest.raises(InvalidEvent, match="must be one of"):
        Actor("a", "robot").check()  # type: ignore[arg-type]
