"""Strict validation of Amber payloads against Amber's own OpenAPI document.

The document is vendored (schema/amber-openapi.json, Apache-2.0, licence beside it) so the Pi
validates offline. A payload that fails is rejected whole with UpstreamDataError naming the
first wrong field; nothing from it is ever written.
"""
from __future__ import annotations

import json
from functools import lru_cache
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


@lru_cache(maxsize=None)
def _validator(component: str):
    # Imported here: only the sync validates, and the web process should not pay for it.
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    schema = {
        "type": "array",
        "items": {"$ref": f"#/components/schemas/{component}"},
        "components": openapi_document()["components"],
    }
    return OAS30Validator(schema, format_checker=oas30_format_checker)


def _where(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text or "(top level)"


def validate_payload(endpoint: str, payload: Any) -> list[dict[str, Any]]:
    """Return `payload` if it is a valid response of `endpoint`, else raise UpstreamDataError."""
    from jsonschema.exceptions import best_match

    validator = _validator(ARRAY_OF[endpoint])
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return payload
    # Descend into oneOf/allOf so the message names the leaf field, not "is not valid under any".
    while error.context:
        error = best_match(error.context)
    detail = error.message
    if len(detail) > 160:
        detail = detail[:157] + "..."
    raise UpstreamDataError(f"Amber {endpoint} response rejected: {_where(error.absolute_path)}: {detail}")
