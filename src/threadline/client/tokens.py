"""The client's bearer token, and refreshing it through the application's hook.

The client reads a JWT's ``exp`` and ``role`` without verifying it (the server
verifies; the client only needs to know when to ask for a new one), so it
needs no JWT library. An opaque token works too: it is then refreshed only
when the server refuses it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..exceptions import AuthError

__all__ = ["REFRESH_MARGIN", "TokenProvider", "Tokens", "token_claims"]

logger = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
"""The refresh hook: an async callable that returns a fresh token."""

REFRESH_MARGIN: Final = 60.0
"""Ask the provider for a new token this many seconds before ``exp``."""

_MIN_INTERVAL: Final = 1.0  # between two proactive refreshes, at least


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; ``{}`` for a token that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


class Tokens:
    """The current token of a client, refreshed through ``provider``.

    Args:
        token: The first token.
        provider: The refresh hook, or ``None`` (the token is never replaced).
    """

    def __init__(self, token: str, provider: TokenProvider | None = None) -> None:
        if not isinstance(token, str) or not token:
            raise TypeError("token must be a non-empty string")
        self.token = token
        """The token to send now."""
        self.provider = provider
        """The refresh hook."""
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def claims(self) -> dict[str, Any]:
        """The current token's claims, unverified (``{}`` if it is no JWT)."""
        return token_claims(self.token)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(token)`` whenever the token is replaced."""
        self._listeners.append(listener)

    async def refresh(self, stale: str) -> bool:
        """Get a fresh token unless ``stale`` was already replaced.

        Concurrent callers that saw the same refused token share one call of
        the provider.

        Returns:
            Whether a token other than ``stale`` is now current.

        Raises:
            AuthError: the provider failed (chained to its exception).
        """
        async with self._lock:
            if self.token != stale:
                return True
            if self.provider is None:
                return False
            try:
                token = await self.provider()
            except Exception as exc:
                raise AuthError(f"token provider failed: {exc!r}") from exc
            if not isinstance(token, str) or not token:
                raise AuthError("token provider returned no token")
            self.token = token
            logger.debug("= token refreshed")
            for listener in self._listeners:
                listener(token)
            return token != stale

    def start(self) -> None:
        """Refresh the token ahead of its expiry, in the background, until
        :meth:`stop` (with a provider and a token that says ``exp`` only).

        Raises:
            RuntimeError: no event loop is running.
        """
        if self.provider is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._refresh_ahead(), name="threadline-token-refresh"
            )

    async def stop(self) -> None:
        """Stop refreshing ahead. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its CancelledError is not ours

    async def _refresh_ahead(self) -> None:
        while True:
            exp = self.claims.get("exp")
            if not isinstance(exp, int | float):
                return
            delay = exp - REFRESH_MARGIN - time.time()
            await asyncio.sleep(max(delay, 0.0))
            try:
                await self.refresh(self.token)
            except AuthError as exc:
                logger.warning("! token refresh failed: %s", exc)
            await asyncio.sleep(_MIN_INTERVAL)
