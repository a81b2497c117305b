"""Storage seams: each an ABC in ``base.py``, a memory and real implementations."""

from __future__ import annotations

from .base import (
    AppendRequest,
    AppendResult,
    ForkSpec,
    LogConfig,
    LogInfo,
    LogKey,
    LogStore,
    ReadResult,
    Record,
)

__all__ = [
    "AppendRequest",
    "AppendResult",
    "ForkSpec",
    "LogConfig",
    "LogInfo",
    "LogKey",
    "LogStore",
    "ReadResult",
    "Record",
    "open_log_store",
]


def open_log_store(url: str, **options: object) -> LogStore:
    """Build a log store from a URL: ``memory://`` or ``sqlite:///PATH``.

    Raises:
        ValueError: an unknown scheme.
    """
    if url == "memory://" or url == "memory":
        from .memory import MemoryLogStore

        return MemoryLogStore(**options)  # type: ignore[arg-type]
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteLogStore

        path = url.removeprefix("sqlite://")
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:] or ":memory:"  # sqlite:///rel.db → rel.db
        elif path.startswith("//"):
            path = path[1:]  # sqlite:////abs.db → /abs.db
        return SQLiteLogStore(path, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown store URL {url!r}; use memory:// or sqlite:///PATH")
