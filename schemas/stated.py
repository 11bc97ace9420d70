"""How the record models state their rules in their JSON Schema: if/then pairs and string patterns.

A model adds the rules its validators enforce that JSON Schema 2020-12 can express (a field required,
absent or bounded depending on another field's value) with `schema_rules(...)` as its
`json_schema_extra`, built from the same tables its validators read. A field type adds a validator's
character or format rule with `SchemaPattern` in its `Annotated` metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# The character rules of the validators in schemas/common.py as JSON Schema (ECMA-262) regex classes, escapes only, so
# that every regex engine reads them alike; tests/unit/test_schema_states_rules.py checks both against
# `_allowed_char` and `str.isspace` over every code point.
WHITESPACE_CLASS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""`str.isspace`: what `strip()` removes."""
FORBIDDEN_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Characters `_allowed_char` refuses (lone surrogates aside: JSON text cannot carry them to the models)."""
NOT_BLANK_NO_CONTROL_CHARS = f"^[^{FORBIDDEN_CLASS}]*[^{FORBIDDEN_CLASS}{WHITESPACE_CLASS}][^{FORBIDDEN_CLASS}]*$"
NO_EDGE_SPACE_NO_CONTROL_CHARS = (
    f"^[^{FORBIDDEN_CLASS}{WHITESPACE_CLASS}]([^{FORBIDDEN_CLASS}]*[^{FORBIDDEN_CLASS}{WHITESPACE_CLASS}])?$"
)
YEAR_FROM_1900 = "^(19[0-9]{2}|[2-9][0-9]{3})-"
DATE_TIME_FROM_1900_OFFSET_WITHIN_14H = YEAR_FROM_1900 + ".*([Zz]|[+-](0[0-9]|1[0-3]):?[0-5][0-9]|[+-]14:?00)$"


@dataclass(frozen=True)
class SchemaPattern:
    """`Annotated` metadata stating a validator's rule in the JSON Schema as `pattern` (the model keeps its
    own check and message: pydantic does not apply this pattern)."""

    pattern: str

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


JsonSchema = dict[str, Any]


def one_of(name: str, values: Iterable[Any]) -> JsonSchema:
    """Condition: field `name` is present and one of `values`."""
    return {"required": [name], "properties": {name: {"enum": list(values)}}}


def present(*names: str) -> JsonSchema:
    """Condition or consequence: each field is present and not null."""
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


def absent(*names: str) -> JsonSchema:
    """Consequence: each field is absent or null (the models read null as absent)."""
    return {"properties": {name: {"type": "null"} for name in names}}


def bounded(name: str, low: float | None = None, high: float | None = None) -> JsonSchema:
    """Consequence: field `name`, when a number, lies within [low, high]."""
    bounds = {"minimum": low, "maximum": high}
    return {"properties": {name: {k: v for k, v in bounds.items() if v is not None}}}


def both(*schemas: JsonSchema) -> JsonSchema:
    """All of `schemas` (merged: their `required` lists joined, `properties` of distinct fields combined)."""
    out: JsonSchema = {"required": [], "properties": {}}
    for schema in schemas:
        out["required"] += [name for name in schema.get("required", []) if name not in out["required"]]
        for name, sub in schema.get("properties", {}).items():
            out["properties"][name] = {**out["properties"].get(name, {}), **sub}
    return {k: v for k, v in out.items() if v}


def when(condition: JsonSchema, then: JsonSchema) -> JsonSchema:
    return {"if": condition, "then": then}


def schema_rules(rules: Callable[[type[Any]], list[JsonSchema]]) -> Callable[[dict[str, Any], type[Any]], None]:
    """A `json_schema_extra` hook adding `rules(model)` (if/then pairs) to the model's schema as `allOf`."""

    def extra(schema: dict[str, Any], model: type[Any]) -> None:
        stated = rules(model)
        if stated:
            schema["allOf"] = [*schema.get("allOf", []), *stated]

    return extra
