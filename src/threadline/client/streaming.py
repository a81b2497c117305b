"""Streaming a message: ``message.start``, pipelined deltas, and always an end."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

from ..exceptions import InvalidState, ThreadlineError, Timeout

if TYPE_CHECKING:
    from .session import Session

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "MessageStream", "TextPart"]

DEFAULT_MAX_IN_FLIGHT: Final = 64
"""Deltas a stream keeps published but unacknowledged at most."""

TextPart = Literal["text", "reasoning"]
"""The part types a stream writes text into."""


class MessageStream:
    """One message streamed into a session; made by :meth:`Session.stream_message`.

    Entering publishes ``message.start`` (and waits for it, so a refusal —
    ``NotInControl``, ``Forbidden`` — raises at once). Each :meth:`write`
    publishes a ``message.delta`` with the next ``seq`` **without waiting for
    its acknowledgement**: up to ``max_in_flight`` deltas are on their way at
    once, in order, and :meth:`write` waits only when that many are
    unanswered. Leaving always ends the message:

    * normally: waits for every delta, then publishes ``message.end``
      ``{status: complete}``; if a delta failed, ends it ``error``
      (``reason: publish_failed``) and raises that failure;
    * on :class:`asyncio.CancelledError`: ends it ``cancelled``
      (``reason: cancelled``) and lets the cancellation go on;
    * on an exception: ends it ``error`` (``reason: producer_error``) and
      lets the exception go on.

    Each end waits at most the client's timeout; if even that fails (the
    server is unreachable), the server ends the message itself once its lease
    runs out (``error``, ``producer_lost``). A delta that is not answered
    before a reconnect is resent with the same id, so none is lost or stored
    twice.

    A stream is not safe to write from two coroutines at once; its order of
    deltas is the order of the :meth:`write` calls.
    """

    def __init__(
        self,
        session: Session,
        *,
        message_id: str,
        role: str,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        visibility: Literal["all", "staff"] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.session = session
        self.message_id = message_id
        """The message's id (``message_id`` of every event of it)."""
        self.role = role
        self.run_id = run_id
        self.metadata = metadata
        self.visibility = visibility
        self.seq = 0
        """The ``seq`` of the next delta: how many were written."""
        self.status: Literal["complete", "cancelled", "error"] | None = None
        """How the message ended, once it did."""
        self.max_in_flight = max_in_flight
        self.peak_in_flight = 0
        """The most deltas that were unanswered at once."""
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Future[list[str]]] = set()
        self._error: ThreadlineError | None = None
        self._part_index = -1
        self._part_type: str | None = None
        self._started = False

    # Async context manager

    async def __aenter__(self) -> MessageStream:
        data: dict[str, Any] = {"message_id": self.message_id, "role": self.role}
        if self.run_id is not None:
            data["run_id"] = self.run_id
        if self.metadata is not None:
            data["metadata"] = self.metadata
        await self.session.publish("message.start", data, visibility=self.visibility)
        self._started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self._finish()
        elif issubclass(exc_type, asyncio.CancelledError):
            await self._end_quietly("cancelled", "cancelled")
        elif issubclass(exc_type, Exception):
            await self._end_quietly("error", "producer_error")
        # Anything else (KeyboardInterrupt, SystemExit) stops the process:
        # the server's lease ends the message.

    # Public methods

    @property
    def in_flight(self) -> int:
        """Deltas published and not answered yet."""
        return len(self._in_flight)

    async def write(self, text: str, *, part_type: TextPart = "text") -> None:
        """Append ``text`` to the message: publish one delta, without waiting
        for its answer.

        A change of ``part_type`` (``text`` or ``reasoning``) starts a new
        part. Empty text publishes nothing.

        Waits only while ``max_in_flight`` deltas are unanswered. Cancelling
        it is safe: the delta is either queued (and will be published) or
        not, and the stream's end follows whatever was queued.

        Raises:
            ThreadlineError: an earlier delta failed (for instance
                ``AlreadyEnded``: the floor passed to a human and the server
                ended the message); stop producing.
            InvalidState: the stream has not started or has ended.
        """
        if not self._started or self.status is not None:
            raise InvalidState("write() outside the stream's async with block")
        if self._error is not None:
            raise self._error
        if not text:
            return
        if part_type != self._part_type:
            self._part_index += 1
            self._part_type = part_type
        data = {
            "message_id": self.message_id,
            "seq": self.seq,
            "part_index": self._part_index,
            "part_type": part_type,
            "text": text,
        }
        await self._publish_delta(data)

    async def write_part(self, part: Mapping[str, Any]) -> None:
        """Append a whole part to the message: a ``tool-call``, ``tool-result``,
        ``file`` or ``data-<name>`` part (``{"type": ..., <its fields>}``).

        It opens a new part (the next ``part_index``) and publishes it as one
        delta carrying its fields as ``data``; a ``text`` or ``reasoning``
        part is written as :meth:`write` writes text. Like :meth:`write`, it
        does not wait for the answer.

        Raises:
            TypeError: ``part`` has no string ``type``.
            ThreadlineError, InvalidState: as :meth:`write`.
        """
        part_type = part.get("type") if isinstance(part, Mapping) else None
        if not isinstance(part_type, str):
            raise TypeError("a part is a mapping with a string 'type'")
        if part_type in ("text", "reasoning"):
            text = part.get("text")
            if not isinstance(text, str):
                raise TypeError(f"a {part_type} part needs a string 'text'")
            await self.write(
                text, part_type="text" if part_type == "text" else "reasoning"
            )
            return
        if not self._started or self.status is not None:
            raise InvalidState("write_part() outside the stream's async with block")
        if self._error is not None:
            raise self._error
        self._part_index += 1
        self._part_type = part_type
        data = {
            "message_id": self.message_id,
            "seq": self.seq,
            "part_index": self._part_index,
            "part_type": part_type,
            "data": {k: v for k, v in part.items() if k != "type"},
        }
        await self._publish_delta(data)

    # Private methods

    async def _publish_delta(self, data: dict[str, Any]) -> None:
        await self._slots.acquire()
        try:
            future = self.session.submit("message.delta", data, merge=True)
        except BaseException:
            self._slots.release()
            raise
        self.seq += 1
        self._in_flight.add(future)
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        future.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[list[str]]) -> None:
        self._in_flight.discard(future)
        self._slots.release()
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, ThreadlineError) and self._error is None:
            self._error = error

    async def _finish(self) -> None:
        try:
            async with asyncio.timeout(self.session.timeout):
                while self._in_flight:
                    await asyncio.wait(set(self._in_flight))
        except TimeoutError as exc:
            self._error = Timeout("deltas unanswered in time")
            self._error.__cause__ = exc
        if self._error is not None:
            await self._end_quietly("error", "publish_failed")
            raise self._error
        await self._end("complete", None)

    async def _end(
        self, status: Literal["complete", "cancelled", "error"], reason: str | None
    ) -> None:
        self.status = status
        data: dict[str, Any] = {"message_id": self.message_id, "status": status}
        if reason is not None:
            data["reason"] = reason
        future = self.session.submit("message.end", data)
        async with asyncio.timeout(self.session.timeout):
            # Shielded: cancelling the waiter must not withdraw the end.
            await asyncio.shield(future)

    async def _end_quietly(
        self, status: Literal["complete", "cancelled", "error"], reason: str
    ) -> None:
        """End the message, best effort: the error that got us here matters more."""
        try:
            await self._end(status, reason)
        except (ThreadlineError, TimeoutError):
            pass
