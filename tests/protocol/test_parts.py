from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

from threadline.exceptions import InvalidEvent
from threadline.protocol.parts import (
    PART_TYPES,
    DataPart,
    FilePart,
    Part,
    PartsFold,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    is_part_type,
    parse_part,
    parse_part_body,
    parse_parts,
)

EXAMPLES = [
    ({"type": "text", "text": "Goodbye"}, TextPart("Goodbye")),
    ({"type": "reasoning", "text": "Think"}, ReasoningPart("Think")),
    (
        {
            "type": "tool-call",
            "tool_call_id": "call_1",
            "tool_name": "lookup_order",
            "input": {"order": 1234},
        },
        ToolCallPart("call_1", "lookup_order", {"order": 1234}),
    ),
    (
        {"type": "tool-result", "tool_call_id": "call_1", "output": [1, 2]},
        ToolResultPart("call_1", [1, 2]),
    ),
    (
        {
            "type": "tool-result",
            "tool_call_id": "call_1",
            "output": None,
            "tool_name": "lookup_order",
            "is_error": True,
        },
        ToolResultPart("call_1", None, "lookup_order", True),
    ),
    (
        {"type": "file", "url": "https://x/a.png", "media_type": "image/png"},
        FilePart("https://x/a.png", "image/png"),
    ),
    (
        {"type": "file", "url": "data:,x", "media_type": "text/plain", "name": "a.txt"},
        FilePart("data:,x", "text/plain", "a.txt"),
    ),
    ({"type": "data-order", "data": {"id": 1}}, DataPart("order", {"id": 1})),
    (
        {"type": "data-status.v2", "data": "ok", "id": "s1"},
        DataPart("status.v2", "ok", "s1"),
    ),
]


@pytest.mark.parametrize(("obj", "part"), EXAMPLES)
def test_parse_part_reads_every_part_type(obj, part):
    """Each part type parses to its dataclass."""
    assert parse_part(obj) == part


@pytest.mark.parametrize(("obj", "part"), EXAMPLES)
def test_part_to_json_round_trips(obj, part):
    """A part's JSON is the object it was parsed from."""
    assert part.to_json() == obj


def test_tool_result_to_json_omits_defaults():
    """tool_name and is_error are left out when absent or false."""
    part = parse_part(
        {"type": "tool-result", "tool_call_id": "c", "output": 1, "is_error": False}
    )
    assert part.to_json() == {"type": "tool-result", "tool_call_id": "c", "output": 1}


@pytest.mark.parametrize(("obj", "part"), EXAMPLES)
def test_part_type_is_the_json_type(obj, part):
    """A part's part_type is its JSON type."""
    assert part.part_type == obj["type"]


def test_data_part_type_carries_its_name():
    """A data part's type is data-<name>."""
    assert DataPart("order", {}).part_type == "data-order"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("text", "part"),
        ({"text": "x"}, "part.type"),
        ({"type": 1}, "part.type"),
        ({"type": "image"}, "part.type"),
        ({"type": "data-"}, "part.type"),
        ({"type": "data-a/b", "data": 1}, "part.type"),
        ({"type": "text"}, "part.text"),
        ({"type": "text", "text": "x", "extra": 1}, "part.extra"),
        ({"type": "text", "text": None}, "part.text"),
        ({"type": "tool-call", "tool_call_id": "", "tool_name": "t", "input": 1}, None),
        ({"type": "tool-call", "tool_call_id": "c", "tool_name": "t"}, "part.input"),
        ({"type": "tool-result", "tool_call_id": "c"}, "part.output"),
        (
            {"type": "tool-result", "tool_call_id": "c", "output": 1, "is_error": 1},
            "part.is_error",
        ),
        (
            {"type": "tool-result", "tool_call_id": "c", "output": 1, "tool_name": ""},
            "part.tool_name",
        ),
        ({"type": "file", "url": "", "media_type": "image/png"}, "part.url"),
        ({"type": "file", "url": "u", "media_type": "png"}, "part.media_type"),
        ({"type": "file", "url": "u", "media_type": 1}, "part.media_type"),
        ({"type": "file", "url": "u", "media_type": "a/b", "name": 2}, "part.name"),
        ({"type": "data-x"}, "part.data"),
        ({"type": "data-x", "data": 1, "id": ""}, "part.id"),
    ],
)
def test_parse_part_refuses_malformed_parts(value, field):
    """A malformed part is invalid_event, naming the faulty field."""
    with pytest.raises(InvalidEvent) as caught:
        parse_part(value)
    if field is not None:
        assert caught.value.field == field


def test_parse_part_body_reads_a_delta_body():
    """A body is a part's fields without type, its type given apart."""
    body = {"tool_call_id": "c", "tool_name": "t", "input": None}
    assert parse_part_body("tool-call", body, "data") == ToolCallPart("c", "t", None)


def test_parse_parts_names_the_index_of_a_bad_part():
    """An error in the second part names parts[1]."""
    with pytest.raises(InvalidEvent) as caught:
        parse_parts([{"type": "text", "text": "a"}, {"type": "text"}])
    assert caught.value.field == "parts[1].text"


def test_parse_parts_accepts_an_empty_array():
    """A message may have no parts (one cancelled before its first delta)."""
    assert parse_parts([]) == []


def test_parse_parts_refuses_an_object():
    """Parts are an array."""
    with pytest.raises(InvalidEvent, match="must be an array"):
        parse_parts({"type": "text"})


@pytest.mark.parametrize("name", [*PART_TYPES, "data-x", "data-A_b.c-1"])
def test_is_part_type_accepts_fixed_and_data_types(name):
    """The fixed types and data-<name> are part types."""
    assert is_part_type(name)


@pytest.mark.parametrize("name", ["data", "data-", "data-_x", "Text", "tool_call"])
def test_is_part_type_refuses_other_names(name):
    """Anything else is not a part type."""
    assert not is_part_type(name)


# PartsFold


def test_fold_starts_from_given_parts():
    """A fold built from parts returns them, text ones included."""
    parts: list[Part] = [TextPart("a"), DataPart("x", 1), ReasoningPart("r")]
    assert PartsFold(parts).parts() == parts
    assert len(PartsFold(parts)) == 3


def test_fold_appends_text_to_a_part():
    """Text deltas at one index concatenate."""
    fold = PartsFold()
    fold.add_text(0, "text", "Good")
    fold.add_text(0, "text", "bye")
    assert fold.parts() == [TextPart("Goodbye")]


def test_fold_reads_are_repeatable():
    """Reading the parts twice (after joining the chunks) gives the same parts."""
    fold = PartsFold()
    fold.add_text(0, "reasoning", "a")
    fold.add_text(0, "reasoning", "b")
    assert fold.parts() == fold.parts() == [ReasoningPart("ab")]


def test_fold_replaces_a_non_text_part():
    """A later body for the same index replaces the part."""
    fold = PartsFold()
    fold.set_part(0, DataPart("status", "working"))
    fold.set_part(0, DataPart("status", "done"))
    assert fold.parts() == [DataPart("status", "done")]


def test_fold_check_refuses_an_index_that_skips_ahead():
    """A new part must take the next free index."""
    fold = PartsFold([TextPart("a")])
    with pytest.raises(InvalidEvent, match="next new part has index 1") as caught:
        fold.check(2, "text")
    assert caught.value.field == "data.part_index"


def test_fold_check_refuses_a_change_of_part_type():
    """A part keeps its type."""
    fold = PartsFold([TextPart("a")])
    with pytest.raises(InvalidEvent, match="has type 'text'") as caught:
        fold.check(0, "reasoning")
    assert caught.value.field == "data.part_type"


def test_fold_check_accepts_an_earlier_part_and_the_next_index():
    """A delta may go back to an open part or open the next one."""
    fold = PartsFold([TextPart("a"), ReasoningPart("b")])
    fold.check(0, "text")
    fold.check(2, "file")
    assert fold.fits(1, "reasoning")
    assert not fold.fits(3, "text")


# Streaming and the complete message fold to the same parts

texts = st.text(max_size=20)
final_parts = st.lists(
    st.one_of(
        st.builds(TextPart, texts),
        st.builds(ReasoningPart, texts),
        st.builds(ToolCallPart, st.just("c1"), st.just("t"), st.integers()),
        st.builds(FilePart, st.just("https://x/y"), st.just("image/png")),
        st.builds(DataPart, st.just("card"), st.integers()),
    ),
    max_size=6,
)


def chunks_of(data, part):
    """A random streaming of one part: text in pieces, others as bodies."""
    if isinstance(part, TextPart | ReasoningPart):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(part.text)), max_size=4)))
        bounds = [0, *cuts, len(part.text)]
        return [part.text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    # Earlier bodies of the same part, each replaced by the next.
    field = {ToolCallPart: "input", FilePart: "name", DataPart: "data"}[type(part)]
    earlier = data.draw(st.lists(st.integers().map(str), max_size=2))
    return [replace(part, **{field: value}) for value in earlier] + [part]


@given(st.data(), final_parts)
def test_streamed_parts_fold_to_the_complete_message(data, parts):
    """Any valid interleaving of deltas folds to the parts of the whole message."""
    pending = [chunks_of(data, part) for part in parts]
    opened = 0
    fold = PartsFold()
    while any(pending[:opened]) or opened < len(parts):
        choices = [i for i in range(opened) if pending[i]]
        if opened < len(parts):
            choices.append(opened)
        index = data.draw(st.sampled_from(choices))
        opened = max(opened, index + 1)
        piece = pending[index].pop(0)
        part_type = parts[index].part_type
        fold.check(index, part_type)
        if isinstance(piece, str):
            fold.add_text(index, part_type, piece)
        else:
            fold.set_part(index, piece)
    assert fold.parts() == parts
