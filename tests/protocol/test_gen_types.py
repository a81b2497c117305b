"""scripts/gen_types.py: the committed TypeScript types come from the schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location(
    "gen_types", ROOT / "scripts" / "gen_types.py"
)
assert _spec is not None and _spec.loader is not None
gen_types = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_types)


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(gen_types.SCHEMA.read_text())
    return loaded


def test_committed_types_are_up_to_date():
    """clients/typescript/src/protocol/types.ts is what scripts/gen-types makes
    from the schema today (run scripts/gen-types after changing the schema)."""
    assert gen_types.OUTPUT.read_text() == gen_types.render(schema())


def test_check_passes_on_the_committed_file(capsys):
    """--check exits 0 when the committed file is current."""
    assert gen_types.main(["--check"]) == 0


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch, capsys):
    """--check exits 1 and names the file when it differs from the schema's types."""
    stale = tmp_path / "types.ts"
    stale.write_text("// old\n")
    monkeypatch.setattr(gen_types, "OUTPUT", stale)
    monkeypatch.setattr(gen_types, "ROOT", tmp_path)
    assert gen_types.main(["--check"]) == 1
    assert "types.ts is stale" in capsys.readouterr().out


def test_generate_writes_the_file(tmp_path, monkeypatch, capsys):
    """Without --check the types are written, directories included."""
    target = tmp_path / "src" / "protocol" / "types.ts"
    monkeypatch.setattr(gen_types, "OUTPUT", target)
    monkeypatch.setattr(gen_types, "ROOT", tmp_path)
    assert gen_types.main([]) == 0
    assert target.read_text() == gen_types.render(schema())


def test_every_definition_becomes_an_exported_type():
    """Each $defs entry is exported under its own name."""
    text = gen_types.render(schema())
    for name in schema()["$defs"]:
        assert f"export interface {name} " in text or f"export type {name} " in text


def test_messages_are_discriminated_by_a_literal_type():
    """Each message interface types its type field as its literal."""
    text = gen_types.render(schema())
    assert 'export interface Subscribe {\n  type: "subscribe";' in text
    assert 'export interface SetPresence {\n  type: "presence";' in text


def test_close_codes_become_a_const_object_and_a_type():
    """The close codes are usable as values and as a type."""
    text = gen_types.render(schema())
    assert "  SLOW_CONSUMER: 4000,\n" in text
    assert "export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];" in text


@pytest.mark.parametrize(
    "node",
    [
        {"$ref": "other.json#/x"},
        {"type": "tuple"},
        {"const": 1.5},
        {"type": "object", "patternProperties": {}, "properties": None},
        False,
    ],
)
def test_unsupported_schema_is_an_error(node):
    """A construct the generator does not translate fails loudly, not silently."""
    with pytest.raises(gen_types.SchemaError):
        gen_types.ts_type(node)


def test_quotes_property_names_that_are_not_identifiers():
    """A property name that is not an identifier is quoted."""
    text = gen_types.interface("X", {"properties": {"a-b": {"type": "string"}}})
    assert '"a-b"?: string;' in text
