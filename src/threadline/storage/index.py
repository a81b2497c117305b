"""The index seam: derived state committed together with the events that cause it.

Sessions derive state from their events: the idempotency index (original
offsets for retries), session metadata and folded state, compacted messages,
cursors, unread counters, the waiting queue, the webhook outbox. PRODUCT.md
requires all of it to live in the store and to be written *in the same commit*
as the events, so that a crash can never leave an event without its derived
state or the other way round.

The seam has two halves:

* **writes** go through :meth:`LogStore.transact`: a callback gets a
  :class:`Txn` in which it reads the working state (tails, index entries),
  appends records to logs of one tenant and puts index entries. The callback
  runs serialized with every other write of the store (it may rely on the
  tails it reads), and everything it did commits together, after the callback
  returned, or nothing does (the callback raised).
* **reads** of committed entries go through :class:`IndexStore`
  (``LogStore.index``): they never see a transaction that is not committed.

The index itself is deliberately plain: named tables of string keys to byte
values, scanned in key order. What the entries mean (JSON documents, counters)
is the session layer's business, kept sans-I/O in ``protocol/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..protocol.offsets import Offset
from .base import LogInfo, Record

__all__ = ["MAX_SCAN", "BufferedTxn", "IndexStore", "Txn", "check_table", "merge_scan"]

MAX_SCAN = 1000
"""The most entries one scan returns."""


def check_table(table: str) -> None:
    """Table names are short identifiers.

    Raises:
        ValueError: anything else.
    """
    if not (0 < len(table) <= 64 and table.replace("_", "").replace(".", "").isalnum()):
        raise ValueError(f"invalid index table name {table!r}")


class Txn(ABC):
    """One atomic write: appends to logs of one tenant, and index entries.

    Valid only inside the :meth:`LogStore.transact` callback that received it.
    Reads see the committed state plus this store's earlier writes in the same
    group commit plus this transaction's own writes. Nothing is written unless
    the callback returns; then everything is acknowledged together.
    """

    tenant: str
    """Every log and index entry this transaction touches is in this tenant."""

    @abstractmethod
    def info(self, name: str) -> LogInfo:
        """The log's working metadata, ``tail`` including this transaction's appends.

        Raises:
            LogNotFound, LogGone.
        """

    @abstractmethod
    def append(
        self,
        name: str,
        records: Sequence[bytes],
        *,
        expected_tail: Offset | None = None,
    ) -> list[Offset]:
        """Append records to a log; returns each record's offset.

        With ``expected_tail``, this is a compare-and-set: the records are
        appended only if the log's working tail (this transaction's earlier
        appends included) is exactly that offset. The session layer passes
        the tail its hash chain was built on, so an event can never be linked
        to a ``prev_hash`` that is not the last stored event's hash.

        Raises:
            LogNotFound, LogGone, LogClosed, TailMismatch (``expected_tail``).
        """

    @abstractmethod
    def read(self, name: str, after: Offset | None, *, limit: int) -> list[Record]:
        """The log's records after ``after``, as this transaction sees them.

        Committed records, those of earlier writes in the same group commit,
        and this transaction's own appends and replacements; at most ``limit``
        records, in offset order. Meant for the rare writes that must look
        back (a redaction), not for the read path.

        Raises:
            LogNotFound, LogGone, OffsetGone (another generation),
            InvalidOffset (beyond the working tail).
        """

    @abstractmethod
    def replace(self, name: str, offset: Offset, data: bytes) -> None:
        """Rewrite the bytes of one record, committed with this transaction.

        The record keeps its offset; the log's tail, order and generation do
        not change. Once committed, every read returns the new bytes — reads
        served from caches included, and after a restart — and no reader is
        woken (nothing was appended). This is how a ``redaction`` blanks an
        event; it is the one exception to "records are immutable".

        Only a record of the log's own generation may be rewritten, not one a
        fork shares with its source.

        Raises:
            LogNotFound, LogGone, InvalidOffset (not a record of this log's
            own generation).
        """

    @abstractmethod
    def get(self, table: str, key: str) -> bytes | None:
        """An index entry, or ``None``."""

    @abstractmethod
    def put(self, table: str, key: str, value: bytes | None) -> None:
        """Set an index entry; ``None`` deletes it."""

    @abstractmethod
    def scan(
        self,
        table: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, bytes]]:
        """Entries whose key starts with ``prefix``, in key order, after ``after``."""


class BufferedTxn(Txn):
    """What every backend's :class:`Txn` shares: index writes are buffered.

    A backend supplies the committed (or earlier-in-the-batch) entries through
    :meth:`_get_committed` and :meth:`_scan_committed`; the buffered puts are
    overlaid here and written by the backend only once the callback returned.
    """

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._puts: dict[tuple[str, str], bytes | None] = {}

    @abstractmethod
    def _get_committed(self, table: str, key: str) -> bytes | None:
        """An entry as the store holds it before this transaction."""

    @abstractmethod
    def _scan_committed(
        self, table: str, prefix: str, after: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """Entries as the store holds them before this transaction, in key order."""

    def get(self, table: str, key: str) -> bytes | None:
        check_table(table)
        if (table, key) in self._puts:
            return self._puts[(table, key)]
        return self._get_committed(table, key)

    def put(self, table: str, key: str, value: bytes | None) -> None:
        check_table(table)
        self._puts[(table, key)] = value

    def scan(
        self,
        table: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, bytes]]:
        check_table(table)
        pending = {k: v for (t, k), v in self._puts.items() if t == table}
        # Fetch enough that pending deletes cannot shorten the page.
        committed = self._scan_committed(table, prefix, after, limit + len(pending))
        return merge_scan(committed, pending, prefix, after, limit)


class IndexStore(ABC):
    """Committed reads of the index. Obtain one from ``LogStore.index``."""

    @abstractmethod
    async def get(self, tenant: str, table: str, key: str) -> bytes | None:
        """A committed index entry, or ``None``."""

    @abstractmethod
    async def scan(
        self,
        tenant: str,
        table: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, bytes]]:
        """Committed entries whose key starts with ``prefix``, in key order.

        At most ``min(limit, MAX_SCAN)`` entries, all with keys after ``after``
        (exclusive) when given: page by passing the last key seen.
        """

    @abstractmethod
    async def tenants(self, table: str) -> list[str]:
        """The tenants with at least one committed entry in ``table``, sorted.

        For work that spans tenants (ending dead producers' messages).
        """


def merge_scan(
    committed: Sequence[tuple[str, bytes]],
    pending: dict[str, bytes | None],
    prefix: str,
    after: str | None,
    limit: int,
) -> list[tuple[str, bytes]]:
    """Overlay a transaction's pending puts on a committed scan (shared helper)."""
    merged = dict(committed)
    for key, value in pending.items():
        if key.startswith(prefix) and (after is None or key > after):
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    return sorted(merged.items())[: min(limit, MAX_SCAN)]
