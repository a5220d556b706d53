"""OpenMeter's OpenAPI spec (vendored in openmeter_site/api/, which serves it as the API's documentation) as JSON Schema
validators for response bodies."""

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openmeter_site" / "api" / "openapi.yaml"


@cache
def spec() -> dict[str, Any]:
    return yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes an explicit null alternative; refs are rebased."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in ("discriminator", "example", "examples")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _defs() -> dict[str, Any]:
    return _to_json_schema(spec()["components"]["schemas"])


@cache
def validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = {"$defs": _defs(), "$ref": f"#/$defs/{schema_name}"}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_matches(body: Any, schema_name: str) -> None:
    error = jsonschema.exceptions.best_match(validator(schema_name).iter_errors(body))
    if error is not None:
        raise AssertionError(f"{schema_name} at {error.json_path}: {error.message[:500]}")
