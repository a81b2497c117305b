"""The compact view of a session log: streamed messages folded, the rest as stored.

A compact read from offset X returns, in offset order (PRODUCT.md § Streaming
and compaction):

(a) a message whose start is after X and that ended by the read's tail, once,
    as a ``message`` event at its ``message.end`` offset, with all its
    ``parts`` (and ``status`` / ``reason`` when it did not complete);
(b) a message whose start is after X and that is still open, as a
    ``message.start`` carrying its ``parts`` so far, at its latest delta's
    offset (live deltas follow);
(c) a message whose start is at or before X as one coalesced
    ``message.delta`` at its last delta's offset, whose ``parts`` list what
    each part gained since X, then its ``message.end`` (as stored) if it ended;

and every other event unchanged at its offset: a ``message`` published whole,
notes, control, run and tool events, ``x.*``. Every message event carries
``message_id`` and ``start_offset``.

An event this module makes (a ``message`` of (a), a ``message.start`` of (b),
a ``message.delta`` of (c)) is *compacted*: its envelope has ``"compacted":
true``. It takes ``offset``, ``ts``, ``id``, ``trace_id``, ``prev_hash`` and
``hash`` from the stored event whose offset it occupies (the ``message.end``,
the latest delta), and ``actor`` and ``visibility`` from its message. Its
``hash`` therefore does not cover its ``data``: a compact read is a view, not
the log, and the audit chain is verified on raw reads. The carried ``hash``
still names a position in the chain: the last event of a compact read carries
the chain tip, which the next raw event's ``prev_hash`` repeats.

**Resuming.** A compacted event may stand for stored events before earlier
events of the same read (a message started before a note and ended after
it). Resuming from the offset of such an earlier event would lose the start
of the message, so each result says whether it is :attr:`~Compacted.resumable`:
whether a reader holding every result up to it may continue from its offset.
The last result always is.

**Cost.** :func:`compact` decodes only what it emits: it never decodes the
deltas of a message whose parts the caller passes in (the folded messages the
index keeps, the open messages' parts so far), and :func:`plan_reads` tells
the caller which stored events it may leave unread, so that a read of
completed messages costs O(messages), not O(deltas).

This module is sans I/O and standard library only: stored envelopes (bytes)
in, compacted envelopes (JSON objects) out; the caller chooses the JSON
decoder and encoder.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import orjson  # a pure codec and a core dependency: no I/O

from .offsets import Offset
from .parts import TEXT_PART_TYPES, PartsFold, parse_part_body

__all__ = [
    "STREAMED_TYPES",
    "Compacted",
    "Entry",
    "Span",
    "compact",
    "peek",
    "plan_reads",
]

JSONObject: TypeAlias = dict[str, Any]
Decode: TypeAlias = Callable[[bytes], Any]
Encode: TypeAlias = Callable[[JSONObject], bytes]

STREAMED_TYPES: Final = frozenset({"message.start", "message.delta", "message.end"})
"""The types a compact read folds (a ``message`` is compact already)."""

_MESSAGE_TYPES: Final = STREAMED_TYPES | {"message"}

# Event.serialize() writes a fixed layout up to ``type``: the offset and ts
# are fixed width, so the type starts at a fixed byte.
_HEAD: Final = b'{"v":1,"offset":"'
_TYPE_KEY: Final = b'","type":"'
_TYPE_AT: Final = len(_HEAD) + 33 + len(b'","ts":"') + 27 + len(_TYPE_KEY)
_START_KEY: Final = b'"start_offset":"'
_OFFSET_WIDTH: Final = 33


# The deltas of a message share its start offset: parse each text once.
_parse_start = functools.lru_cache(maxsize=4096)(Offset.parse)


def _dumps(obj: JSONObject) -> bytes:
    try:
        text = orjson.dumps(obj)
        # orjson writes NaN and the infinities as null: let json refuse them.
        if b"null" not in text:
            return text
    except orjson.JSONEncodeError:  # an integer past 64 bits
        pass
    return json.dumps(
        obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def peek(raw: bytes) -> tuple[str, str | None] | None:
    """The ``type`` and ``data.start_offset`` of a stored envelope, without decoding it.

    Reads the layout :meth:`~threadline.protocol.events.Event.serialize`
    writes: ``type`` at a fixed byte, and a message event's ``start_offset``
    as the last key of its ``data``. (Inside JSON strings a quote is escaped,
    so ``"start_offset":"`` only ever appears as a key, and the server writes
    its own last.)

    Returns:
        ``(type, start_offset)``, ``start_offset`` being ``None`` for other
        types or when absent; ``None`` when ``raw`` is not in that layout
        (then decode it).
    """
    if not raw.startswith(_HEAD) or raw[_TYPE_AT - len(_TYPE_KEY) : _TYPE_AT] != (
        _TYPE_KEY
    ):
        return None
    end = raw.find(b'"', _TYPE_AT)
    if end < 0:
        return None
    event_type = raw[_TYPE_AT:end].decode()
    if event_type not in _MESSAGE_TYPES:
        return event_type, None
    at = raw.rfind(_START_KEY)
    if at < 0:
        return event_type, None
    at += len(_START_KEY)
    return event_type, raw[at : at + _OFFSET_WIDTH].decode()


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored event after the read's offset, described without decoding it."""

    offset: Offset
    """Its offset in the view read."""

    type: str
    """Its ``type``."""

    start_offset: Offset | None
    """A message event's ``data.start_offset`` (its message's start in this
    view); ``None`` for other events."""

    raw: bytes
    """The stored envelope: passed through untouched, or decoded on demand."""

    @classmethod
    def from_record(
        cls, offset: Offset, raw: bytes, decode: Decode = json.loads
    ) -> Entry:
        """Describe a stored envelope, peeking when it can, decoding when it must.

        Raises:
            InvalidOffset: its ``start_offset`` is not an offset.
        """
        peeked = peek(raw)
        if peeked is None:
            envelope = decode(raw)
            event_type = envelope["type"]
            start = None
            if event_type in _MESSAGE_TYPES:
                start = envelope["data"].get("start_offset")
            peeked = event_type, start
        event_type, start = peeked
        return cls(
            offset, event_type, None if start is None else _parse_start(start), raw
        )


@dataclass(frozen=True, slots=True)
class Compacted:
    """One event of a compact read."""

    offset: Offset
    """Its offset: that of the stored event it stands in for."""

    entry: Entry
    """The stored event at :attr:`offset`."""

    envelope: JSONObject | None
    """The compacted envelope; ``None`` when the stored event goes out as it is."""

    resumable: bool
    """Whether a reader holding every event of the read up to this one may
    resume from :attr:`offset` without a gap or a duplicate."""

    def serialize(self, encode: Encode = _dumps) -> bytes:
        """The envelope's JSON: the stored bytes, or ``encode(envelope)``."""
        return self.entry.raw if self.envelope is None else encode(self.envelope)


# Folding


@dataclass(slots=True)
class _Out:
    offset: Offset
    first: Offset
    """The earliest stored event this result stands for."""
    entry: Entry
    envelope: JSONObject | None


def _envelope(
    at: JSONObject,
    event_type: str,
    actor: JSONObject,
    visibility: str,
    data: JSONObject,
) -> JSONObject:
    """A compacted envelope in the place of the stored event ``at``."""
    envelope: JSONObject = {
        "v": 1,
        "offset": at["offset"],
        "ts": at["ts"],
        "type": event_type,
        "id": at["id"],
        "actor": actor,
        "visibility": visibility,
        "data": data,
    }
    if "trace_id" in at:
        envelope["trace_id"] = at["trace_id"]
    envelope["compacted"] = True
    envelope["prev_hash"] = at["prev_hash"]
    envelope["hash"] = at["hash"]
    return envelope


def _message_data(
    start: JSONObject, parts: list[JSONObject], extra: JSONObject
) -> JSONObject:
    """A ``message.start``'s data with ``parts`` (and ``extra``) added."""
    data = {key: value for key, value in start.items() if key != "start_offset"}
    data["parts"] = parts
    data.update(extra)
    data["start_offset"] = start["start_offset"]
    return data


def _fold(deltas: Iterable[JSONObject]) -> list[JSONObject]:
    """All the parts the deltas build (as :class:`SessionState` folds them)."""
    fold = PartsFold()
    for data in deltas:
        index, part_type = data["part_index"], data["part_type"]
        if not fold.fits(index, part_type):
            continue  # never stored: validation refuses it
        if part_type in TEXT_PART_TYPES:
            fold.add_text(index, part_type, data["text"])
        else:
            fold.set_part(index, parse_part_body(part_type, data["data"], "data"))
    return [part.to_json() for part in fold.parts()]


def _coalesce(deltas: Iterable[JSONObject]) -> list[JSONObject]:
    """What each part gained: text appended, or its latest value; by part index."""
    gained: dict[int, JSONObject] = {}
    chunks: dict[int, list[str]] = {}
    for data in deltas:
        index, part_type = data["part_index"], data["part_type"]
        if part_type in TEXT_PART_TYPES:
            chunks.setdefault(index, []).append(data["text"])
            gained[index] = {"part_index": index, "part_type": part_type}
        else:
            gained[index] = {
                "part_index": index,
                "part_type": part_type,
                "data": data["data"],
            }
    for index, texts in chunks.items():
        gained[index]["text"] = "".join(texts)
    return [gained[index] for index in sorted(gained)]


@dataclass(slots=True)
class _Message:
    """The stored events of one message within the read."""

    resumed: bool
    """Its start is at or before the read's offset: case (c)."""

    parts: Sequence[JSONObject] | None
    """Its parts as of the tail, if the caller knows them (then deltas are skipped)."""

    start: Entry | None = None
    latest: Entry | None = None
    end: Entry | None = None
    deltas: list[Entry] = field(default_factory=list)

    def receive(self, entry: Entry) -> None:
        if entry.type == "message.end":
            self.end = entry
            return
        self.latest = entry
        if entry.type == "message.start":
            self.start = entry
        elif self.parts is None:
            self.deltas.append(entry)

    def emit(self, decode: Decode) -> list[_Out]:
        if self.resumed:
            return self._emit_resumed(decode)
        if self.start is None or self.latest is None:
            raise ValueError(
                "the entries lack the message.start of a message started after "
                "the read's offset"
            )
        start = decode(self.start.raw)
        parts = (
            list(self.parts)
            if self.parts is not None
            else _fold(decode(delta.raw)["data"] for delta in self.deltas)
        )
        if self.end is not None:  # (a)
            end = decode(self.end.raw)
            extra = {}
            if end["data"]["status"] != "complete":
                extra = {"status": end["data"]["status"]}
                if "reason" in end["data"]:
                    extra["reason"] = end["data"]["reason"]
            data = _message_data(start["data"], parts, extra)
            envelope = _envelope(
                end, "message", start["actor"], start["visibility"], data
            )
            return [_Out(self.end.offset, self.start.offset, self.end, envelope)]
        # (b)
        at = start if self.latest is self.start else decode(self.latest.raw)
        data = _message_data(start["data"], parts, {})
        envelope = _envelope(
            at, "message.start", start["actor"], start["visibility"], data
        )
        return [_Out(self.latest.offset, self.start.offset, self.latest, envelope)]

    def _emit_resumed(self, decode: Decode) -> list[_Out]:  # (c)
        out = []
        if self.deltas:
            decoded = [decode(delta.raw) for delta in self.deltas]
            last = decoded[-1]
            data = {
                "message_id": last["data"]["message_id"],
                "seq": last["data"]["seq"],
                "parts": _coalesce(event["data"] for event in decoded),
                "start_offset": last["data"]["start_offset"],
            }
            envelope = _envelope(
                last, "message.delta", last["actor"], last["visibility"], data
            )
            first, latest = self.deltas[0], self.deltas[-1]
            out.append(_Out(latest.offset, first.offset, latest, envelope))
        if self.end is not None:
            out.append(_Out(self.end.offset, self.end.offset, self.end, None))
        return out


def compact(
    entries: Iterable[Entry],
    *,
    after: Offset | None,
    parts: Mapping[Offset, Sequence[JSONObject]] | None = None,
    decode: Decode = json.loads,
) -> list[Compacted]:
    """The compact view of the stored events after ``after``, in offset order.

    Args:
        entries: The stored events after ``after`` up to the read's tail, in
            offset order, all of one view. Every event must be there except
            the deltas of a message listed in ``parts``, which may be left
            out (:func:`plan_reads` says which may be left unread) — but not
            an open message's latest delta.
        after: The read's offset; ``None`` reads from the start.
        parts: The parts, as of the read's tail, of messages started after
            ``after`` (JSON objects, by start offset): the folded messages of
            the index, the open messages' parts so far. Their deltas are
            never decoded. Without it, the deltas are folded.
        decode: Decodes a stored envelope (``json.loads``, ``orjson.loads``).

    Returns:
        The read's events. Compacted ones carry their envelope; the others go
        out as stored.

    Raises:
        ValueError: ``entries`` are not after ``after`` in offset order, or
            lack the ``message.start`` of a message started after ``after``.
    """
    known = parts or {}
    messages: dict[Offset, _Message] = {}
    found: list[_Out] = []
    floor = after
    for entry in entries:
        if floor is not None and entry.offset <= floor:
            raise ValueError("entries must follow the read's offset, in offset order")
        floor = entry.offset
        start = entry.start_offset
        if entry.type not in STREAMED_TYPES or start is None:
            found.append(_Out(entry.offset, entry.offset, entry, None))
            continue
        message = messages.get(start)
        if message is None:
            resumed = after is not None and start <= after
            message = messages[start] = _Message(
                resumed, None if resumed else known.get(start)
            )
        message.receive(entry)
    for message in messages.values():
        found.extend(message.emit(decode))
    found.sort(key=lambda out: out.offset)
    # Resumable: no later result stands for a stored event at or before it.
    results: list[Compacted] = []
    earliest_later: Offset | None = None
    for out in reversed(found):
        resumable = earliest_later is None or earliest_later > out.offset
        results.append(Compacted(out.offset, out.entry, out.envelope, resumable))
        if earliest_later is None or out.first < earliest_later:
            earliest_later = out.first
    results.reverse()
    return results


# Planning reads


@dataclass(frozen=True, slots=True)
class Span:
    """Where the events of a message started after the read's offset lie."""

    start: int
    """The position of its first event (``message.start``, or the ``message``)."""

    end: int | None
    """The position of its last event; ``None`` while it is open (its events
    then lie up to the tail)."""

    events: int | None
    """How many events it has (start, deltas, end), if known."""


def plan_reads(after: int, tail: int, spans: Iterable[Span]) -> list[tuple[int, int]]:
    """The positions a compact read must read, as inclusive ranges in order.

    Group the messages into runs of overlapping spans. A run whose positions
    are all events of its messages (their counts add up to its length) holds
    nothing else, so only the first and last event of each message need
    reading, plus, for a single open message, the run's last position (its
    latest delta). Everything else in ``(after, tail]`` is read.

    Args:
        after: The position read from (0 for the start).
        tail: The read's tail position.
        spans: Messages whose parts the caller passes to :func:`compact`;
            those starting at or before ``after`` are ignored. A closed span
            must end at or before ``tail``.
    """
    ordered = sorted((s for s in spans if s.start > after), key=lambda s: s.start)
    needed: list[tuple[int, int]] = []
    done = after
    index = 0
    while index < len(ordered):
        run = [ordered[index]]
        high = _last(ordered[index], tail)
        index += 1
        while index < len(ordered) and ordered[index].start <= high:
            run.append(ordered[index])
            high = max(high, _last(ordered[index], tail))
            index += 1
        low = run[0].start
        if done < low - 1:
            needed.append((done + 1, low - 1))
        needed += _run_reads(run, low, high)
        done = high
    if done < tail:
        needed.append((done + 1, tail))
    return _merge(needed)


def _last(span: Span, tail: int) -> int:
    return tail if span.end is None else span.end


def _run_reads(run: list[Span], low: int, high: int) -> list[tuple[int, int]]:
    counts = [span.events for span in run]
    if None in counts or sum(c for c in counts if c is not None) != high - low + 1:
        return [(low, high)]
    closed = [span.end for span in run if span.end is not None]
    opened = [span for span in run if span.end is None]
    if len(opened) > 1 or (opened and max(closed, default=low - 1) >= high):
        return [(low, high)]  # whose latest delta is where is unknown
    needed = [(span.start, span.start) for span in run]
    needed += [(end, end) for end in closed]
    if opened:
        needed.append((high, high))
    return needed


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
