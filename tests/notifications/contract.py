"""Validate response bodies against the OpenMeter OpenAPI (3.0) component schemas with jsonschema."""

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC = Path("/work/shared/openmeter-api/openapi.yaml")


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes an explicit null alternative; refs are rebased."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in ("discriminator", "example", "x-enum-varnames")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _defs() -> dict[str, Any]:
    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return _to_json_schema(spec["components"]["schemas"])


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$defs": _defs(), "$ref": f"#/$defs/{schema_name}"})


def assert_matches(body: Any, schema_name: str) -> None:
    error = jsonschema.exceptions.best_match(_validator(schema_name).iter_errors(body))
    if error is not None:
        raise AssertionError(f"{schema_name} at {error.json_path}: {error.message[:500]}")
