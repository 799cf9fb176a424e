"""JSON Schema → the Gemini API's `Schema` (an OpenAPI 3.0 subset), pure.

Gemini's `responseSchema` and `functionDeclarations[].parameters` take a `Schema`
object, not JSON Schema: types are the upper-case `Type` enum names, a nullable
value is `nullable: true` rather than a `["x", "null"]` type list, and only a
documented subset of keywords exists. `to_gemini_schema` converts what has an exact
equivalent, drops what only annotates or what Gemini already guarantees
(`additionalProperties: false`, `$schema`, `strict`), inlines local `$ref`s, and
rejects everything else with an `InvalidRequestError` naming the keyword and its
path, so a request never reaches Gemini with a constraint silently lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.errors import InvalidRequestError

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
    "null": "NULL",
}
# Keywords Gemini's Schema has under the same name and meaning.
_SAME = ("description", "title", "pattern", "example", "default")
# The formats Gemini documents; JSON Schema's other formats (email, uri, ...) are
# annotations, not assertions, so dropping them changes no valid answer.
_FORMATS = frozenset({"enum", "date-time", "float", "double", "int32", "int64"})
_NUMBERS = ("minimum", "maximum")
# Gemini's Schema spells these int64 counts as strings in JSON (proto3 mapping).
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
# Annotations or constraints Gemini already enforces: dropped without loss.
_IGNORED = frozenset({"$schema", "$id", "$comment", "strict", "examples", "$defs", "definitions"})
_MAX_DEPTH = 32


def to_gemini_schema(schema: Mapping[str, Any], *, param: str) -> dict[str, Any]:
    """The Gemini `Schema` for a JSON Schema; raises `InvalidRequestError` (with
    `param`) for what Gemini's subset cannot express."""
    return _Converter(schema, param).convert(schema, "#", 0)


class _Converter:
    def __init__(self, root: Mapping[str, Any], param: str) -> None:
        self._root = root
        self._param = param

    def reject(self, where: str, why: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"{self._param}: {why} at {where}; Gemini's responseSchema/parameters accept "
            "only its OpenAPI subset (type, properties, required, items, enum, anyOf, "
            "nullable, format, description, min/max bounds, pattern)",
            param=self._param,
        )

    def convert(self, schema: object, where: str, depth: int) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise self.reject(where, "schema nests too deeply (a recursive $ref?)")
        if not isinstance(schema, Mapping):
            raise self.reject(where, "a schema is not an object")
        if "$ref" in schema:
            return self.convert(self._resolve(schema["$ref"], where), where, depth + 1)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            self._keyword(out, key, value, f"{where}/{key}", depth)
        return out

    def _keyword(self, out: dict[str, Any], key: str, value: Any, where: str, depth: int) -> None:
        if key == "type":
            self._type(out, value, where)
        elif key == "properties":
            if not isinstance(value, Mapping):
                raise self.reject(where, "`properties` is not an object")
            out["properties"] = {
                name: self.convert(sub, f"{where}/{name}", depth + 1) for name, sub in value.items()
            }
            # Gemini orders generated keys alphabetically unless told otherwise.
            out["propertyOrdering"] = list(value)
        elif key == "items":
            out["items"] = self.convert(value, where, depth + 1)
        elif key in ("anyOf", "oneOf"):
            # Over disjoint alternatives (the usual use) oneOf and anyOf accept the same.
            if not isinstance(value, list) or not value:
                raise self.reject(where, f"`{key}` is not a non-empty list")
            out["anyOf"] = [
                self.convert(sub, f"{where}/{i}", depth + 1) for i, sub in enumerate(value)
            ]
        elif key == "required":
            if not isinstance(value, list):
                raise self.reject(where, "`required` is not a list")
            out["required"] = [str(name) for name in value]
        elif key == "format":
            if value in _FORMATS:
                out["format"] = value
        elif key == "enum":
            self._enum(out, value, where)
        elif key == "const":
            self._enum(out, [value], where)
        elif key == "additionalProperties":
            if value not in (False, True):
                raise self.reject(where, "a schema-valued `additionalProperties` (a map)")
            # false: Gemini generates only the declared properties anyway; true only
            # permits more, so leaving it out keeps every answer valid.
        elif key == "nullable":
            out["nullable"] = bool(value)
        elif key in _SAME or key in _NUMBERS:
            out[key] = value
        elif key in _COUNTS:
            out[key] = str(int(value))
        elif key not in _IGNORED:
            raise self.reject(where, f"unsupported keyword `{key}`")

    def _type(self, out: dict[str, Any], value: Any, where: str) -> None:
        names = value if isinstance(value, list) else [value]
        non_null = [n for n in names if n != "null"]
        if len(non_null) > 1 or any(n not in _TYPES for n in names):
            raise self.reject(where, f"type {value!r} (one type, optionally with null)")
        out["type"] = _TYPES[non_null[0]] if non_null else "NULL"
        if non_null and len(names) > 1:
            out["nullable"] = True

    def _enum(self, out: dict[str, Any], value: Any, where: str) -> None:
        # Gemini's enum is a list of strings for a STRING schema.
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.reject(where, "an enum of non-string values")
        out["enum"] = list(value)
        out.setdefault("type", "STRING")

    def _resolve(self, ref: object, where: str) -> object:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise self.reject(where, f"a non-local $ref {ref!r}")
        node: object = self._root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise self.reject(where, f"$ref {ref!r} points nowhere")
            node = node[part]
        return node
