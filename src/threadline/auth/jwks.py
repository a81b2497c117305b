"""Where JWKS documents come from: a file, read once, or a URL, kept fresh.

This is the one module of :mod:`threadline.auth` that does I/O. Verification
itself (:func:`threadline.auth.verify_token`) stays pure: :class:`JWKSClient`
fetches keys in a worker thread and hands a new immutable
:class:`~threadline.auth.Keyset` to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from .claims import Claims
from .errors import UnknownKeyId
from .keys import Keyset, VerificationKey, parse_jwks
from .tokens import verify_token

__all__ = [
    "MAX_JWKS_BYTES",
    "MIN_REFRESH_INTERVAL",
    "REFRESH_INTERVAL",
    "JWKSClient",
    "read_jwks_file",
]

logger = logging.getLogger(__name__)

REFRESH_INTERVAL: Final = 300.0
"""Default seconds between two fetches of a JWKS URL."""
MIN_REFRESH_INTERVAL: Final = 60.0
"""An unknown ``kid`` triggers a fetch at most this often (seconds)."""
MAX_JWKS_BYTES: Final = 1024 * 1024
"""Largest JWKS document accepted."""


def read_jwks_file(path: str | Path) -> tuple[VerificationKey, ...]:
    """The usable keys of a JWKS file (see :func:`threadline.auth.parse_jwks`).

    Raises:
        ValueError: the file cannot be read, is not a JWKS, or has no usable key.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read JWKS file {path}: {exc.strerror}") from exc
    try:
        keys = parse_jwks(data)
    except ValueError as exc:
        raise ValueError(f"JWKS file {path}: {exc}") from exc
    if not keys:
        raise ValueError(f"JWKS file {path} has no usable EdDSA or RS256 key")
    return keys


class JWKSClient:
    """Verifies tokens against a base keyset plus the keys of a JWKS URL.

    The URL is fetched with :mod:`urllib.request` in a worker thread, at most
    one fetch at a time, redirects refused. Its keys are cached and refetched:

    * in the background once ``refresh_interval`` has passed since the last
      fetch (requests meanwhile verify with the cached keys);
    * at once when a token names an unknown ``kid`` — a key rotation — but at
      most once per ``min_refresh_interval``, so a stream of tokens with made-up
      ``kid`` values cannot make the server hammer the identity provider.

    A failed fetch is logged and keeps the cached keys.

    Args:
        url: the JWKS URL (``http`` or ``https``).
        base: the keyset whose secret, keys, issuer and audience apply; the
            fetched keys are added to its keys (a fetched key whose ``kid`` a
            base key has is ignored).
        refresh_interval: seconds between fetches.
        min_refresh_interval: least seconds between fetches caused by unknown kids.
        timeout: seconds a fetch may take.
        clock: monotonic clock, replaceable in tests.

    Raises:
        ValueError: the URL is not ``http`` or ``https``.
    """

    def __init__(
        self,
        url: str,
        *,
        base: Keyset | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"the JWKS URL must be http or https: {url!r}")
        self.url = url
        """The JWKS URL."""
        self.refresh_interval = refresh_interval
        """Seconds between background fetches."""
        self.min_refresh_interval = min_refresh_interval
        """Least seconds between fetches caused by unknown kids."""
        self.timeout = timeout
        """Seconds a fetch may take."""
        self.fetches = 0
        """Fetches attempted so far (successful or not)."""
        self._clock = clock
        self._base = base if base is not None else Keyset()
        self._keyset = self._base
        self._fetched_at: float | None = None
        self._task: asyncio.Task[bool] | None = None
        self._closed = False

    @property
    def keyset(self) -> Keyset:
        """The keyset in use now: the base one with the last fetched keys."""
        return self._keyset

    # Public methods

    async def start(self) -> bool:
        """Fetch the keys once; returns whether that worked (failures are logged).

        Optional: without it, the first token with a ``kid`` triggers the fetch.
        """
        return await self.refresh()

    async def verify(self, token: str) -> Claims:
        """Verify ``token`` (see :func:`threadline.auth.verify_token`).

        Waits for a fetch only when the token's ``kid`` is unknown and a fetch
        is allowed (or already in flight). Safe to call concurrently and to
        cancel: cancelling does not cancel a fetch other callers wait on.

        Raises:
            AuthError: the token is refused, including an unknown ``kid`` that a
                fetch did not (or could not yet) bring.
        """
        if self._task is None and not self._closed and self._due():
            self._start_fetch()
        try:
            return verify_token(token, self._keyset)
        except UnknownKeyId:
            if not await self._refresh_for_unknown_kid():
                raise
        return verify_token(token, self._keyset)

    async def refresh(self) -> bool:
        """Fetch the keys now, or join the fetch in flight; whether it worked.

        Cancelling the caller does not cancel the fetch. After :meth:`aclose`,
        returns ``False`` without fetching.
        """
        task = self._task
        if task is None:
            if self._closed:
                return False
            task = self._start_fetch()
        return await asyncio.shield(task)

    async def wait_refreshed(self) -> None:
        """Wait for the fetch in flight, if any (returns at once otherwise)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Cancel a fetch in flight and stop fetching; idempotent.

        The cached keys stay usable: :meth:`verify` keeps working with them.
        Callers waiting on the cancelled fetch get ``CancelledError``. Its worker
        thread ends by itself within ``timeout``.
        """
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Private methods

    def _due(self) -> bool:
        return (
            self._fetched_at is None
            or self._clock() - self._fetched_at >= self.refresh_interval
        )

    def _start_fetch(self) -> asyncio.Task[bool]:
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._task = task
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[bool]) -> None:
        if self._task is task:
            self._task = None

    async def _refresh_for_unknown_kid(self) -> bool:
        if self._task is not None:
            return await asyncio.shield(self._task)
        if (
            self._fetched_at is not None
            and self._clock() - self._fetched_at < self.min_refresh_interval
        ):
            return False
        return await self.refresh()

    async def _fetch(self) -> bool:
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            body = await asyncio.to_thread(_download, self.url, self.timeout)
            keys = parse_jwks(body)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            logger.warning("! JWKS fetch from %s failed: %s", self.url, exc)
            return False
        except Exception:  # a bug must not leave the cached keys unusable
            logger.exception("! JWKS fetch from %s failed", self.url)
            return False
        static = self._base.keys
        known = {key.kid for key in static}
        fetched = tuple(key for key in keys if key.kid not in known)
        self._keyset = self._base.with_keys(static + fetched)
        logger.info("= JWKS from %s: %d keys", self.url, len(fetched))
        return True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: one could downgrade https to http and swap the keys."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "threadline"}
    )
    with _opener.open(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    return body
