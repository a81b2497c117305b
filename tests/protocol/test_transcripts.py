"""The golden transcripts of conformance/transcripts replay byte for byte (STYLE X9).

The format is described in conformance/transcripts/README.md.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from threadline.protocol.codes import Close, CloseCode, is_retryable
from threadline.protocol.connection import ClientProtocol, ServerProtocol
from threadline.protocol.events import Event, EventDraft
from threadline.protocol.frames import Side
from threadline.protocol.messages import parse_frame

TRANSCRIPTS = Path(__file__).parents[2] / "conformance" / "transcripts"
NAMES = sorted(path.stem for path in TRANSCRIPTS.glob("*.json"))
SCHEMA = json.loads(
    resources.files("threadline.protocol")
    .joinpath("schema/threadline.v1.json")
    .read_text()
)


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
    return doc


def frames(doc: dict[str, Any], direction: str) -> list[dict[str, Any]]:
    """The steps of ``doc`` that carry a frame in ``direction``."""
    return [
        step
        for step in doc["steps"]
        if step.get("direction") == direction and "frame" in step
    ]


def messages_of(step: dict[str, Any], sender: Side) -> list[Mapping[str, object]]:
    """The messages of a step's frame, as JSON objects (none if it is invalid)."""
    if step.get("invalid"):
        return []
    return [message.serialize() for message in parse_frame(step["frame"], sender)]


def validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    )


def replay_server(doc: dict[str, Any]) -> None:
    """Drive ServerProtocol through the transcript, checking all it sends."""
    options = doc.get("server", {})
    server: ServerProtocol | None = None
    outputs: deque[str | Close] = deque()
    now = 0.0

    def finish() -> None:
        if server is not None:
            outputs.extend(server.data_to_send())
        assert list(outputs) == [], "the server had more to send"

    for index, step in enumerate(doc["steps"]):
        now = step.get("now", now)
        where = f"step {index}: {step}"
        if step.get("connect"):
            finish()
            server = ServerProtocol(now=now, **options)
            continue
        if "call" in step:
            side, method = step["call"].split(".")
            if side == "server":
                assert server is not None, where
                getattr(server, method)(**step.get("args", {}))
            continue
        assert server is not None, where
        if "direction" not in step:
            server.check_timeouts(now)
        elif step["direction"] == "c2s" and "close" in step:
            finish()
            server = None
        elif step["direction"] == "c2s":
            server.receive_text(step["frame"], now=now)
            expected = step.get("server_receives", messages_of(step, Side.CLIENT))
            received = [message.serialize() for message in server.events_received()]
            assert received == expected, where
        else:
            if not outputs:
                outputs.extend(server.data_to_send())
            assert outputs, f"{where}: nothing to send"
            item = outputs.popleft()
            if "close" in step:
                assert item == Close(step["close"], step["reason"]), where
            else:
                assert item == step["frame"], where
    finish()


def replay_client(doc: dict[str, Any]) -> None:
    """Drive ClientProtocol through the transcript, checking all it sends."""
    options = dict(doc["client"])
    client = ClientProtocol(options.pop("token"), **options)
    outputs: deque[str | Close] = deque()

    def finish() -> None:
        outputs.extend(client.data_to_send())
        assert list(outputs) == [], "the client had more to send"

    for index, step in enumerate(doc["steps"]):
        where = f"step {index}: {step}"
        if step.get("connect"):
            finish()
            client.connect()
        elif "call" in step:
            side, method = step["call"].split(".")
            if side == "client":
                result = getattr(client, method)(**step.get("args", {}))
                assert result == step.get("returns"), where
        elif step.get("direction") == "c2s":
            if not outputs:
                outputs.extend(client.data_to_send())
            assert outputs, f"{where}: nothing to send"
            item = outputs.popleft()
            if "close" in step:
                assert item == Close(step["close"], step["reason"]), where
            else:
                assert item == step["frame"], where
        elif step.get("direction") == "s2c" and "close" in step:
            retryable = client.receive_close(step["close"], step["reason"])
            assert retryable is step["retryable"], where
        elif step.get("direction") == "s2c":
            client.receive_text(step["frame"])
            expected = step.get("client_receives", messages_of(step, Side.SERVER))
            received = [message.serialize() for message in client.events_received()]
            assert received == expected, where
    finish()
    assert client.events_received() == []


REPLAYS = [
    pytest.param(name, side, id=f"{name}-{side}")
    for name in NAMES
    for side in load(name)["replay"]
]


@pytest.mark.parametrize(("name", "side"), REPLAYS)
def test_transcript_replays(name, side):
    """The protocol of each side that replays a transcript sends exactly its frames."""
    doc = load(name)
    if side == "server":
        replay_server(doc)
    else:
        replay_client(doc)


def test_transcripts_exist():
    """There are transcripts, each replayed by at least one side."""
    assert len(NAMES) >= 20
    assert all(set(load(name)["replay"]) <= {"server", "client"} for name in NAMES)
    assert all(load(name)["replay"] for name in NAMES)


def test_schema_is_valid():
    """The protocol's schema is a valid draft 2020-12 JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", NAMES)
def test_transcript_frames_validate(name):
    """Every frame validates against the schema of its direction, except the
    frames marked invalid, which do not."""
    doc = load(name)
    for direction, definition in (("c2s", "ClientFrame"), ("s2c", "ServerFrame")):
        check = validator(definition)
        for step in frames(doc, direction):
            try:
                valid = check.is_valid(json.loads(step["frame"]))
            except json.JSONDecodeError:
                valid = False
            assert valid is not step.get("invalid", False), step["frame"]


@pytest.mark.parametrize("name", NAMES)
def test_transcript_frames_match_the_root_schema(name):
    """Every valid frame also validates against the schema's root."""
    check = jsonschema.Draft202012Validator(SCHEMA)
    doc = load(name)
    for step in frames(doc, "c2s") + frames(doc, "s2c"):
        if not step.get("invalid"):
            check.validate(json.loads(step["frame"]))


def test_transcripts_use_every_message_type():
    """Together the transcripts send every message type in each direction."""
    seen: dict[str, set[str]] = {"c2s": set(), "s2c": set()}
    for name in NAMES:
        for direction in seen:
            for step in frames(load(name), direction):
                if not step.get("invalid"):
                    seen[direction] |= {m["type"] for m in json.loads(step["frame"])}
    assert seen["c2s"] == {
        "hello",
        "subscribe",
        "unsubscribe",
        "publish",
        "cursor",
        "presence",
        "refresh",
    }
    assert seen["s2c"] == {
        "subscribed",
        "events",
        "published",
        "error",
        "presence",
        "gone",
    }


def test_transcripts_use_every_close_code():
    """Together the transcripts close with every CloseCode."""
    seen = {
        step["close"]
        for name in NAMES
        for step in load(name)["steps"]
        if "close" in step
    }
    assert seen >= {code.value for code in CloseCode}


def test_transcript_closes_say_whether_to_retry():
    """Each server close in a transcript states the retry decision of its code."""
    for name in NAMES:
        for step in load(name)["steps"]:
            if step.get("direction") == "s2c" and "close" in step:
                assert step["retryable"] is is_retryable(step["close"])


def test_schema_close_codes_are_the_close_codes():
    """The schema lists exactly the CloseCode members, by value and name."""
    listed = {
        (item["const"], item["title"]) for item in SCHEMA["$defs"]["CloseCode"]["oneOf"]
    }
    assert listed == {(code.value, code.name) for code in CloseCode}


def test_transcript_events_are_valid_envelopes():
    """Every event a transcript sends parses as a stored Event, and every
    published draft as an EventDraft (the session event model's own checks)."""
    for name in NAMES:
        doc = load(name)
        for step in frames(doc, "s2c"):
            for message in json.loads(step["frame"]):
                for event in message.get("events", []):
                    Event.parse(event)
        for step in frames(doc, "c2s"):
            if not step.get("invalid"):
                for message in json.loads(step["frame"]):
                    for draft in message.get("events", []):
                        EventDraft.parse(draft)
