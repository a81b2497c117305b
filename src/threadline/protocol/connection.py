"""One WebSocket connection of ``threadline.v1``, as sans-I/O state machines.

:class:`ServerProtocol` and :class:`ClientProtocol` do no I/O and read no
clock. The I/O layer drives them in a loop:

1. feed what arrives: ``receive_text()`` (and, on the server,
   ``receive_binary()``; on the client, ``receive_close()``); the server also
   takes ``now``, in seconds on the clock of token expiry (Unix time), and
   wants :meth:`ServerProtocol.check_timeouts` called at
   :meth:`ServerProtocol.next_deadline`;
2. let the application act on ``events_received()``, in order, through the
   protocol's methods (``accept()``, ``send_*()``, ``subscribe()``…);
3. send what ``data_to_send()`` returns, in order: text frames, then perhaps a
   :class:`~threadline.protocol.codes.Close`, after which it closes the
   WebSocket with that code and drops the protocol (the client keeps its
   protocol for the next connection: see :class:`ClientProtocol`).

Call ``data_to_send()`` again only when the transport has written what the
previous call returned. Everything queued in between is packed into as few
frames as the limits allow, so a busy connection sends many events per frame,
and what waits in the protocol is all that waits: the server's send queue
bound (``max_queue_bytes``, ``max_queue_messages``) is enforced here, by
closing 4000 (slow consumer), after which the client resumes from its
offsets.
"""

from __future__ import annotations

from ._common import State
from .client_protocol import ClientProtocol
from .server_protocol import (
    DEFAULT_HELLO_TIMEOUT,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_MESSAGES,
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_TOKEN_GRACE,
    ServerProtocol,
)

__all__ = [
    "DEFAULT_HELLO_TIMEOUT",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_MESSAGES",
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "DEFAULT_TOKEN_GRACE",
    "ClientProtocol",
    "ServerProtocol",
    "State",
]
