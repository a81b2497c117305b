"""How a publish writes: envelopes with their chain hashes, per view, and the
derived state that commits with them (folded messages, the working state).

Pure functions over a :class:`~threadline.storage.index.Txn`, used by
:class:`~threadline.server.sessions.SessionManager` inside its transaction.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ..protocol.actors import Actor
from ..protocol.audit import canonical_json, data_digest, event_hash
from ..protocol.events import GENESIS_HASH, Event, EventDraft
from ..protocol.offsets import Offset
from ..protocol.payloads import Visibility
from ..protocol.records import OpenMessage
from ..protocol.state import SessionState
from ..storage.index import MAX_SCAN, Txn

__all__ = [
    "ALL_PREFIX",
    "CLOSED",
    "CURSORS",
    "ENDED",
    "OPEN",
    "FULL_PREFIX",
    "IDS",
    "MEMBERS",
    "MESSAGES",
    "PARTICIPANTS",
    "SESSIONS",
    "STATE",
    "UNREAD",
    "StoredEvents",
    "WorkingState",
    "draft_digest",
    "envelope",
    "count_unread",
    "fold_message",
    "ids_key",
    "index_message",
    "join",
    "recount_unread",
    "staff_position",
    "store_event",
    "update_document",
]

FULL_PREFIX: Final = "session:"
ALL_PREFIX: Final = "session.all:"

# Index tables
SESSIONS: Final = "sessions"  # {id} -> session document
STATE: Final = "state"  # {id} -> working state (SessionState + chain tips)
IDS: Final = "ids"  # {id}\n{actor}\n{event id} -> the original offsets
MESSAGES: Final = "messages"  # {id}\n{full start offset} -> folded message
CURSORS: Final = "cursors"  # {id}\n{participant} -> offset in their view
MEMBERS: Final = "members"  # {participant}\n{id} -> membership
PARTICIPANTS: Final = "participants"  # {id}\n{participant} -> {"staff": bool}
UNREAD: Final = "unread"  # {id}\n{participant} -> count of unread messages
ENDED: Final = "ended"  # {id}\n{m|r}\n{message or run id} -> its visibility
OPEN: Final = "open"  # {id} -> b"" while a message or run is open (the lease)
CLOSED: Final = "closed"  # {id} -> the ts of its session.closed (retention)

_STAFF_LOOKAHEAD: Final = 1000  # staff-view events searched for a server event

_MESSAGE_TYPES: Final = frozenset(
    {"message", "message.start", "message.delta", "message.end"}
)


@dataclass(slots=True)
class WorkingState:
    """A session's derived state as of the working tail (cached across writes)."""

    state: SessionState
    full_tail: Offset
    all_tail: Offset
    tip: str = GENESIS_HASH
    all_tip: str = GENESIS_HASH
    all_starts: dict[str, str] = field(default_factory=dict)
    """Open messages visible to all: their start offset in the customer view."""
    saved_messages: int = 0
    """How many of ``state.ended_messages`` (in order) have their ENDED entry."""
    saved_runs: int = 0
    """How many of ``state.ended_runs`` (in order) have their ENDED entry."""
    members: set[str] = field(default_factory=set)
    """Participants known to have their membership entries (see :func:`join`)."""
    open_indexed: bool | None = None
    """Whether the OPEN entry exists (``None``: not known since loading)."""
    full_generation: int = 0
    all_generation: int = 0
    """The generations the two views' logs append in now (0: their tails'),
    set when the state is loaded. They differ from the tails' after a restore
    (:mod:`threadline.storage.sqlite_backup`) continued the logs."""

    def to_json(self) -> bytes:
        """The working state without the ended ids, which grow with the
        session's age and are stored apart (:meth:`save_ended`)."""
        return orjson.dumps(
            {
                "state": self.state.to_json(ended=False),
                "full_tail": str(self.full_tail),
                "all_tail": str(self.all_tail),
                "tip": self.tip,
                "all_tip": self.all_tip,
                "all_starts": self.all_starts,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> WorkingState:
        """The stored working state; it knows no ended ids until
        :meth:`load_ended` (reads that only show what is open skip it)."""
        obj = orjson.loads(raw)
        return cls(
            SessionState.from_json(obj["state"]),
            Offset.parse(obj["full_tail"]),
            Offset.parse(obj["all_tail"]),
            obj["tip"],
            obj["all_tip"],
            obj["all_starts"],
        )

    def load_ended(self, txn: Txn, session_id: str) -> None:
        """Fill in the ended ids from their ENDED entries.

        A working state stored with its ended ids inline (before they were
        kept apart) keeps them; they are written out by the next
        :meth:`save_ended`.
        """
        inline_messages = self.state.ended_messages
        inline_runs = self.state.ended_runs
        messages: dict[str, Visibility] = {}
        runs: dict[str, Visibility] = {}
        prefix = f"{session_id}\n"
        after: str | None = None
        while True:
            page = txn.scan(ENDED, prefix, after=after, limit=MAX_SCAN)
            for key, value in page:
                kind, _, ident = key[len(prefix) :].partition("\n")
                seen = messages if kind == "m" else runs
                seen[ident] = "staff" if value == b"staff" else "all"
            if len(page) < MAX_SCAN:
                break
            after = page[-1][0]
        self.saved_messages, self.saved_runs = len(messages), len(runs)
        for ident, visibility in inline_messages.items():
            messages.setdefault(ident, visibility)
        for ident, visibility in inline_runs.items():
            runs.setdefault(ident, visibility)
        self.state.ended_messages, self.state.ended_runs = messages, runs

    def save_open(self, txn: Txn, session_id: str) -> None:
        """Keep the OPEN entry, which lists the session for the lease sweep
        while one of its messages or runs is open."""
        is_open = bool(self.state.messages or self.state.runs)
        if is_open != self.open_indexed:
            txn.put(OPEN, session_id, b"" if is_open else None)
            self.open_indexed = is_open

    def save_ended(self, txn: Txn, session_id: str) -> None:
        """Write an ENDED entry for each id ended since the last save."""
        for kind, ended, saved in (
            ("m", self.state.ended_messages, self.saved_messages),
            ("r", self.state.ended_runs, self.saved_runs),
        ):
            if len(ended) > saved:
                for ident, visibility in itertools.islice(ended.items(), saved, None):
                    txn.put(
                        ENDED, f"{session_id}\n{kind}\n{ident}", visibility.encode()
                    )
        self.saved_messages = len(self.state.ended_messages)
        self.saved_runs = len(self.state.ended_runs)


@dataclass(slots=True)
class StoredEvents:
    """The events one publish stored, per view."""

    full: list[bytes] = field(default_factory=list)
    visible: list[bytes] = field(default_factory=list)
    completed: list[tuple[str, str]] = field(default_factory=list)
    """Messages completed by this publish: (author id, visibility), for unread."""


def join(txn: Txn, session_id: str, participant: str, *, staff: bool) -> None:
    """Record a participant of the session (for "my sessions" and unread)."""
    if txn.get(MEMBERS, f"{participant}\n{session_id}") is None:
        txn.put(MEMBERS, f"{participant}\n{session_id}", b"{}")
        flag = b'{"staff":true}' if staff else b'{"staff":false}'
        txn.put(PARTICIPANTS, f"{session_id}\n{participant}", flag)


def update_document(txn: Txn, session_id: str, data: dict[str, Any]) -> None:
    """Apply a ``session.updated`` to the session's document, in its commit.

    ``customer`` moves the session to that customer (who reaches it, and
    finds it in "my sessions", from then on); the other fields are routing
    metadata, each replacing its earlier value.
    """
    raw = txn.get(SESSIONS, session_id)
    if raw is None:
        return
    document = orjson.loads(raw)
    for name, value in data.items():
        if name == "customer":
            document["customer"] = value
            join(txn, session_id, value, staff=False)
        else:
            document["metadata"][name] = value
    txn.put(SESSIONS, session_id, orjson.dumps(document))


def count_unread(txn: Txn, session_id: str, completed: list[tuple[str, str]]) -> None:
    """Add completed messages to every other participant's unread counter.

    Written in the same commit as the messages. A customer never counts a
    staff message.
    """
    if not completed:
        return
    page = txn.scan(PARTICIPANTS, f"{session_id}\n", limit=1000)
    for key, raw in page:
        participant = key.split("\n", 1)[1]
        staff = orjson.loads(raw)["staff"]
        added = sum(
            1
            for author, visibility in completed
            if author != participant and (staff or visibility == "all")
        )
        if added:
            unread_key = f"{session_id}\n{participant}"
            current = int(txn.get(UNREAD, unread_key) or b"0")
            txn.put(UNREAD, unread_key, str(current + added).encode())


def recount_unread(
    txn: Txn, session_id: str, participant: str, after: Offset, staff: bool
) -> int:
    """Messages the participant can see, by someone else, after ``after``."""
    count = 0
    page_after: str | None = None
    while True:
        page = txn.scan(MESSAGES, f"{session_id}\n", after=page_after, limit=1000)
        for _, raw in page:
            folded = orjson.loads(raw)
            end = folded["end_offset"] if staff else folded["all_end_offset"]
            if end is None or folded["actor"]["id"] == participant:
                continue
            if Offset.parse(end) > after:
                count += 1
        if len(page) < 1000:
            return count
        page_after = page[-1][0]


def staff_position(txn: Txn, session_id: str, offset: Offset) -> str | None:
    """The staff-view offset of the customer-view event at ``offset``.

    An event a participant published is found through its idempotency entry;
    one the server added (a ``floor_lost`` end) by its id, looking forward in
    the staff view from the same position (the customer view is the staff
    view less its staff events, so it is never earlier there). ``None`` if
    it is not within ``_STAFF_LOOKAHEAD`` events.
    """
    before = Offset(offset.generation, offset.position - 1)
    records = txn.read(ALL_PREFIX + session_id, before, limit=1)
    if not records:
        return None
    envelope = orjson.loads(records[0].data)
    event_id, actor_id = envelope["id"], envelope["actor"]["id"]
    entry = txn.get(IDS, f"{session_id}\n{actor_id}\n{event_id}")
    if entry is not None:
        full: str | None = orjson.loads(entry)["full"]
        return full
    start = txn.info(FULL_PREFIX + session_id).offset_at(offset.position - 1)
    for record in txn.read(FULL_PREFIX + session_id, start, limit=_STAFF_LOOKAHEAD):
        found = orjson.loads(record.data)
        if found["id"] == event_id and found["actor"]["id"] == actor_id:
            return str(record.offset)
    return None


def draft_digest(draft: EventDraft) -> str:
    """What a retry must repeat exactly: the draft's canonical JSON, hashed."""
    return hashlib.sha256(canonical_json(draft.to_json())).hexdigest()


def ids_key(session_id: str, actor: Actor, event_id: str) -> str:
    return f"{session_id}\n{actor.id}\n{event_id}"


def store_event(
    txn: Txn,
    session_id: str,
    working: WorkingState,
    stored: StoredEvents,
    actor: Actor,
    draft: EventDraft,
    ts: str,
    *,
    visible_data: dict[str, Any] | None = None,
) -> tuple[Offset, Offset | None]:
    """Make the envelope(s) of one accepted draft, fold it in, index it.

    ``visible_data`` is the customer view's ``data`` when it differs (a
    redaction names its target's customer-view offset).
    """
    visibility = draft.visibility
    assert visibility is not None
    full_tail, all_tail = working.full_tail, working.all_tail
    full_offset = Offset(
        working.full_generation or full_tail.generation, full_tail.position + 1
    )
    all_offset = None
    if visibility == "all":
        all_offset = Offset(
            working.all_generation or all_tail.generation, all_tail.position + 1
        )
    message_id = draft.data.get("message_id") if draft.type in _MESSAGE_TYPES else None
    full_data, all_data = draft.data, visible_data or draft.data
    opened = None
    if message_id is not None:
        # Every message event carries its message's start offset (per view).
        opened = working.state.messages.get(message_id)
        if draft.type in ("message", "message.start") or opened is None:
            full_start, all_start = str(full_offset), str(all_offset)
        else:
            full_start = str(opened.start_offset)
            all_start = working.all_starts.get(message_id, "")
        full_data = {**draft.data, "start_offset": full_start}
        if all_offset is not None:
            all_data = {**draft.data, "start_offset": all_start}
    event = envelope(draft, full_data, full_offset, ts, actor, working.tip)
    stored.full.append(event.serialize())
    if draft.type == "message.end" and opened is not None:
        fold_message(txn, session_id, working, opened, event, all_offset)
        stored.completed.append((opened.producer.id, opened.visibility))
    elif draft.type == "message":
        index_message(txn, session_id, event, all_offset, draft.data["parts"])
        stored.completed.append((actor.id, visibility))
    working.state.apply(event)
    working.full_tail, working.tip = full_offset, event.hash
    if all_offset is None:
        return full_offset, None
    visible = envelope(draft, all_data, all_offset, ts, actor, working.all_tip)
    stored.visible.append(visible.serialize())
    working.all_tail, working.all_tip = all_offset, visible.hash
    if message_id is not None:
        if draft.type == "message.start":
            working.all_starts[message_id] = str(all_offset)
        elif draft.type == "message.end":
            working.all_starts.pop(message_id, None)
    return full_offset, all_offset


def envelope(
    draft: EventDraft,
    data: dict[str, Any],
    offset: Offset,
    ts: str,
    actor: Actor,
    prev_hash: str,
) -> Event:
    assert draft.visibility is not None
    digest = data_digest(data)
    chained = event_hash(
        prev_hash=prev_hash,
        offset=str(offset),
        ts=ts,
        type=draft.type,
        actor=actor.to_json(),
        visibility=draft.visibility,
        id=draft.id,
        data_sha256=digest,
    )
    stored = EventDraft(draft.type, draft.id, data, draft.visibility, draft.trace_id)
    return stored.to_event(
        offset=offset, ts=ts, actor=actor, prev_hash=prev_hash, hash=chained
    )


def fold_message(
    txn: Txn,
    session_id: str,
    working: WorkingState,
    opened: OpenMessage,
    end: Event,
    all_offset: Offset | None,
) -> None:
    """At ``message.end``, store the folded message (compaction in O(messages))."""
    folded = {
        "message_id": opened.message_id,
        "role": opened.role,
        "actor": opened.producer.to_json(),
        "visibility": opened.visibility,
        "run_id": opened.run_id,
        "parts": [part.to_json() for part in opened.fold.parts()],
        "status": end.data["status"],
        "reason": end.data.get("reason"),
        "start_offset": str(opened.start_offset),
        "end_offset": str(end.offset),
        "all_start_offset": working.all_starts.get(opened.message_id),
        "all_end_offset": None if all_offset is None else str(all_offset),
        "deltas": opened.next_seq,  # compact reads skip whole spans by count
    }
    key = f"{session_id}\n{opened.start_offset}"
    txn.put(MESSAGES, key, orjson.dumps(folded))


def index_message(
    txn: Txn,
    session_id: str,
    event: Event,
    all_offset: Offset | None,
    parts: list[Any],
) -> None:
    """A complete ``message`` is its own folded message."""
    offset = str(event.offset)
    folded = {
        "message_id": event.data["message_id"],
        "role": event.data["role"],
        "actor": event.actor.to_json(),
        "visibility": event.visibility,
        "run_id": event.data.get("run_id"),
        "parts": parts,
        "status": "complete",
        "reason": None,
        "start_offset": offset,
        "end_offset": offset,
        "all_start_offset": None if all_offset is None else str(all_offset),
        "all_end_offset": None if all_offset is None else str(all_offset),
    }
    txn.put(MESSAGES, f"{session_id}\n{offset}", orjson.dumps(folded))
