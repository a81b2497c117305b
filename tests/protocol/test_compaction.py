"""The compact view, sans I/O: folding, resumable points, peeking, read plans."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from threadline.protocol.actors import SERVER, Actor
from threadline.protocol.compaction import (
    Compacted,
    Entry,
    Span,
    compact,
    peek,
    plan_reads,
)
from threadline.protocol.events import GENESIS_HASH, Event, format_ts
from threadline.protocol.offsets import Offset
from threadline.protocol.parts import PartsFold, parse_part_body

AI = Actor("ai_1", "ai", "Assistant", "worker-1")
CUSTOMER = Actor("cust_42", "customer", "Dana", "tab-7f3a")
GENERATION = 5
T0 = 1_780_000_000.0


class Log:
    """A stored session log (one view), as the server writes it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.starts: dict[str, Offset] = {}

    def add(
        self,
        type_: str,
        data: dict[str, Any],
        actor: Actor = AI,
        visibility: str = "all",
        trace_id: str | None = None,
    ) -> Event:
        offset = Offset(GENERATION, len(self.events) + 1)
        if type_ in ("message", "message.start"):
            self.starts[data["message_id"]] = offset
        if type_.startswith("message"):
            data = {**data, "start_offset": str(self.starts[data["message_id"]])}
        prev = self.events[-1].hash if self.events else GENESIS_HASH
        event = Event(
            offset=offset,
            ts=format_ts(T0 + len(self.events)),
            type=type_,
            id=f"e{len(self.events)}",
            actor=actor,
            visibility=visibility,  # type: ignore[arg-type]
            data=data,
            prev_hash=prev,
            hash=hashlib.sha256(str(offset).encode()).hexdigest(),
            trace_id=trace_id,
        )
        self.events.append(event)
        return event

    def start(self, mid: str, **extra: Any) -> Event:
        return self.add(
            "message.start", {"message_id": mid, "role": "assistant", **extra}
        )

    def text(self, mid: str, seq: int, text: str, index: int = 0) -> Event:
        data = {"message_id": mid, "seq": seq, "part_index": index}
        return self.add("message.delta", {**data, "part_type": "text", "text": text})

    def card(self, mid: str, seq: int, value: Any, index: int) -> Event:
        data = {"message_id": mid, "seq": seq, "part_index": index}
        body = {"data": value}
        return self.add(
            "message.delta", {**data, "part_type": "data-card", "data": body}
        )

    def end(self, mid: str, status: str = "complete", **extra: Any) -> Event:
        actor = AI if status == "complete" else SERVER
        data = {"message_id": mid, "status": status, **extra}
        return self.add("message.end", data, actor=actor)

    def message(self, mid: str, text: str) -> Event:
        parts = [{"type": "text", "text": text}]
        data = {"message_id": mid, "role": "user", "parts": parts}
        return self.add("message", data, actor=CUSTOMER)

    def note(self, text: str) -> Event:
        return self.add("note", {"text": text}, visibility="staff")

    def entries(self, after: int = 0, tail: int | None = None) -> list[Entry]:
        return [
            Entry.from_record(e.offset, e.serialize()) for e in self.events[after:tail]
        ]

    def offset(self, position: int) -> Offset | None:
        return None if position == 0 else Offset(GENERATION, position)


def known(log: Log, after: int, tail: int) -> tuple[dict[Offset, Any], list[Span]]:
    """What the index holds as of ``tail``: parts and spans of later messages."""
    folds: dict[Offset, PartsFold] = {}
    whole: dict[Offset, Any] = {}
    counts: dict[Offset, int] = {}
    ends: dict[Offset, int] = {}
    for event in log.events[:tail]:
        data = event.data
        start = Offset.parse(data["start_offset"]) if "start_offset" in data else None
        if event.type == "message":
            whole[event.offset] = data["parts"]
            counts[event.offset], ends[event.offset] = 1, event.offset.position
        elif event.type == "message.start":
            folds[event.offset], counts[event.offset] = PartsFold(), 1
        elif event.type == "message.delta":
            assert start is not None
            counts[start] += 1
            if data["part_type"] == "text":
                folds[start].add_text(data["part_index"], "text", data["text"])
            else:
                body = parse_part_body(data["part_type"], data["data"], "data")
                folds[start].set_part(data["part_index"], body)
        elif event.type == "message.end":
            assert start is not None
            counts[start] += 1
            ends[start] = event.offset.position
    parts = {s: [p.to_json() for p in fold.parts()] for s, fold in folds.items()}
    parts.update(whole)
    chosen = {s: p for s, p in parts.items() if s.position > after}
    spans = [Span(s.position, ends.get(s), counts[s]) for s in chosen]
    return chosen, spans


def read(log: Log, after: int, tail: int | None = None) -> list[Compacted]:
    """A compact read of ``(after, tail]`` from every stored event, folding deltas."""
    return compact(log.entries(after, tail), after=log.offset(after))


def planned_read(log: Log, after: int, tail: int) -> list[Compacted]:
    """A compact read as the server makes it: known parts, only planned events."""
    parts, spans = known(log, after, tail)
    ranges = plan_reads(after, tail, spans)
    entries = [
        entry
        for entry in log.entries(after, tail)
        if any(low <= entry.offset.position <= high for low, high in ranges)
    ]
    return compact(entries, after=log.offset(after), parts=parts)


class Reader:
    """A UI: applies envelopes (raw or compact) to its messages."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.others: list[str] = []

    def apply(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope["data"]
        if kind == "message":
            parts = copy.deepcopy(data["parts"])
            status = data.get("status", "complete")
            self.messages[data["message_id"]] = {"parts": parts, "status": status}
        elif kind == "message.start":
            parts = copy.deepcopy(data.get("parts", []))
            self.messages[data["message_id"]] = {"parts": parts, "status": None}
        elif kind == "message.delta":
            parts = self.messages[data["message_id"]]["parts"]
            for gained in data["parts"] if "parts" in data else [data]:
                gain(parts, gained)
        elif kind == "message.end":
            self.messages[data["message_id"]]["status"] = data["status"]
        else:
            self.others.append(envelope["offset"])

    def apply_all(self, results: list[Compacted]) -> None:
        for result in results:
            self.apply(json.loads(result.serialize()))


def gain(parts: list[dict[str, Any]], gained: dict[str, Any]) -> None:
    index, part_type = gained["part_index"], gained["part_type"]
    if part_type == "text":
        if index == len(parts):
            parts.append({"type": "text", "text": ""})
        parts[index]["text"] += gained["text"]
    else:
        part = {"type": part_type, **gained["data"]}
        if index == len(parts):
            parts.append(part)
        else:
            parts[index] = part


def raw_reader(log: Log, tail: int | None = None) -> Reader:
    reader = Reader()
    for event in log.events[:tail]:
        reader.apply(event.to_json())
    return reader


def envelopes(results: list[Compacted]) -> list[dict[str, Any]]:
    return [json.loads(result.serialize()) for result in results]


# (a) completed messages


def test_completed_message_after_offset_is_one_message_at_its_end():
    """A message started after X and ended is one `message` at its end offset."""
    log = Log()
    log.start("m1", run_id="r1", metadata={"model": "x"})
    log.text("m1", 0, "He")
    log.text("m1", 1, "llo")
    end = log.end("m1")
    [result] = read(log, 0)
    assert result.offset == end.offset and result.resumable
    envelope = json.loads(result.serialize())
    assert envelope["type"] == "message" and envelope["compacted"] is True
    assert envelope["data"] == {
        "message_id": "m1",
        "role": "assistant",
        "run_id": "r1",
        "metadata": {"model": "x"},
        "parts": [{"type": "text", "text": "Hello"}],
        "start_offset": str(log.events[0].offset),
    }
    assert envelope["actor"] == AI.to_json() and envelope["visibility"] == "all"


def test_compacted_envelope_takes_its_position_from_the_stored_event():
    """offset, ts, id, trace_id and both hashes are those of the event it replaces."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "x")
    end = log.add(
        "message.end", {"message_id": "m1", "status": "complete"}, trace_id="t-1"
    )
    envelope = envelopes(read(log, 0))[0]
    stored = end.to_json()
    for name in ("offset", "ts", "id", "trace_id", "prev_hash", "hash"):
        assert envelope[name] == stored[name]
    parsed = Event.parse(envelope)
    assert parsed.compacted and parsed.type == "message"


def test_message_that_did_not_complete_carries_status_and_reason():
    """A cancelled message keeps its status and reason; its actor is the producer."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "Let me")
    log.end("m1", "cancelled", reason="floor_lost")
    envelope = envelopes(read(log, 0))[0]
    assert envelope["data"]["status"] == "cancelled"
    assert envelope["data"]["reason"] == "floor_lost"
    assert envelope["actor"] == AI.to_json()
    Event.parse(envelope)


def test_message_ended_in_error_without_reason_carries_status_only():
    """A status without a reason adds no reason."""
    log = Log()
    log.start("m1")
    log.end("m1", "error")
    data = envelopes(read(log, 0))[0]["data"]
    assert data["status"] == "error" and "reason" not in data
    assert data["parts"] == []


def test_known_parts_spare_decoding_the_deltas():
    """With a message's parts given, its deltas are never decoded."""
    log = Log()
    log.start("m1")
    for seq in range(50):
        log.text("m1", seq, "token ")
    log.end("m1")
    decoded: list[bytes] = []

    def decode(raw: bytes) -> Any:
        decoded.append(raw)
        return json.loads(raw)

    parts = {log.events[0].offset: [{"type": "text", "text": "folded"}]}
    [result] = compact(log.entries(), after=None, parts=parts, decode=decode)
    assert len(decoded) == 2  # the start and the end
    assert json.loads(result.serialize())["data"]["parts"][0]["text"] == "folded"


def test_messages_published_whole_pass_through_unchanged():
    """A `message` event is compact already: its stored bytes go out as they are."""
    log = Log()
    event = log.message("u1", "Where is my order?")
    [result] = read(log, 0)
    assert result.envelope is None and result.serialize() == event.serialize()


# (b) open messages


def test_open_message_is_start_with_parts_at_its_latest_delta():
    """An open message started after X is a message.start with its parts so far."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "Your order ")
    latest = log.text("m1", 1, "is split")
    [result] = read(log, 0)
    envelope = json.loads(result.serialize())
    assert result.offset == latest.offset
    assert envelope["type"] == "message.start" and envelope["compacted"]
    assert envelope["data"]["parts"] == [
        {"type": "text", "text": "Your order is split"}
    ]
    assert envelope["hash"] == latest.hash
    Event.parse(envelope)


def test_open_message_without_deltas_is_its_start_with_no_parts():
    """An open message with no delta yet is its start, at its own offset, parts []."""
    log = Log()
    start = log.start("m1")
    [result] = read(log, 0)
    envelope = json.loads(result.serialize())
    assert result.offset == start.offset
    assert envelope["data"]["parts"] == [] and envelope["compacted"]
    assert envelope["hash"] == start.hash


# (c) messages started at or before X


def test_resumed_message_is_one_coalesced_delta_then_its_end():
    """Deltas after X fold into one message.delta at the last one; the end follows."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "Good ")
    log.text("m1", 1, "news, ")
    last = log.text("m1", 2, "it shipped")
    end = log.end("m1")
    delta, stored_end = read(log, 2)
    envelope = json.loads(delta.serialize())
    assert delta.offset == last.offset and envelope["compacted"]
    assert envelope["data"] == {
        "message_id": "m1",
        "seq": 2,
        "parts": [{"part_index": 0, "part_type": "text", "text": "news, it shipped"}],
        "start_offset": str(log.events[0].offset),
    }
    assert stored_end.envelope is None and stored_end.serialize() == end.serialize()
    Event.parse(envelope)


def test_coalesced_delta_lists_what_each_part_gained_in_index_order():
    """Text gained is appended text; another part gained is its latest value."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "A")
    log.card("m1", 1, {"step": 1}, 1)
    log.text("m1", 2, "B")
    log.card("m1", 3, {"step": 2}, 1)
    log.text("m1", 4, "C", index=2)
    [delta] = read(log, 2)
    assert json.loads(delta.serialize())["data"]["parts"] == [
        {"part_index": 0, "part_type": "text", "text": "B"},
        {"part_index": 1, "part_type": "data-card", "data": {"data": {"step": 2}}},
        {"part_index": 2, "part_type": "text", "text": "C"},
    ]


def test_resumed_message_ended_without_new_deltas_is_its_end():
    """A message whose deltas all precede X contributes only its stored end."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "done")
    end = log.end("m1")
    [result] = read(log, 2)
    assert result.envelope is None and result.serialize() == end.serialize()


# Other events, order, resumable points


def test_other_events_pass_through_at_their_offsets():
    """Notes, x.* and other events go out as stored, in offset order."""
    log = Log()
    note = log.note("refund limit")
    app = log.add("x.order.lookup", {"order": 7, "start_offset": "not ours"})
    results = read(log, 0)
    assert [r.serialize() for r in results] == [note.serialize(), app.serialize()]
    assert all(r.envelope is None and r.resumable for r in results)


def test_event_inside_a_compacted_message_is_not_resumable():
    """A note between a message's start and end may not be resumed from."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "a")
    note = log.note("whisper")
    log.text("m1", 1, "b")
    log.end("m1")
    first, second = read(log, 0)
    assert first.offset == note.offset and not first.resumable
    assert second.resumable


def test_interleaved_messages_come_out_in_offset_order():
    """Two messages streamed at once: each once, at its own compacted offset."""
    log = Log()
    log.start("m1")
    log.start("m2")
    log.text("m1", 0, "one")
    log.text("m2", 0, "two")
    end2 = log.end("m2")
    latest1 = log.text("m1", 1, "!")
    results = read(log, 0)
    assert [r.offset for r in results] == [end2.offset, latest1.offset]
    kinds = [e["type"] for e in envelopes(results)]
    assert kinds == ["message", "message.start"]
    assert [r.resumable for r in results] == [False, True]


def test_entries_out_of_order_are_refused():
    """Entries must follow the read's offset, in offset order."""
    log = Log()
    log.note("a")
    log.note("b")
    with pytest.raises(ValueError, match="offset order"):
        compact(list(reversed(log.entries())), after=None)
    with pytest.raises(ValueError, match="offset order"):
        compact(log.entries(), after=log.offset(1))


def test_entries_without_the_start_of_a_message_are_refused():
    """A message started after X needs its message.start among the entries."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "x")
    with pytest.raises(ValueError, match="message.start"):
        compact(log.entries()[1:], after=None)


def test_fold_skips_a_delta_that_does_not_fit():
    """A delta that skips a part index (never stored) is left out of the fold."""
    log = Log()
    log.start("m1")
    log.text("m1", 0, "kept")
    log.text("m1", 1, "skipped", index=5)
    [result] = read(log, 0)
    parts = json.loads(result.serialize())["data"]["parts"]
    assert parts == [{"type": "text", "text": "kept"}]


# Peeking at stored envelopes


actors = st.sampled_from([AI, CUSTOMER, SERVER])
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


@given(texts, st.sampled_from(["message.delta", "note", "x.a.b"]), actors)
def test_peek_agrees_with_decoding(text, kind, actor):
    """peek() finds the type and start_offset that decoding finds."""
    log = Log()
    log.start("m1")
    if kind == "message.delta":
        event = log.text("m1", 0, text)
    elif kind == "note":
        event = log.note(text)
    else:
        event = log.add(kind, {"start_offset": text, "nested": {"x": text}}, actor)
    raw = event.serialize()
    start = event.data.get("start_offset") if kind.startswith("message") else None
    assert peek(raw) == (kind, start)
    peeked = Entry.from_record(event.offset, raw)
    decoded = Entry.from_record(event.offset, json.dumps(event.to_json()).encode())
    assert (peeked.type, peeked.start_offset) == (decoded.type, decoded.start_offset)


def test_peek_finds_the_last_start_offset_key():
    """Nested `start_offset` keys in data come before the server's own."""
    log = Log()
    start = log.add(
        "message.start",
        {"message_id": "m1", "role": "user", "metadata": {"start_offset": "x"}},
    )
    assert peek(start.serialize()) == ("message.start", str(start.offset))


def test_peek_declines_another_layout_and_from_record_decodes():
    """JSON not in Event.serialize's layout is decoded instead."""
    log = Log()
    event = log.start("m1")
    pretty = json.dumps(event.to_json(), indent=1).encode()
    assert peek(pretty) is None
    entry = Entry.from_record(event.offset, pretty)
    assert (entry.type, entry.start_offset) == ("message.start", event.offset)
    note = json.dumps({"type": "note", "data": {"text": "x"}}).encode()
    assert Entry.from_record(event.offset, note).start_offset is None


def test_peek_declines_a_truncated_type():
    """A record cut inside its type is not guessed at."""
    raw = Log().start("m1").serialize()
    assert peek(raw[:100]) is None
    bad = raw[:17] + b"x" * 70 + b'","kind":"' + raw[95:]
    assert peek(bad) is None


def test_message_event_without_start_offset_passes_through():
    """A message event stored without start_offset cannot be folded: as stored."""
    event = Event.parse(
        {
            **Log().start("m1").to_json(),
            "data": {"message_id": "m1", "role": "user"},
        }
    )
    assert peek(event.serialize()) == ("message.start", None)
    [result] = compact([Entry.from_record(event.offset, event.serialize())], after=None)
    assert result.envelope is None


# Planning reads


def test_plan_reads_only_the_ends_of_a_run_of_messages():
    """Messages that fill their positions need only their first and last events."""
    spans = [Span(1, 4, 4), Span(5, 5, 1), Span(6, 9, 4)]
    assert plan_reads(0, 9, spans) == [(1, 1), (4, 6), (9, 9)]


def test_plan_reads_a_run_with_other_events_in_full():
    """A run whose counts do not fill it holds other events: read it all."""
    assert plan_reads(0, 10, [Span(2, 9, 7)]) == [(1, 10)]


def test_plan_reads_a_run_with_an_unknown_count_in_full():
    """A folded message without an event count is read in full."""
    assert plan_reads(0, 6, [Span(1, 3, 3), Span(4, 6, None)]) == [(1, 1), (3, 6)]


def test_plan_reads_an_open_message_at_its_start_and_the_tail():
    """A lone open message that fills the run: its start and its latest delta."""
    assert plan_reads(3, 9, [Span(2, 4, 3), Span(5, None, 5)]) == [(4, 5), (9, 9)]


def test_plan_reads_interleaved_open_messages_in_full():
    """With two open messages, which delta is whose latest is unknown."""
    spans = [Span(1, None, 3), Span(2, None, 3)]
    assert plan_reads(0, 6, spans) == [(1, 6)]


def test_plan_reads_in_full_when_a_closed_message_ends_at_the_tail():
    """An open message interleaved with one that ends last: read the run."""
    spans = [Span(1, None, 2), Span(2, 4, 2)]
    assert plan_reads(0, 4, spans) == [(1, 4)]


def test_plan_reads_nothing_for_an_empty_range():
    """Nothing after the offset, nothing to read."""
    assert plan_reads(4, 4, [Span(2, 3, 2)]) == []


# The properties


@st.composite
def logs(draw: st.DrawFn) -> Log:
    """Random logs: interleaved streamed messages, whole messages, notes."""
    log = Log()
    opened: dict[str, list[str]] = {}
    seqs: dict[str, int] = {}
    for number in range(draw(st.integers(0, 40))):
        choices = ["start", "note", "message"]
        if opened:
            choices += ["delta"] * 4 + ["end"]
        action = draw(st.sampled_from(choices))
        if action == "start":
            mid = f"m{number}"
            log.start(mid)
            opened[mid], seqs[mid] = [], 0
        elif action == "note":
            log.note(f"note {number}")
        elif action == "message":
            log.message(f"u{number}", draw(texts))
        else:
            mid = draw(st.sampled_from(sorted(opened)))
            if action == "end":
                log.end(mid, draw(st.sampled_from(["complete", "cancelled"])))
                del opened[mid]
                continue
            types = opened[mid]
            index = draw(st.integers(0, len(types)))
            if index == len(types):
                types.append(draw(st.sampled_from(["text", "data-card"])))
            if types[index] == "text":
                log.text(mid, seqs[mid], draw(texts), index)
            else:
                log.card(mid, seqs[mid], draw(st.integers()), index)
            seqs[mid] += 1
    return log


def check_envelopes(results: list[Compacted]) -> None:
    """Offsets increase; message events name their message and start; all parse."""
    offsets = [r.offset for r in results]
    assert offsets == sorted(set(offsets))
    assert not results or results[-1].resumable
    for result in results:
        envelope = json.loads(result.serialize())
        assert envelope["offset"] == str(result.offset)
        assert envelope.get("compacted", False) is (result.envelope is not None)
        if envelope["type"].startswith("message"):
            assert {"message_id", "start_offset"} <= envelope["data"].keys()
        Event.parse(envelope)


@settings(max_examples=300, deadline=None)
@given(logs(), st.data())
def test_compact_reads_split_anywhere_give_the_raw_messages(log, data):
    """A compact read up to X, then one from X, show what the raw log shows."""
    tail = len(log.events)
    split = data.draw(st.integers(0, tail))
    reader = Reader()
    for after, upto in ((0, split), (split, tail)):
        results = read(log, after, upto)
        check_envelopes(results)
        reader.apply_all(results)
    raw = raw_reader(log)
    assert reader.messages == raw.messages
    assert reader.others == raw.others


@settings(max_examples=300, deadline=None)
@given(logs(), st.data())
def test_resuming_at_a_resumable_event_is_gapless(log, data):
    """Cut a compact read after any resumable event and resume there: no loss."""
    tail = len(log.events)
    after = data.draw(st.integers(0, tail))
    results = read(log, after)
    points = [i for i, r in enumerate(results) if r.resumable]
    reader = Reader()
    reader.apply_all(read(log, 0, after))
    if points:
        cut = data.draw(st.sampled_from(points))
        reader.apply_all(results[: cut + 1])
        after = results[cut].offset.position
    reader.apply_all(read(log, after))
    raw = raw_reader(log)
    assert reader.messages == raw.messages
    assert reader.others == raw.others


@settings(max_examples=300, deadline=None)
@given(logs(), st.data())
def test_planned_reads_with_known_parts_give_the_same_view(log, data):
    """Reading only the planned events, with the index's parts, changes nothing."""
    tail = data.draw(st.integers(0, len(log.events)))
    after = data.draw(st.integers(0, tail))
    full = read(log, after, tail)
    planned = planned_read(log, after, tail)
    assert [(r.offset, r.resumable) for r in planned] == [
        (r.offset, r.resumable) for r in full
    ]
    assert [r.serialize() for r in planned] == [r.serialize() for r in full]


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ({"data": {"n": 1, "x": None}}, b'{"data":{"n":1,"x":null}}'),
        ({"data": {"n": 2**70}}, b'{"data":{"n":1180591620717411303424}}'),
    ],
)
def test_compacted_envelopes_serialize_nulls_and_big_integers(envelope, expected):
    """null (which orjson also writes for NaN) and integers past 64 bits take
    the exact encoder, which writes them as JSON."""
    entry = Entry.from_record(Offset(1, 1), b'{"type":"x.a"}')
    assert Compacted(Offset(1, 1), entry, envelope, True).serialize() == expected


def test_compacted_envelopes_refuse_nan():
    """NaN is not JSON: serializing a compacted envelope holding it fails."""
    entry = Entry.from_record(Offset(1, 1), b'{"type":"x.a"}')
    with pytest.raises(ValueError):
        Compacted(Offset(1, 1), entry, {"data": {"v": float("nan")}}, True).serialize()
