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
    "sqlite_path",
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

        return SQLiteLogStore(sqlite_path(url), **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown store URL {url!r}; use memory:// or sqlite:///PATH")


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///PATH`` (relative) or ``sqlite:////ABS`` URL.

    Raises:
        ValueError: not a SQLite store URL.
    """
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a SQLite store URL: {url!r}; use sqlite:///PATH")
    path = url.removeprefix("sqlite://")
    if path.startswith("/") and not path.startswith("//"):
        return path[1:] or ":memory:"  # sqlite:///rel.db → rel.db
    if path.startswith("//"):
        return path[1:]  # sqlite:////abs.db → /abs.db
    return path
