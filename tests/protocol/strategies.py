"""Hypothesis strategies for the wire messages of threadline.v1, valid by the schema."""

from __future__ import annotations

from hypothesis import strategies as st

from threadline.protocol.messages import (
    Cursor,
    ErrorMessage,
    Events,
    Gone,
    Hello,
    Presence,
    Publish,
    Published,
    Refresh,
    SetPresence,
    Subscribe,
    Subscribed,
    Unsubscribe,
)

__all__ = ["client_messages", "json_objects", "messages", "server_messages"]

# Plain strings without line breaks: Python's jsonschema reads the schema's
# "$" as "end, or before a final newline", unlike ECMA-262.
texts = st.text(st.characters(exclude_characters="\n"), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)

rids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z")
sessions = st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z")
devices = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z")
tokens = st.text(st.characters(exclude_characters="\n"), min_size=1, max_size=64)
codes = st.from_regex(r"\A[a-z][a-z0-9_]{0,63}\Z")
offsets = st.builds(
    lambda generation, position: f"{generation:016d}_{position:016d}",
    st.integers(0, 10**16 - 1),
    st.integers(0, 10**16 - 1),
)
offset_params = offsets | st.sampled_from(["-1", "now"])
hashes = st.from_regex(r"\A[0-9a-f]{64}\Z")
event_types = st.sampled_from(
    ["message", "message.delta", "note", "run.start", "session.closed"]
) | st.from_regex(r"\Ax(\.[A-Za-z0-9_-]{1,10}){1,3}\Z")


def _optional(key, strategy):
    return st.one_of(st.just({}), strategy.map(lambda value: {key: value}))


actors = st.builds(
    lambda id, role, name, device: {"id": id, "role": role, **name, **device},
    st.text(st.characters(exclude_characters="\n"), min_size=1, max_size=20),
    st.sampled_from(["customer", "ai", "agent", "supervisor", "service", "server"]),
    _optional(
        "name", st.text(st.characters(exclude_characters="\n"), min_size=1, max_size=20)
    ),
    _optional("device", devices),
)
events = st.builds(
    lambda offset, ts, type, id, actor, visibility, data, trace, prev, hash: {
        "v": 1,
        "offset": offset,
        "ts": ts,
        "type": type,
        "id": id,
        "actor": actor,
        "visibility": visibility,
        "data": data,
        **trace,
        "prev_hash": prev,
        "hash": hash,
    },
    offsets,
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"
    ),
    event_types,
    ids,
    actors,
    st.sampled_from(["all", "staff"]),
    json_objects,
    _optional("trace_id", ids),
    hashes,
    hashes,
)
drafts = st.builds(
    lambda type, id, data, visibility, trace: {
        "type": type,
        "id": id,
        "data": data,
        **visibility,
        **trace,
    },
    event_types,
    ids,
    json_objects,
    _optional("visibility", st.sampled_from(["all", "staff"])),
    _optional("trace_id", ids),
)

client_messages = st.one_of(
    st.builds(Hello, tokens, st.none() | devices),
    st.builds(
        Subscribe, rids, sessions, offset_params, st.sampled_from(["raw", "compact"])
    ),
    st.builds(Unsubscribe, sessions, st.none() | rids),
    st.builds(
        Publish,
        rids,
        sessions,
        st.lists(drafts, min_size=1, max_size=3).map(tuple),
        st.none() | offsets,
    ),
    st.builds(Cursor, sessions, offsets),
    st.builds(SetPresence, sessions, st.sampled_from(["active", "idle", "typing"])),
    st.builds(Refresh, tokens),
)
server_messages = st.one_of(
    st.builds(Subscribed, rids, sessions, offsets, json_objects),
    st.builds(Events, sessions, st.lists(events, min_size=1, max_size=3).map(tuple)),
    st.builds(Published, rids, st.lists(offsets, min_size=1, max_size=3).map(tuple)),
    st.builds(ErrorMessage, codes, texts, st.none() | rids, st.none() | json_objects),
    st.builds(
        Presence,
        sessions,
        actors,
        st.sampled_from(["active", "idle", "typing", "offline"]),
    ),
    st.builds(
        Gone,
        sessions,
        st.sampled_from(["deleted", "forbidden", "offset_gone"]),
        st.none() | offsets,
        st.none() | offsets,
    ),
)
messages = client_messages | server_messages
