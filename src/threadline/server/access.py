"""Who reaches which session: the one check every transport makes.

HTTP routes, session SSE and the WebSocket all call :func:`reach_session`, so
a token reaches exactly the same sessions whatever path it takes (PRODUCT.md
guarantee 5).
"""

from __future__ import annotations

from typing import Final, cast

from ..auth import AuthError, Claims
from ..exceptions import ProtocolError
from ..protocol.actors import Actor, Role
from ..protocol.queue import QUEUE_SESSION, SERVER_SESSIONS
from .queue import FEED_ROLES, QUEUE_ROLES
from .sessions import SessionInfo, SessionManager, SessionNotFound

__all__ = ["actor_of", "check_session_id", "reach_session"]

SESSION_ID_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
)


def check_session_id(session_id: str) -> None:
    """Refuse a malformed session id.

    Raises:
        ProtocolError: ``invalid_session_id``: not ``[A-Za-z0-9._:-]{1,128}``.
    """
    if not (0 < len(session_id) <= 128 and set(session_id) <= SESSION_ID_CHARS):
        raise ProtocolError(
            "session ids match [A-Za-z0-9._:-]{1,128}", "invalid_session_id"
        )


async def reach_session(
    sessions: SessionManager, claims: Claims, session_id: str
) -> SessionInfo:
    """The session's document, if the verified token reaches the session.

    A token reaches a session when one of its ``sessions`` globs matches the
    id and, for a customer, when the session's customer is the token's
    ``sub``. The waiting queue (:data:`QUEUE_SESSION`) is reached by the
    roles the rights table lets list it (agent, supervisor, service), the
    new-sessions feed by every staff role.
    Another customer's session is answered as if it did not exist, so a
    customer learns nothing of it.

    Raises:
        ProtocolError: ``invalid_session_id``.
        AuthError: ``forbidden`` (403): no glob matches.
        SessionNotFound: no such session, or another customer's.
    """
    check_session_id(session_id)
    if session_id in SERVER_SESSIONS:
        # The waiting queue and the new-sessions feed: by the rights table,
        # not the sessions globs.
        roles = QUEUE_ROLES if session_id == QUEUE_SESSION else FEED_ROLES
        if claims.role not in roles:
            raise AuthError(f"{session_id} is for staff", "forbidden", 403)
        await sessions.ensure_server_session(claims.tenant, session_id)
        return await sessions.info(claims.tenant, session_id)
    if not claims.may_access_session(session_id):
        raise AuthError(
            f"token does not reach session {session_id!r}", "forbidden", 403
        )
    info = await sessions.info(claims.tenant, session_id)
    if claims.role == "customer" and info.customer != claims.sub:
        # Not "forbidden": a customer learns nothing of others' sessions.
        raise SessionNotFound(f"no session {session_id!r}")
    return info


def actor_of(claims: Claims, device: str | None) -> Actor:
    """The actor a token publishes as, from the given device."""
    return Actor(claims.sub, cast(Role, claims.role), claims.name, device)
