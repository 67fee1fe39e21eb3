"""Strict validation of Amber payloads against Amber's own OpenAPI document.

The document is vendored (schema/amber-openapi.json, Apache-2.0, licence beside it) so the Pi
validates offline. A payload that fails is rejected whole with UpstreamDataError naming the
first wrong field; nothing from it is ever written.

Two validators, one schema: fastjsonschema compiles the document (converted from OpenAPI 3.0's
`nullable` to plain JSON Schema) into Python and checks a day of 5-minute intervals in
milliseconds; only when it rejects a payload does openapi-schema-validator, which reads OpenAPI
3.0 as written, find the exact field to name.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from .errors import UpstreamDataError

# Endpoint name -> the component every array element must match.
ARRAY_OF = {
    "sites": "Site",
    "prices": "Interval",
    "usage": "Usage",
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    text = resources.files("home_energy").joinpath("schema/amber-openapi.json").read_text("utf-8")
    return json.loads(text)


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes an explicit null alternative."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable") is True:
        if "$ref" in out or "allOf" in out or "oneOf" in out:
            return {"anyOf": [{"type": "null"}, out]}
        if "type" in out:
            out["type"] = [out["type"], "null"]
    return out


def compile_array_validator(document: dict[str, Any], component: str) -> Callable[[Any], Any]:
    """A fast validator for "a JSON array of `component`" from an OpenAPI 3.0 `document`."""
    import fastjsonschema

    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "items": {"$ref": f"#/components/schemas/{component}"},
        "components": to_json_schema(document["components"]),
    }
    return fastjsonschema.compile(schema)


@cache
def _fast_validator(component: str) -> Callable[[Any], Any]:
    return compile_array_validator(openapi_document(), component)


INTERVAL_TYPES = ("ActualInterval", "CurrentInterval", "ForecastInterval")


@cache
def _item_validator(component: str) -> Any:  # an OAS30Validator (the library carries no types)
    # Imported here: only the sync validates, and the web process should not pay for it.
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    schema = {"$ref": f"#/components/schemas/{component}", "components": openapi_document()["components"]}
    return OAS30Validator(schema, format_checker=oas30_format_checker)


def _where(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _first_error(component: str, payload: Any) -> str | None:
    """The first wrong field, named by its path, judged as OpenAPI 3.0 reads the schema."""
    from jsonschema.exceptions import best_match

    if not isinstance(payload, list):
        return f"(top level): expected a JSON array, got {type(payload).__name__}"
    for index, item in enumerate(payload):
        target = component
        # An interval is judged against the kind its `type` names, so the message is about
        # its own fields rather than "matches none of three kinds".
        if component == "Interval" and isinstance(item, dict):
            if item.get("type") not in INTERVAL_TYPES:
                return f"[{index}].type: {item.get('type')!r} is not one of {', '.join(INTERVAL_TYPES)}"
            target = item["type"]
        error = best_match(_item_validator(target).iter_errors(item))
        if error is None:
            continue
        while error.context:
            error = best_match(error.context)
        detail = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        return f"[{index}]{_where(error.absolute_path)}: {detail}"
    return None


def validate_payload(endpoint: str, payload: Any) -> list[dict[str, Any]]:
    """Return `payload` if it is a valid response of `endpoint`, else raise UpstreamDataError."""
    import fastjsonschema

    try:
        _fast_validator(ARRAY_OF[endpoint])(payload)
        return payload
    except fastjsonschema.JsonSchemaValueException as exc:
        # The two disagree only on corner cases of formats: keep the fast verdict either way.
        detail = _first_error(ARRAY_OF[endpoint], payload) or exc.message
    raise UpstreamDataError(f"Amber {endpoint} response rejected: {detail}")
