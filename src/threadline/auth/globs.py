"""Grant globs: the patterns in a token's ``streams`` and ``sessions`` claims.

Two dialects, one per namespace, because the names they match differ:

* **Stream globs** match Durable Streams names, which are ``/``-separated
  paths: ``*`` matches within one segment, ``**`` across segments, ``?`` one
  character other than ``/``. Everything else is literal.
* **Session globs** match session ids (``[A-Za-z0-9._:-]{1,128}``), where ``:``
  separates an app's own namespaces (``shop:order-1234``). They follow
  :func:`fnmatch.fnmatchcase`, except that no wildcard crosses ``:``: ``*``
  matches any run of characters other than ``:``, ``?`` one character other
  than ``:``, ``[seq]`` / ``[!seq]`` one character in / not in ``seq`` (never
  ``:``). ``**`` matches anything, ``:`` included. Matching is case-sensitive.

Both are compiled once and cached.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = ["GLOB_CHARS", "glob_match", "is_glob", "session_glob_match"]

GLOB_CHARS: Final = frozenset("*?[")
"""Characters that make a session pattern a glob rather than an exact id."""


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` matches more than the one name it spells.

    A pattern without ``*``, ``?`` or ``[`` matches exactly itself; a customer
    token should carry only such patterns (see ``threadline token``).
    """
    return not GLOB_CHARS.isdisjoint(pattern)


def glob_match(glob: str, name: str) -> bool:
    """Match a stream glob against a name (``*`` stays within a ``/`` segment)."""
    return _stream_regex(glob).fullmatch(name) is not None


def session_glob_match(glob: str, session_id: str) -> bool:
    """Match a session glob against a session id (only ``**`` crosses ``:``)."""
    return _session_regex(glob).fullmatch(session_id) is not None


@lru_cache(maxsize=1024)
def _stream_regex(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=1024)
def _session_regex(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^:]*")
            i += 1
        elif c == "?":
            out.append("[^:]")
            i += 1
        elif c == "[":
            end = _class_end(glob, i)
            if end < 0:
                out.append(re.escape(c))  # an unclosed "[" is literal, as in fnmatch
                i += 1
            else:
                out.append(_class_regex(glob[i + 1 : end]))
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_end(glob: str, start: int) -> int:
    """Index of the ``]`` closing the class opened at ``start``, or -1 (as fnmatch)."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1  # a "]" first in the class is a member, not the end
    return glob.find("]", j)


def _class_regex(body: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    # Each member is escaped on its own, so no character of the glob can form a
    # regex construct (or one of the set operations re warns about).
    items: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low <= high:  # fnmatch drops reversed ranges
                items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(body[i]))
            i += 1
    members = "".join(items)
    if negate:
        return f"[^{members}:]"
    if not members:
        return "(?!)"
    return f"(?!:)[{members}]"
